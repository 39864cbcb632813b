// Keystore-side admin operations behind `orgproxy keys ...`: list what a token holds, generate a key pair in the
// token with its PKCS#10 request (signed by the token), import a PKCS#12, install a certificate issued for a
// key of the token, delete a site's objects. Plain parameters only: the CLI (daemon/src/cli_keys.cpp) maps the
// configuration onto them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

/// One object of a token, as `keys list` shows it.
struct TokenObjectInfo {
  std::string module, token_label, token_serial;
  std::string object_class;  ///< "private-key", "public-key", "certificate", "secret-key", "data", "other"
  std::string id;            ///< CKA_ID, raw bytes
  std::string label;         ///< CKA_LABEL
  std::string key_type;      ///< "RSA-2048", "EC P-256", ... ("" for certificates and data)
  std::optional<bool> sensitive, extractable, can_sign;  ///< private keys (absent when the token does not say)
  std::string certificate_subject;  ///< certificates: RFC 2253 subject
  std::string certificate_not_after;  ///< certificates: "YYYY-MM-DD"
  std::string uri;  ///< RFC 7512 URI naming it: pkcs11:token=..;id=..;object=..;type=..
};

/// The ORG subject of a certificate request (DOMAIN.md: C=FR, ST=<departement>, O=<raison sociale>,
/// OU=<structure id>, CN=<name>; CN INSI-AUTO / INSI-MANU for the INSi purposes).
struct OrgRequestSubject {
  std::string departement;
  std::string organisation;
  std::string tenant_id;
  std::string common_name;
};

/// A key generated in the token and its request.
struct GeneratedKey {
  std::string key_uri;  ///< what to put in the configuration (`key:`)
  std::string label;    ///< CKA_LABEL = CKA_ID of the new objects
  std::string csr_pem;  ///< PKCS#10, SHA-256 with RSA, signed in the token
};

/// The objects of a (tenant, purpose) are labelled "<tenant>-<purpose>", renewals "<tenant>-<purpose>-2", -3...
/// (CKA_ID = the label's bytes), so one purpose can hold the current and the renewed key during an overlap.
/// Every operation throws KeystoreError with a message naming what and where (never a PIN or key material).
class KeyAdmin {
 public:
  /// Loads the modules (p11-kit managed), and logs in to their tokens with the PIN file of `options`.
  static std::unique_ptr<KeyAdmin> open(const KeystoreOptions& options);
  virtual ~KeyAdmin() = default;

  /// Every object of every token of the modules (one search per token).
  virtual std::vector<TokenObjectInfo> list_objects() = 0;

  /// Generates an RSA-2048 key pair in `token` (label; "" = the only token) with CKA_SENSITIVE true,
  /// CKA_EXTRACTABLE false, CKA_SIGN true, and returns its URI and a CSR with `subject`, signed by the token.
  virtual GeneratedKey generate(const std::string& token, const std::string& tenant_id, const std::string& purpose,
                                const OrgRequestSubject& subject) = 0;

  /// Imports the key and certificate of a PKCS#12 file: the key is stored sensitive and not extractable, with
  /// its public key and certificate under the same CKA_ID. Refuses a certificate whose subject OU is not
  /// `tenant_id`, a wrong password, and a file without key or certificate. The file's CA certificates are
  /// stored too (CKA_CERTIFICATE_CATEGORY authority, no CKA_ID; each once per token), so an identity without a
  /// cert: file presents its chain. Returns the key's URI.
  virtual std::string import_pkcs12(const std::string& token, const std::string& tenant_id, const std::string& purpose,
                                    const std::string& p12_file, const std::string& password) = 0;

  /// Stores the leaf certificate of `cert_file` (PEM) beside the key of (tenant, purpose) it was issued for
  /// (the renewal generation whose public key matches). Refuses a certificate that matches no such key, and one
  /// whose OU is not `tenant_id`. Returns the key's URI.
  virtual std::string install_certificate(const std::string& token, const std::string& tenant_id,
                                          const std::string& purpose, const std::string& cert_file) = 0;

  /// The objects that `remove` would destroy: all generations of (tenant, purpose), or only `label` when given.
  virtual std::vector<TokenObjectInfo> objects_of(const std::string& token, const std::string& tenant_id,
                                                  const std::string& purpose, const std::string& label = {}) = 0;
  /// Destroys them (C_DestroyObject); returns how many. Keys are not extractable: this is final.
  virtual unsigned remove(const std::string& token, const std::string& tenant_id, const std::string& purpose,
                          const std::string& label = {}) = 0;
};

/// Whether the key URI `uri` (as in a configuration) selects `object` (token and object attributes).
bool uri_selects(const std::string& uri, const TokenObjectInfo& object);

}  // namespace orgproxy::keystore
