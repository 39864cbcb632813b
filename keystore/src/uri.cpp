#include "uri.hpp"

#include <filesystem>
#include <vector>

#include <p11-kit/uri.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {
namespace {

/// Everything after "pin-value=" goes: a raw PIN may contain ';', '&' or '?', so no separator is trusted.
std::string redact_pin_value(const std::string& text) {
  const size_t pos = text.find("pin-value=");
  return pos == std::string::npos ? text : text.substr(0, pos + 10) + "***";
}

/// Names of the path attributes ("token", "id", ...) written in `text`, in order.
std::vector<std::string> path_attribute_names(const std::string& text) {
  std::vector<std::string> names;
  std::string path = text.substr(0, text.find('?'));
  if (path.rfind("pkcs11:", 0) == 0) path.erase(0, 7);
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find(';', start);
    std::string item = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    names.push_back(item.substr(0, item.find('=')));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return names;
}

std::string library_short_name(const std::string& path) {
  std::string stem = std::filesystem::path(path).filename().string();
  stem = stem.substr(0, stem.find('.'));
  if (stem.rfind("lib", 0) == 0) stem.erase(0, 3);
  return stem;
}

}  // namespace

void KeyUri::UriFree::operator()(P11KitUri* u) const noexcept { p11_kit_uri_free(u); }

KeyUri KeyUri::parse(const std::string& text, bool allow_pin_value) {
  KeyUri out;
  out.display_ = redact_pin_value(text);
  const std::string where = "key URI " + out.display_;
  if (text.rfind("pkcs11:", 0) != 0) throw KeystoreError(where + ": not a pkcs11: URI (RFC 7512)");
  for (const std::string& name : path_attribute_names(text)) {
    if (name == "pin-value" || name == "pin-source")
      throw KeystoreError(where + ": " + name + " belongs in the query (?" + name + "=), not the path");
    if (name.rfind("slot-", 0) == 0)
      throw KeystoreError(where + ": " + name +
                          " is refused (slot ids change when a token is re-initialised); name the token by "
                          "its label (token=) or serial (serial=)");
  }
  out.uri_.reset(p11_kit_uri_new(), UriFree{});
  int rc = p11_kit_uri_parse(text.c_str(), P11_KIT_URI_FOR_ANY, out.uri_.get());
  if (rc != P11_KIT_URI_OK) throw KeystoreError(where + ": " + p11_kit_uri_message(rc));
  if (p11_kit_uri_any_unrecognized(out.uri_.get()))
    throw KeystoreError(where + ": contains attributes RFC 7512 does not define");

  if (CK_ATTRIBUTE* cls = p11_kit_uri_get_attribute(out.uri_.get(), CKA_CLASS)) {
    if (cls->ulValueLen != sizeof(CK_OBJECT_CLASS) || *static_cast<CK_OBJECT_CLASS*>(cls->pValue) != CKO_PRIVATE_KEY)
      throw KeystoreError(where + ": type must be 'private' for a key");
  }
  if (const char* pin = p11_kit_uri_get_pin_value(out.uri_.get())) {
    if (!allow_pin_value)
      throw KeystoreError(where + ": pin-value in a URI is not allowed (use the PIN file or ?pin-source=)");
    out.pin_value_ = pin;
  }
  if (const char* source = p11_kit_uri_get_pin_source(out.uri_.get())) {
    out.pin_source_ = source;
    if (out.pin_source_.rfind("file:", 0) == 0) out.pin_source_.erase(0, 5);
  }
  if (const char* name = p11_kit_uri_get_module_name(out.uri_.get())) out.module_name_ = name;
  if (const char* path = p11_kit_uri_get_module_path(out.uri_.get())) out.module_path_ = path;
  if (CK_ATTRIBUTE* id = p11_kit_uri_get_attribute(out.uri_.get(), CKA_ID))
    out.id_ = std::string(static_cast<const char*>(id->pValue), id->ulValueLen);
  if (CK_ATTRIBUTE* label = p11_kit_uri_get_attribute(out.uri_.get(), CKA_LABEL))
    out.label_ = std::string(static_cast<const char*>(label->pValue), label->ulValueLen);
  return out;
}

bool KeyUri::matches_module(const Module& module) const {
  if (!module_path_.empty() && module_path_ != module.path()) return false;
  if (!module_name_.empty() && module_name_ != module.name() && module_name_ != library_short_name(module.path()))
    return false;
  return true;
}

bool KeyUri::matches_token(const CK_TOKEN_INFO& info) const {
  return p11_kit_uri_match_token_info(uri_.get(), &info) == 1;
}

bool KeyUri::matches_object(const std::string& id, const std::string& label) const {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  std::string id_copy = id, label_copy = label;
  CK_ATTRIBUTE attrs[] = {{CKA_CLASS, &cls, sizeof cls},
                          {CKA_ID, id_copy.data(), id_copy.size()},
                          {CKA_LABEL, label_copy.data(), label_copy.size()}};
  return p11_kit_uri_match_attributes(uri_.get(), attrs, 3) == 1;
}

std::string percent_encode_id(const std::string& id) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(id.size() * 3);
  for (unsigned char c : id) {
    out += '%';
    out += digits[c >> 4];
    out += digits[c & 0x0f];
  }
  return out;
}

}  // namespace orgproxy::keystore
