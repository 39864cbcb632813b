// PKCS#11 through p11-kit: the module handle (managed mode), CKR_ names, attribute reading.
// Internal to the keystore.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

namespace orgproxy::keystore {

/// "CKR_PIN_INCORRECT" for the values we name in messages, else "CKR_0x...".
std::string ckr_name(CK_RV rv);

/// Throws KeystoreError("<what>: <call> failed: CKR_...", rv) when rv != CKR_OK.
void check_ck(CK_RV rv, const std::string& what, const char* call);

/// Admission to a module's functions during a re-initialisation (C_Finalize + C_Initialize): every user of
/// the module's sessions (a sign, a login, an object search, a re-probe) holds it shared; the
/// re-initialisation holds it exclusive, so it never pulls a session from under a handshake. Writer-preferring:
/// once a re-initialisation waits, new users wait behind it, so a continuous flow of signs cannot starve it;
/// the exclusive wait is bounded (a sign stuck in a dead token must not freeze the reload forever).
/// Not re-entrant: take it once, at the outermost entry point.
class ModuleGate {
 public:
  void lock_shared();
  void unlock_shared();
  /// False when the users in flight did not all leave within `max_wait` (nothing is then held).
  bool try_lock_for(std::chrono::milliseconds max_wait);
  void unlock();

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  unsigned readers_ = 0;
  unsigned writers_waiting_ = 0;
  bool writer_ = false;
};

/// A PKCS#11 module loaded by p11-kit in MANAGED mode: p11-kit initialises the real module with
/// CKF_OS_LOCKING_OK (SoftHSM turns its mutexes off without it, and two signing threads then crash),
/// counts initialisations shared with other users of the module in this process, and closes this
/// instance's sessions at finalisation.
class Module {
 public:
  /// `path` non-empty: the shared object; else `name` is a p11-kit registered module name.
  /// Throws KeystoreError naming the module.
  Module(std::string name, std::string path);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* f() const { return functions_; }
  /// The configured name (or the path when no name was given), for messages.
  const std::string& display_name() const { return display_name_; }
  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  /// Slots that hold a token (C_GetSlotList(CK_TRUE)).
  std::vector<CK_SLOT_ID> slots_with_token() const;

  /// Bumped when a token of this module lost its sessions (CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_ERROR): a
  /// restarted PKCS#11 daemon or a re-initialised module kills the sessions of EVERY token of the module, and
  /// session handles are then reused across slots. The other tokens see the new value and resynchronise.
  std::uint64_t session_epoch() const { return session_epoch_.load(std::memory_order_acquire); }
  void bump_session_epoch() { session_epoch_.fetch_add(1, std::memory_order_acq_rel); }

  /// RAII shared hold of the module's gate (see ModuleGate): every call on this module's sessions runs
  /// inside one, so a re-initialisation waits for it and it waits for a re-initialisation.
  std::shared_lock<ModuleGate> enter() const { return std::shared_lock<ModuleGate>(gate_); }

  /// Something that holds sessions of this module (a Token), told of a re-initialisation while the gate is
  /// held exclusive: its sessions and login are gone and its handles may now name other objects.
  class User {
   public:
    virtual ~User() = default;
    /// Runs with the gate held exclusive: must not call enter().
    virtual void module_reinitialised() = 0;
  };
  void add_user(User* user);
  void remove_user(User* user);

  /// Re-initialises the module (p11-kit managed finalize + initialize: C_Finalize, then C_Initialize with
  /// CKF_OS_LOCKING_OK), so that a module which reads its token list only at C_Initialize (SoftHSMv2 2.6)
  /// sees tokens created since. Waits up to `max_wait` for the calls in flight to end, keeping new ones
  /// waiting (signing is quiesced, not failed); then every registered User re-opens its sessions and
  /// logs in again before the gate opens. Returns false, with nothing changed, when the calls in flight
  /// did not end in time. Throws KeystoreError when C_Initialize fails (the module is then unusable:
  /// its tokens are marked absent by their users). When another user of the same module in this process
  /// holds a p11-kit initialisation too, p11-kit keeps the module initialised: nothing new appears.
  bool reinitialise(std::chrono::milliseconds max_wait);
  /// How many re-initialisations succeeded (metrics, tests).
  std::uint64_t reinitialisations() const { return reinitialisations_.load(std::memory_order_acquire); }

 private:
  mutable ModuleGate gate_;
  std::mutex users_mutex_;
  std::vector<User*> users_;
  std::atomic<std::uint64_t> reinitialisations_{0};
  std::atomic<std::uint64_t> session_epoch_{0};
  std::string name_, path_, display_name_;
  CK_FUNCTION_LIST* functions_ = nullptr;
};

/// Attribute values of one object, read in one C_GetAttributeValue round trip per pass (lengths, values).
/// Attributes the object lacks or refuses to reveal (sensitive) are absent from the map.
using AttributeMap = std::map<CK_ATTRIBUTE_TYPE, std::string>;
AttributeMap read_attributes(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                             const std::vector<CK_ATTRIBUTE_TYPE>& types);

/// CK_BBOOL / CK_ULONG views of an attribute value (nullopt when absent or malformed).
std::optional<bool> attribute_bool(const AttributeMap& attrs, CK_ATTRIBUTE_TYPE type);
std::optional<CK_ULONG> attribute_ulong(const AttributeMap& attrs, CK_ATTRIBUTE_TYPE type);

/// A fixed-width, space-padded PKCS#11 text field (CK_TOKEN_INFO label, ...) without its padding.
std::string trim_padded(const unsigned char* text, size_t width);

}  // namespace orgproxy::keystore
