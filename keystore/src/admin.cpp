// KeyAdmin: modules and tokens, list, delete, and the helpers admin_keys.cpp shares.
#include "orgproxy/keystore/admin.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <map>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "admin_keys.hpp"
#include "admin_objects.hpp"
#include "pin_file.hpp"
#include "uri.hpp"

namespace orgproxy::keystore {
namespace admin_detail {

std::string uri_encode(const std::string& bytes) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0x0f];
    }
  }
  return out;
}

std::string key_uri(const Token& token, const std::string& object_label) {
  return "pkcs11:token=" + uri_encode(token.label()) + ";object=" + uri_encode(object_label) + ";type=private";
}

RwSession::RwSession(Token& token) : f_(token.module().f()) {
  check_ck(f_->C_OpenSession(token.slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &handle_),
           token.display(), "C_OpenSession (read-write)");
}

RwSession::~RwSession() {
  if (handle_ != CK_INVALID_HANDLE) f_->C_CloseSession(handle_);
}

std::vector<CK_OBJECT_HANDLE> find_objects(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> tmpl,
                                           const std::string& where) {
  check_ck(f->C_FindObjectsInit(s, tmpl.empty() ? nullptr : tmpl.data(), tmpl.size()), where, "C_FindObjectsInit");
  std::vector<CK_OBJECT_HANDLE> out;
  CK_OBJECT_HANDLE batch[128];
  CK_ULONG n = 0;
  CK_RV rv;
  while ((rv = f->C_FindObjects(s, batch, 128, &n)) == CKR_OK && n > 0) out.insert(out.end(), batch, batch + n);
  f->C_FindObjectsFinal(s);
  check_ck(rv, where, "C_FindObjects");
  return out;
}

bool is_generation_label(const std::string& label, const std::string& tenant_id, const std::string& purpose) {
  const std::string base = tenant_id + "-" + purpose;
  if (label == base) return true;
  if (label.size() <= base.size() + 1 || label.compare(0, base.size() + 1, base + "-") != 0) return false;
  return std::all_of(label.begin() + static_cast<std::ptrdiff_t>(base.size() + 1), label.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

std::string check_ou(X509* cert, const std::string& tenant_id) {
  X509_NAME* name = X509_get_subject_name(cert);
  std::vector<std::string> ous;
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, i)) >= 0;) {
    ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    ous.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
  }
  if (ous.size() != 1) return "the certificate subject has " + std::to_string(ous.size()) + " OU (one expected)";
  if (ous[0] != tenant_id) return "the certificate OU is '" + ous[0] + "', not the tenant id " + tenant_id;
  return "";
}

}  // namespace admin_detail

using namespace admin_detail;

namespace {

const char* class_name(std::optional<CK_ULONG> cls) {
  if (!cls) return "other";
  switch (*cls) {
    case CKO_PRIVATE_KEY: return "private-key";
    case CKO_PUBLIC_KEY: return "public-key";
    case CKO_CERTIFICATE: return "certificate";
    case CKO_SECRET_KEY: return "secret-key";
    case CKO_DATA: return "data";
    default: return "other";
  }
}

std::string describe_key(const AttributeMap& a) {
  auto type = attribute_ulong(a, CKA_KEY_TYPE);
  if (!type) return "";
  if (*type == CKK_RSA) {
    auto it = a.find(CKA_MODULUS);
    return it == a.end() ? "RSA" : "RSA-" + std::to_string(it->second.size() * 8);
  }
  if (*type == CKK_EC) {
    auto it = a.find(CKA_EC_PARAMS);
    if (it == a.end()) return "EC";
    const auto* p = reinterpret_cast<const unsigned char*>(it->second.data());
    ASN1_OBJECT* oid = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(it->second.size()));
    ERR_clear_error();
    std::string out = "EC";
    if (oid != nullptr) {
      int nid = OBJ_obj2nid(oid);
      if (nid == NID_X9_62_prime256v1) out = "EC P-256";
      else if (nid == NID_secp384r1) out = "EC P-384";
      else if (nid == NID_secp521r1) out = "EC P-521";
      ASN1_OBJECT_free(oid);
    }
    return out;
  }
  return "key type " + std::to_string(*type);
}

