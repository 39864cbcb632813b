// Shared internals of the admin operations (admin.cpp, admin_keys.cpp, admin_import.cpp). Internal to the keystore.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <openssl/x509.h>

#include "orgproxy/keystore/admin.hpp"
#include "pkcs11.hpp"
#include "token.hpp"

namespace orgproxy::keystore::admin_detail {

/// RFC 7512 percent-encoding of every byte but ALPHA / DIGIT / "-" / "." / "_" / "~".
std::string uri_encode(const std::string& bytes);

/// "pkcs11:token=<label>;object=<label>;type=private".
std::string key_uri(const Token& token, const std::string& object_label);

/// A read-write session of a token, closed on destruction.
class RwSession {
 public:
  explicit RwSession(Token& token);
  ~RwSession();
  RwSession(const RwSession&) = delete;
  RwSession& operator=(const RwSession&) = delete;
  CK_SESSION_HANDLE get() const { return handle_; }
  CK_FUNCTION_LIST* f() const { return f_; }

 private:
  CK_FUNCTION_LIST* f_;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
};

/// Object handles matching `tmpl` (one search).
std::vector<CK_OBJECT_HANDLE> find_objects(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s,
                                           std::vector<CK_ATTRIBUTE> tmpl, const std::string& where);

/// Whether `label` is "<tenant>-<purpose>" or "<tenant>-<purpose>-<n>".
bool is_generation_label(const std::string& label, const std::string& tenant_id, const std::string& purpose);

/// Checks that the subject of `cert` has exactly one OU equal to `tenant_id`; returns "" or why not.
std::string check_ou(X509* cert, const std::string& tenant_id);

inline constexpr CK_BBOOL kTrue = CK_TRUE, kFalse = CK_FALSE;

/// A template entry pointing at `value` (which must outlive the PKCS#11 call).
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, const void* value, size_t length) {
  return {type, const_cast<void*>(value), static_cast<CK_ULONG>(length)};
}
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, const std::string& value) {
  return attr(type, value.data(), value.size());
}
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, const CK_BBOOL& value) { return attr(type, &value, sizeof value); }

/// DER encodings ("" when OpenSSL cannot encode).
std::string der_of(X509_NAME* name);
std::string der_of(X509* cert);

/// The first free generation label of (tenant, purpose) on the token: "<tenant>-<purpose>", then "-2", "-3"...
std::string next_label(Token& token, RwSession& s, const std::string& tenant_id, const std::string& purpose);

/// Throws KeystoreError("<what> is empty") when `value` is empty.
void require(const std::string& value, const char* what);

/// Stores `cert` as the certificate of the key with CKA_ID `id` (CKO_CERTIFICATE, X.509, public, on the token),
/// as the daemon finds it when an identity has no cert: file. Throws KeystoreError naming the token.
void store_certificate(Token& token, RwSession& s, X509* cert, const std::string& id, const std::string& label);

/// Stores a CA certificate of an identity's chain: CKA_CERTIFICATE_CATEGORY authority (PKCS#11 v2.40 §4.6.3),
/// no CKA_ID, labelled "CA <subject CN>". Throws KeystoreError naming the token.
void store_ca_certificate(Token& token, RwSession& s, X509* cert);

}  // namespace orgproxy::keystore::admin_detail
