// A pool of PKCS#11 sessions of one token. Internal to the keystore.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "pkcs11.hpp"

namespace orgproxy::keystore {

/// Sessions of one slot, opened on demand up to `max_sessions` and then reused. A borrower gets a session of
/// its own for the whole operation (C_SignInit + C_Sign must not interleave on one session); the mutex only
/// guards the free list, never a PKCS#11 call, so signs run in parallel (one shared session behind a lock
/// halves the rate: notes/pkcs11-bridge.md). When all sessions are out, borrowers wait: this bounds the
/// concurrent signs per token.
class SessionPool {
 public:
  SessionPool(CK_FUNCTION_LIST* f, CK_SLOT_ID slot, unsigned max_sessions, std::string owner);
  ~SessionPool();  ///< closes every idle session (borrowed ones must be back)
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  /// RAII borrow: returns the session on destruction, or closes it when marked broken.
  class Lease {
   public:
    Lease(SessionPool* pool, CK_SESSION_HANDLE handle, unsigned long generation)
        : pool_(pool), handle_(handle), generation_(generation) {}
    Lease(Lease&& other) noexcept
        : pool_(other.pool_), handle_(other.handle_), generation_(other.generation_), broken_(other.broken_) {
      other.pool_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_ != nullptr) pool_->give_back(handle_, generation_, broken_);
    }
    CK_SESSION_HANDLE handle() const { return handle_; }
    /// The session is unusable (CKR_SESSION_HANDLE_INVALID...): close it instead of pooling it.
    void mark_broken() { broken_ = true; }

   private:
    SessionPool* pool_;
    CK_SESSION_HANDLE handle_;
    unsigned long generation_;
    bool broken_ = false;
  };

  /// Borrows an idle session or opens one (read-only, serial). Throws KeystoreError if C_OpenSession fails.
  Lease borrow();
  unsigned max_sessions() const { return max_sessions_; }
  /// Sessions currently open (idle + borrowed).
  unsigned open_sessions() const;
  /// Drops every session: idle ones are closed now, borrowed ones when they come back (a lost session,
  /// a re-initialised module or a removed token leaves all of them dead: none may be handed out again).
  void flush();
  /// Forgets every session WITHOUT closing it, and opens the next ones on `slot`: after the module was
  /// finalised its session handles are dead, and the module may already have handed the same numbers to new
  /// sessions of other tokens, which a C_CloseSession would kill. Leases still out are forgotten likewise.
  void abandon(CK_SLOT_ID slot);

 private:
  void give_back(CK_SESSION_HANDLE handle, unsigned long generation, bool broken);

  CK_FUNCTION_LIST* f_;
  CK_SLOT_ID slot_;
  unsigned max_sessions_;
  std::string owner_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::vector<CK_SESSION_HANDLE> idle_;
  unsigned open_ = 0;
  unsigned long generation_ = 0;  ///< bumped by flush(); leases of older generations are closed on return
  unsigned long abandoned_below_ = 0;  ///< leases of generations below this are dropped, never closed
};

}  // namespace orgproxy::keystore