class KeyAdminImpl final : public KeyAdmin {
 public:
  explicit KeyAdminImpl(const KeystoreOptions& options) {
    if (options.modules.empty()) throw KeystoreError("no PKCS#11 module configured");
    for (const ModuleSpec& m : options.modules) modules_.push_back(std::make_shared<Module>(m.name, m.path));
    std::string pin = options.pin_file.empty() ? std::string() : read_pin_file(options.pin_file);
    for (const auto& module : modules_)
      for (CK_SLOT_ID slot : module->slots_with_token()) {
        CK_TOKEN_INFO info;
        if (module->f()->C_GetTokenInfo(slot, &info) != CKR_OK || !(info.flags & CKF_TOKEN_INITIALIZED)) continue;
        auto token = std::make_shared<Token>(module, slot, info, 2);
        if (!pin.empty()) token->login(pin);
        tokens_.push_back(token);
      }
    OPENSSL_cleanse(pin.data(), pin.size());
  }

  std::vector<TokenObjectInfo> list_objects() override {
    std::vector<TokenObjectInfo> out;
    for (const auto& token : tokens_) {
      RwSession s(*token);
      for (CK_OBJECT_HANDLE h : find_objects(s.f(), s.get(), {}, token->display())) {
        AttributeMap a = read_attributes(s.f(), s.get(), h,
                                         {CKA_CLASS, CKA_ID, CKA_LABEL, CKA_KEY_TYPE, CKA_SENSITIVE, CKA_EXTRACTABLE,
                                          CKA_SIGN, CKA_MODULUS, CKA_EC_PARAMS, CKA_VALUE});
        TokenObjectInfo o;
        o.module = token->module().display_name();
        o.token_label = token->label();
        o.token_serial = token->serial();
        o.object_class = class_name(attribute_ulong(a, CKA_CLASS));
        o.id = a[CKA_ID];
        o.label = a[CKA_LABEL];
        if (o.object_class == "private-key" || o.object_class == "public-key") o.key_type = describe_key(a);
        if (o.object_class == "private-key") {
          o.sensitive = attribute_bool(a, CKA_SENSITIVE);
          o.extractable = attribute_bool(a, CKA_EXTRACTABLE);
          o.can_sign = attribute_bool(a, CKA_SIGN);
        }
        if (o.object_class == "certificate" && a.count(CKA_VALUE)) {
          const auto* p = reinterpret_cast<const unsigned char*>(a[CKA_VALUE].data());
          if (X509* cert = d2i_X509(nullptr, &p, static_cast<long>(a[CKA_VALUE].size()))) {
            BIO* bio = BIO_new(BIO_s_mem());
            X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
            char* data = nullptr;
            long n = BIO_get_mem_data(bio, &data);
            o.certificate_subject.assign(data, static_cast<size_t>(n));
            BIO_free(bio);
            struct tm tm {};
            if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
              char day[16];
              std::strftime(day, sizeof day, "%Y-%m-%d", &tm);
              o.certificate_not_after = day;
            }
            X509_free(cert);
          }
          ERR_clear_error();
        }
        std::string type = o.object_class == "private-key" ? "private"
                           : o.object_class == "public-key" ? "public"
                           : o.object_class == "certificate" ? "cert"
                           : o.object_class == "secret-key" ? "secret-key" : "data";
        o.uri = "pkcs11:token=" + uri_encode(o.token_label) + ";id=" + uri_encode(o.id) +
                (o.label.empty() ? "" : ";object=" + uri_encode(o.label)) + ";type=" + type;
        out.push_back(std::move(o));
      }
    }
    return out;
  }

  GeneratedKey generate(const std::string& token, const std::string& tenant_id, const std::string& purpose,
                        const OrgRequestSubject& subject) override {
    return generate_key_pair(pick_shared(token), tenant_id, purpose, subject);
  }

  std::string import_pkcs12(const std::string& token, const std::string& tenant_id, const std::string& purpose,
                            const std::string& p12_file, const std::string& password) override {
    return import_pkcs12_file(pick(token), tenant_id, purpose, p12_file, password);
  }

  std::string install_certificate(const std::string& token, const std::string& tenant_id, const std::string& purpose,
                                  const std::string& cert_file) override {
    return install_certificate_file(pick(token), tenant_id, purpose, cert_file);
  }

  std::vector<TokenObjectInfo> objects_of(const std::string& token, const std::string& tenant_id,
                                          const std::string& purpose, const std::string& label) override {
    Token& t = pick(token);
    std::vector<TokenObjectInfo> out;
    for (TokenObjectInfo& o : list_objects())
      if (o.token_serial == t.serial() && o.token_label == t.label() &&
          is_generation_label(o.label, tenant_id, purpose) && (label.empty() || o.label == label))
        out.push_back(std::move(o));
    return out;
  }

  unsigned remove(const std::string& token, const std::string& tenant_id, const std::string& purpose,
                  const std::string& label) override {
    Token& t = pick(token);
    RwSession s(t);
    unsigned removed = 0;
    for (CK_OBJECT_HANDLE h : find_objects(s.f(), s.get(), {}, t.display())) {
      AttributeMap a = read_attributes(s.f(), s.get(), h, {CKA_LABEL});
      const std::string& l = a[CKA_LABEL];
      if (!is_generation_label(l, tenant_id, purpose) || (!label.empty() && l != label)) continue;
      check_ck(s.f()->C_DestroyObject(s.get(), h), t.display(), "C_DestroyObject");
      ++removed;
    }
    if (removed > 0)
      spdlog::warn("keystore: {}: {} objects of tenant {} purpose {} destroyed", t.display(), removed, tenant_id,
                   purpose);
    return removed;
  }

 private:
  std::shared_ptr<Token> pick_shared(const std::string& label) {
    std::vector<std::shared_ptr<Token>> matching;
    for (const auto& t : tokens_)
      if (label.empty() || t->label() == label) matching.push_back(t);
    if (matching.empty())
      throw KeystoreError(label.empty() ? std::string("no initialised token found in the configured modules")
                                        : "no token labelled '" + label + "'");
    if (matching.size() > 1)
      throw KeystoreError(std::to_string(matching.size()) + " tokens" +
                          (label.empty() ? "" : " labelled '" + label + "'") + "; name one with --token");
    return matching.front();
  }
  Token& pick(const std::string& label) { return *pick_shared(label); }

  std::vector<std::shared_ptr<Module>> modules_;
  std::vector<std::shared_ptr<Token>> tokens_;  // after modules_: destroyed first
};

}  // namespace

std::unique_ptr<KeyAdmin> KeyAdmin::open(const KeystoreOptions& options) {
  return std::make_unique<KeyAdminImpl>(options);
}

bool uri_selects(const std::string& uri, const TokenObjectInfo& object) {
  try {
    KeyUri parsed = KeyUri::parse(uri, true);
    CK_TOKEN_INFO info{};
    std::memset(info.label, ' ', sizeof info.label);
    std::memset(info.serialNumber, ' ', sizeof info.serialNumber);
    std::memset(info.manufacturerID, ' ', sizeof info.manufacturerID);
    std::memset(info.model, ' ', sizeof info.model);
    std::memcpy(info.label, object.token_label.data(), std::min(object.token_label.size(), sizeof info.label));
    std::memcpy(info.serialNumber, object.token_serial.data(),
                std::min(object.token_serial.size(), sizeof info.serialNumber));
    return parsed.matches_token(info) && parsed.matches_object(object.id, object.label);
  } catch (const KeystoreError&) {
    return false;
  }
}

}  // namespace orgproxy::keystore
