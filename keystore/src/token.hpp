// One PKCS#11 token: login, the index of its private keys, its mechanisms, its session pool and signing.
// Internal to the keystore.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "pkcs11.hpp"
#include "session_pool.hpp"

namespace orgproxy::keystore {

/// A private key object as found by the token-wide search, with what the load checks need.
struct TokenKeyObject {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  std::string id;     ///< CKA_ID, raw bytes
  std::string label;  ///< CKA_LABEL
  CK_KEY_TYPE key_type = CKK_RSA;
  bool sensitive = false;    ///< CKA_SENSITIVE (false when the token does not say)
  bool extractable = true;   ///< CKA_EXTRACTABLE (true when the token does not say)
  bool can_sign = false;     ///< CKA_SIGN
  std::string modulus, public_exponent;  ///< RSA (big-endian)
  std::string ec_params;                 ///< EC: DER of the curve OID
  std::string ec_point;                  ///< EC: DER OCTET STRING of the point, from the public key object
};

class Token {
 public:
  /// Opens the anchor session. `max_sessions` bounds concurrent signs on this token.
  Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, const CK_TOKEN_INFO& info, unsigned max_sessions);
  ~Token();
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;

  const std::string& label() const { return label_; }
  const std::string& serial() const { return serial_; }
  /// "token 'Cabinet A' (serial 1a2b..., module softhsm)" for messages.
  const std::string& display() const { return display_; }
  const CK_TOKEN_INFO& info() const { return info_; }
  const Module& module() const { return *module_; }

  /// Logs the user in once (C_Login on the anchor session, which stays open so the login lasts).
  /// CKR_USER_ALREADY_LOGGED_IN is success. A refused PIN (CKR_PIN_INCORRECT, _LOCKED, _INVALID, _LEN_RANGE,
  /// _EXPIRED) throws KeystoreError naming the token, never the PIN, and is remembered: later calls throw the
  /// same error without calling C_Login again (real tokens lock after a few wrong PINs).
  void login(const std::string& pin);
  bool logged_in() const { return logged_in_; }

  /// Every private key of the token with one C_FindObjectsInit/C_FindObjects over all objects, EC points
  /// taken from the public key objects of the same CKA_ID. Handles stay valid for the session's lifetime.
  std::vector<TokenKeyObject> index_private_keys();

  /// Whether C_GetMechanismList of the slot offers `mechanism` (read once).
  bool has_mechanism(CK_MECHANISM_TYPE mechanism) const { return mechanisms_.count(mechanism) != 0; }

  /// C_SignInit + C_Sign on a borrowed session. `max_signature` bounds the output. Throws KeystoreError
  /// (ckr() set) on failure; a broken session is closed rather than pooled, a lost device marks the token
  /// unusable.
  std::vector<unsigned char> sign(CK_OBJECT_HANDLE key, CK_MECHANISM& mechanism, const unsigned char* data,
                                  size_t length, size_t max_signature);

  /// False after the token reported itself absent or failing.
  bool usable() const { return usable_.load(std::memory_order_relaxed); }
  SessionPool& sessions() { return pool_; }

 private:
  std::shared_ptr<Module> module_;
  CK_SLOT_ID slot_;
  CK_TOKEN_INFO info_;
  std::string label_, serial_, display_;
  CK_SESSION_HANDLE anchor_ = CK_INVALID_HANDLE;
  std::mutex login_mutex_;
  bool logged_in_ = false;
  std::string login_failure_;
  CK_RV login_failure_rv_ = CKR_OK;
  std::set<CK_MECHANISM_TYPE> mechanisms_;
  std::atomic<bool> usable_{true};
  SessionPool pool_;
};

}  // namespace orgproxy::keystore
