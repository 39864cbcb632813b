// Shared internals of the admin operations (admin.cpp, admin_keys.cpp). Internal to the keystore.
#pragma once

#include <memory>
#include <string>
#include <vector>

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

}  // namespace orgproxy::keystore::admin_detail
