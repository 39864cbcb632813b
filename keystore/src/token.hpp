// One PKCS#11 token: login, the index of its private keys, its mechanisms, its session pool and signing.
// Internal to the keystore.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pkcs11.hpp"
#include "session_pool.hpp"
#include "stats.hpp"

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

/// A certificate object (CKO_CERTIFICATE, X.509) as found by the token-wide search.
struct TokenCertObject {
  std::string id;     ///< CKA_ID, raw bytes (the key's, for a certificate installed for a key)
  std::string label;  ///< CKA_LABEL
  std::string der;    ///< CKA_VALUE
};

/// What one token-wide search found: private keys, and (when asked) certificates with their values.
struct TokenIndex {
  std::vector<TokenKeyObject> keys;
  std::vector<TokenCertObject> certificates;
};

/// A private key as signing sees it: the handle found at load, and what finds the key again (one search by
/// class + CKA_ID (+ CKA_LABEL)) once a recovery has made handles suspect (privacyIDEA reused stale handles).
struct KeyRef {
  std::string id;     ///< CKA_ID, raw bytes
  std::string label;  ///< CKA_LABEL ("" = not part of the search)
  std::atomic<CK_OBJECT_HANDLE> handle{CK_INVALID_HANDLE};
  std::atomic<std::uint64_t> epoch{0};  ///< the token's epoch() the handle was resolved in
};

/// How an absent token is re-probed (KeystoreOptions::reprobe_*).
struct ReprobePolicy {
  std::chrono::milliseconds initial{250};
  std::chrono::milliseconds max{5000};
};

/// One token. Recovery (field case C19): a sign failing with CKR_SESSION_HANDLE_INVALID / _CLOSED,
/// CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_ERROR or CKR_KEY_HANDLE_INVALID / CKR_OBJECT_HANDLE_INVALID drops the
/// session (all pooled sessions when the fault kills sessions), restores the login (C_GetSessionInfo on the
/// anchor session, a new anchor if it died, C_Login only when the token says it is logged out), bumps the
/// epoch so keys are looked up again once, and retries the sign once. Concurrent failures of one fault are
/// recovered once (the first thread recovers, the others see the new epoch and just retry).
/// CKR_TOKEN_NOT_PRESENT / CKR_DEVICE_REMOVED mark the token unusable: signs fail at once without calling the
/// module, and a background thread probes the slot (C_GetTokenInfo) with doubling delays, logs in again once
/// the token answers, and makes it usable again. A PIN refusal is remembered and never retried.
/// Module re-initialisation (field case C21 d, Module::reinitialise): every call on the token's sessions runs
/// inside the module's gate; when the module is re-initialised the token forgets its sessions without closing
/// them, finds its slot again by serial, logs in once, and bumps the epoch so keys are looked up again.
class Token final : public Module::User {
 public:
  /// Opens the anchor session. `max_sessions` bounds concurrent signs on this token.
  Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, const CK_TOKEN_INFO& info, unsigned max_sessions,
        std::shared_ptr<StatsRecorder> stats = std::make_shared<StatsRecorder>(), ReprobePolicy reprobe = {});
  ~Token() override;
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;

  const std::string& label() const { return label_; }
  const std::string& serial() const { return serial_; }
  /// "token 'Cabinet A' (serial 1a2b..., module softhsm)" for messages.
  const std::string& display() const { return display_; }
  const CK_TOKEN_INFO& info() const { return info_; }
  const Module& module() const { return *module_; }
  /// The slot holding the token (may change at a module re-initialisation: SoftHSM numbers slots by serial).
  CK_SLOT_ID slot() const { return slot_; }

  /// Logs the user in once (C_Login on the anchor session, which stays open so the login lasts).
  /// CKR_USER_ALREADY_LOGGED_IN is success. A refused PIN (CKR_PIN_INCORRECT, _LOCKED, _INVALID, _LEN_RANGE,
  /// _EXPIRED) throws KeystoreError naming the token, never the PIN, and is remembered: later calls throw the
  /// same error without calling C_Login again (real tokens lock after a few wrong PINs).
  void login(const std::string& pin);
  bool logged_in() const { return logged_in_; }

  /// Every private key of the token with one C_FindObjectsInit/C_FindObjects over all objects, EC points
  /// taken from the public key objects of the same CKA_ID. Handles stay valid for the session's lifetime.
  std::vector<TokenKeyObject> index_private_keys() { return index_objects(false).keys; }
  /// The same single search, also returning the X.509 certificate objects (their CKA_VALUE is read only
  /// when `with_certificates`: it costs one more C_GetAttributeValue per certificate).
  TokenIndex index_objects(bool with_certificates);

  /// Whether C_GetMechanismList of the slot offers `mechanism` (read once).
  bool has_mechanism(CK_MECHANISM_TYPE mechanism) const { return mechanisms_.count(mechanism) != 0; }

  /// C_SignInit + C_Sign on a borrowed session, with the recovery described above. `max_signature` bounds
  /// the output. Throws KeystoreError (ckr() set) when the sign fails after the one retry, or at once while
  /// the token is unusable (CKR_TOKEN_NOT_PRESENT).
  std::vector<unsigned char> sign(KeyRef& key, CK_MECHANISM& mechanism, const unsigned char* data, size_t length,
                                  size_t max_signature);

  /// False while the token is absent (re-probing) or after it refused the PIN.
  bool usable() const { return usable_.load(std::memory_order_acquire); }
  /// Bumped by every recovery: key handles resolved in an older epoch are looked up again before use.
  std::uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  SessionPool& sessions() { return pool_; }

  /// Module::User: called by Module::reinitialise with the gate held exclusive.
  void module_reinitialised() override;

 private:
  enum class Fault { none, session_lost, login_lost, device_error, key_handle, absent };
  static Fault classify(CK_RV rv);
  static const char* reason_name(Fault fault);

  CK_RV try_sign(KeyRef& key, CK_MECHANISM& mechanism, const unsigned char* data, size_t length,
                 std::vector<unsigned char>& signature, const char*& call);
  CK_RV resolve_key(KeyRef& key, CK_SESSION_HANDLE session, std::uint64_t epoch);
  /// Recovers from `fault` seen in `seen_epoch`; returns the CKR_ that stops the recovery (CKR_OK = retry).
  CK_RV recover(Fault fault, CK_RV cause, std::uint64_t seen_epoch);
  /// With login_mutex_ held: makes sure the token is logged in (when we logged in before). Never calls
  /// C_Login after a PIN refusal, nor when the token already reports a user session.
  CK_RV ensure_logged_in_locked();
  CK_RV login_locked(CK_SESSION_HANDLE session);
  void mark_absent(CK_RV cause);
  /// Another token of the module lost its sessions: drop ours, check the login, look keys up again.
  void resync_with_module();
  void start_reprobe();
  void reprobe_loop();
  bool probe_once();

  std::shared_ptr<StatsRecorder> stats_;
  ReprobePolicy reprobe_policy_;
  std::atomic<std::uint64_t> epoch_{1};
  std::atomic<std::uint64_t> seen_module_epoch_{0};
  std::string pin_;  ///< kept after a successful login, to log in again after a lost login; cleansed on exit

  std::mutex reprobe_mutex_;
  std::condition_variable reprobe_cv_;
  bool reprobe_running_ = false;
  bool stopping_ = false;
  std::thread reprobe_thread_;

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
