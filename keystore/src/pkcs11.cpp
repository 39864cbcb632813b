#include "pkcs11.hpp"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

std::string ckr_name(CK_RV rv) {
  switch (rv) {
#define ORGPROXY_CKR(x) \
  case x:               \
    return #x;
    ORGPROXY_CKR(CKR_OK)
    ORGPROXY_CKR(CKR_GENERAL_ERROR)
    ORGPROXY_CKR(CKR_FUNCTION_FAILED)
    ORGPROXY_CKR(CKR_ARGUMENTS_BAD)
    ORGPROXY_CKR(CKR_ATTRIBUTE_SENSITIVE)
    ORGPROXY_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    ORGPROXY_CKR(CKR_DEVICE_ERROR)
    ORGPROXY_CKR(CKR_DEVICE_MEMORY)
    ORGPROXY_CKR(CKR_DEVICE_REMOVED)
    ORGPROXY_CKR(CKR_KEY_HANDLE_INVALID)
    ORGPROXY_CKR(CKR_KEY_TYPE_INCONSISTENT)
    ORGPROXY_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    ORGPROXY_CKR(CKR_MECHANISM_INVALID)
    ORGPROXY_CKR(CKR_MECHANISM_PARAM_INVALID)
    ORGPROXY_CKR(CKR_OBJECT_HANDLE_INVALID)
    ORGPROXY_CKR(CKR_OPERATION_ACTIVE)
    ORGPROXY_CKR(CKR_PIN_INCORRECT)
    ORGPROXY_CKR(CKR_PIN_INVALID)
    ORGPROXY_CKR(CKR_PIN_LEN_RANGE)
    ORGPROXY_CKR(CKR_PIN_EXPIRED)
    ORGPROXY_CKR(CKR_PIN_LOCKED)
    ORGPROXY_CKR(CKR_SESSION_CLOSED)
    ORGPROXY_CKR(CKR_SESSION_COUNT)
    ORGPROXY_CKR(CKR_SESSION_HANDLE_INVALID)
    ORGPROXY_CKR(CKR_TOKEN_NOT_PRESENT)
    ORGPROXY_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    ORGPROXY_CKR(CKR_USER_ALREADY_LOGGED_IN)
    ORGPROXY_CKR(CKR_USER_NOT_LOGGED_IN)
    ORGPROXY_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    ORGPROXY_CKR(CKR_USER_TYPE_INVALID)
    ORGPROXY_CKR(CKR_DATA_LEN_RANGE)
    ORGPROXY_CKR(CKR_BUFFER_TOO_SMALL)
    ORGPROXY_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    ORGPROXY_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef ORGPROXY_CKR
    default: {
      std::ostringstream out;
      out << "CKR_0x" << std::hex << rv;
      return out.str();
    }
  }
}

void check_ck(CK_RV rv, const std::string& what, const char* call) {
  if (rv != CKR_OK) throw KeystoreError(what + ": " + call + " failed: " + ckr_name(rv), rv);
}

Module::Module(std::string name, std::string path) : name_(std::move(name)), path_(std::move(path)) {
  display_name_ = name_.empty() ? path_ : name_;
  if (!path_.empty()) {
    functions_ = p11_kit_module_load(path_.c_str(), 0);  // 0 = managed
    if (functions_ == nullptr)
      throw KeystoreError("PKCS#11 module " + display_name_ + ": cannot load " + path_ + ": " + p11_kit_message());
  } else {
    // A registered module (p11-kit's module configuration): load them all, keep the one named.
    CK_FUNCTION_LIST** all = p11_kit_modules_load(nullptr, 0);
    if (all != nullptr) {
      for (CK_FUNCTION_LIST** m = all; *m != nullptr; ++m) {
        char* registered = p11_kit_module_get_name(*m);
        bool wanted = registered != nullptr && name_ == registered;
        std::free(registered);
        if (wanted) {
          char* file = p11_kit_module_get_filename(*m);
          if (file != nullptr) {
            path_ = file;
            std::free(file);
          }
          break;
        }
      }
      p11_kit_modules_release(all);
    }
    if (path_.empty())
      throw KeystoreError("PKCS#11 module " + name_ + ": no p11-kit registered module of that name");
    functions_ = p11_kit_module_load(path_.c_str(), 0);
    if (functions_ == nullptr)
      throw KeystoreError("PKCS#11 module " + name_ + ": cannot load " + path_ + ": " + p11_kit_message());
  }
  if (CK_RV rv = p11_kit_module_initialize(functions_); rv != CKR_OK) {
    p11_kit_module_release(functions_);
    functions_ = nullptr;
    throw KeystoreError("PKCS#11 module " + display_name_ + ": C_Initialize failed: " + ckr_name(rv), rv);
  }
  spdlog::info("keystore: PKCS#11 module {} loaded from {} (p11-kit managed)", display_name_, path_);
}

Module::~Module() {
  if (functions_ == nullptr) return;
  p11_kit_module_finalize(functions_);
  p11_kit_module_release(functions_);
}

std::vector<CK_SLOT_ID> Module::slots_with_token() const {
  CK_ULONG count = 0;
  check_ck(functions_->C_GetSlotList(CK_TRUE, nullptr, &count), "PKCS#11 module " + display_name_,
           "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  check_ck(functions_->C_GetSlotList(CK_TRUE, slots.data(), &count), "PKCS#11 module " + display_name_,
           "C_GetSlotList");
  slots.resize(count);
  return slots;
}

AttributeMap read_attributes(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                             const std::vector<CK_ATTRIBUTE_TYPE>& types) {
  std::vector<CK_ATTRIBUTE> tmpl(types.size());
  for (size_t i = 0; i < types.size(); ++i) tmpl[i] = {types[i], nullptr, 0};
  // CKR_ATTRIBUTE_SENSITIVE / _TYPE_INVALID still fill the other lengths (PKCS#11 v2.40 §5.7).
  CK_RV rv = f->C_GetAttributeValue(session, object, tmpl.data(), tmpl.size());
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID)
    throw KeystoreError("C_GetAttributeValue failed: " + ckr_name(rv), rv);
  std::vector<std::string> buffers(types.size());
  for (size_t i = 0; i < types.size(); ++i) {
    if (tmpl[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) {
      tmpl[i].pValue = nullptr;
      continue;
    }
    buffers[i].resize(tmpl[i].ulValueLen);
    tmpl[i].pValue = buffers[i].data();
  }
  rv = f->C_GetAttributeValue(session, object, tmpl.data(), tmpl.size());
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID)
    throw KeystoreError("C_GetAttributeValue failed: " + ckr_name(rv), rv);
  AttributeMap out;
  for (size_t i = 0; i < types.size(); ++i) {
    if (tmpl[i].pValue == nullptr || tmpl[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) continue;
    buffers[i].resize(tmpl[i].ulValueLen);
    out.emplace(types[i], std::move(buffers[i]));
  }
  return out;
}

std::optional<bool> attribute_bool(const AttributeMap& attrs, CK_ATTRIBUTE_TYPE type) {
  auto it = attrs.find(type);
  if (it == attrs.end() || it->second.size() != sizeof(CK_BBOOL)) return std::nullopt;
  return it->second[0] != 0;
}

std::optional<CK_ULONG> attribute_ulong(const AttributeMap& attrs, CK_ATTRIBUTE_TYPE type) {
  auto it = attrs.find(type);
  if (it == attrs.end() || it->second.size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG value;
  std::memcpy(&value, it->second.data(), sizeof value);
  return value;
}

std::string trim_padded(const unsigned char* text, size_t width) {
  std::string s(reinterpret_cast<const char*>(text), width);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace orgproxy::keystore
