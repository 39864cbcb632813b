// SoftHsmToken: a SoftHSMv2 token in a test directory, with keys generated INSIDE the token.
//
// The token is initialised with `softhsm2-util --init-token` (a child process, spawned before this process
// touches the module). Keys and certificate objects are created in-process through p11-kit in managed mode
// (p11_kit_module_load + p11_kit_module_initialize, i.e. with CKF_OS_LOCKING_OK), one short PKCS#11 session
// per call: this gives full control over CKA_SENSITIVE/CKA_EXTRACTABLE/CKA_ID, costs no process start per key,
// and exercises what production faces: a second user of the same module in the same process (p11-kit counts
// initialisations; the fixture never calls C_Logout, so it never logs a keystore's sessions out).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <openssl/x509.h>

#include "orgproxy/testkit/pki.hpp"

namespace orgproxy::testkit {

/// What to generate in the token.
struct TokenKeyOptions {
  KeyType type = KeyType::rsa2048;
  std::string id;     ///< CKA_ID, raw bytes (e.g. std::string("\x01", 1)); must be non-empty
  std::string label;  ///< CKA_LABEL (may be empty)
  bool sensitive = true;     ///< CKA_SENSITIVE of the private key
  bool extractable = false;  ///< CKA_EXTRACTABLE of the private key (true only for negative tests)
};

/// A key pair generated in the token.
struct TokenKey {
  PkeyHandle public_key;  ///< public part only (default library context)
  std::string uri;        ///< RFC 7512: pkcs11:token=<label>;id=<%-encoded id>;type=private
  std::string id;         ///< CKA_ID, raw bytes
  std::string label;      ///< CKA_LABEL
};

/// RFC 7512 percent-encoding: every byte but ALPHA / DIGIT / "-" / "." / "_" / "~" becomes %XX (upper-case).
std::string pkcs11_uri_encode(const std::string& bytes);

/// Settings of the softhsm2.conf a SoftHsmToken writes (when the directory has none yet).
struct SoftHsmConfig {
  std::string so_pin = "5791357913";
  /// softhsm2.conf(5) `slots.mechanisms`, e.g. "-CKM_RSA_PKCS_PSS,-CKM_SHA256_RSA_PKCS_PSS" to take PSS away.
  std::string mechanisms = "ALL";
};

class SoftHsmToken {
 public:
  /// Creates `dir` and, unless present, `dir/softhsm2.conf` (tokendir `dir/tokens`), sets SOFTHSM2_CONF for
  /// this process (setenv), and initialises a token `label` with `user_pin` (SO PIN `so_pin`). Two tokens
  /// may share one dir (and one conf). Writes the PIN file `dir/<label>.pin` (PIN + "\n").
  /// Call it before any PKCS#11 user of this process initialises SoftHSM, or after all have finalised:
  /// SoftHSM reads its configuration and token list at C_Initialize.
  /// Throws std::runtime_error (softhsm2-util's output is quoted, the PINs never are).
  SoftHsmToken(std::filesystem::path dir, std::string label, std::string user_pin,
               std::string so_pin = "5791357913");
  /// Same, with the softhsm2.conf settings of `config`.
  SoftHsmToken(std::filesystem::path dir, std::string label, std::string user_pin, const SoftHsmConfig& config);

  const std::filesystem::path& dir() const { return dir_; }
  const std::string& label() const { return label_; }
  const std::string& user_pin() const { return user_pin_; }
  /// softhsm2.conf of this token, for SOFTHSM2_CONF of child processes.
  const std::filesystem::path& conf_path() const { return conf_path_; }
  /// "SOFTHSM2_CONF=<conf_path>", ready for a child's environment.
  std::string env_assignment() const { return "SOFTHSM2_CONF=" + conf_path_.string(); }
  /// The user PIN followed by one "\n".
  const std::filesystem::path& pin_file() const { return pin_file_; }
  /// Path of the SoftHSMv2 PKCS#11 module.
  static std::string module_path();

  /// Generates a key pair inside the token (private key CKA_PRIVATE, CKA_SIGN; CKA_SENSITIVE and
  /// CKA_EXTRACTABLE per `options`). RSA: 2048 bits, e = 65537. EC: P-256 / P-384.
  /// Throws std::runtime_error naming the failing PKCS#11 call and CKR_ value.
  TokenKey generate_key(const TokenKeyOptions& options);

  /// Stores `cert` as a CKO_CERTIFICATE (X.509) object with the given CKA_ID and CKA_LABEL.
  void store_certificate(X509* cert, const std::string& id, const std::string& label);

  /// RFC 7512 URI of an object of this token: pkcs11:token=<label>;id=<id>[;object=<label>];type=<type>.
  std::string uri_for(const std::string& id, const std::string& object_label = {},
                      const std::string& type = "private") const;

 private:
  std::filesystem::path dir_;
  std::filesystem::path conf_path_;
  std::filesystem::path pin_file_;
  std::string label_;
  std::string user_pin_;
};

}  // namespace orgproxy::testkit
