#include "session_pool.hpp"

#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

SessionPool::SessionPool(CK_FUNCTION_LIST* f, CK_SLOT_ID slot, unsigned max_sessions, std::string owner)
    : f_(f), slot_(slot), max_sessions_(max_sessions == 0 ? 1 : max_sessions), owner_(std::move(owner)) {}

SessionPool::~SessionPool() {
  std::lock_guard lock(mutex_);
  for (CK_SESSION_HANDLE h : idle_) f_->C_CloseSession(h);
  if (open_ != idle_.size()) spdlog::error("keystore: {}: {} sessions still borrowed at shutdown", owner_, open_ - idle_.size());
}

SessionPool::Lease SessionPool::borrow() {
  unsigned long generation = 0;
  CK_SLOT_ID slot = 0;
  {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_ < max_sessions_; });
    if (!idle_.empty()) {
      CK_SESSION_HANDLE h = idle_.back();
      idle_.pop_back();
      return Lease(this, h, generation_);
    }
    ++open_;  // reserve the slot, open outside the lock
    generation = generation_;
    slot = slot_;
  }
  CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
  CK_RV rv = f_->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &h);
  if (rv != CKR_OK) {
    {
      std::lock_guard lock(mutex_);
      --open_;
    }
    available_.notify_one();
    throw KeystoreError(owner_ + ": C_OpenSession failed: " + ckr_name(rv), rv);
  }
  return Lease(this, h, generation);
}

unsigned SessionPool::open_sessions() const {
  std::lock_guard lock(mutex_);
  return open_;
}

void SessionPool::give_back(CK_SESSION_HANDLE handle, unsigned long generation, bool broken) {
  {
    std::lock_guard lock(mutex_);
    if (!broken && generation == generation_) {
      idle_.push_back(handle);
      available_.notify_one();
      return;
    }
    --open_;
    if (generation < abandoned_below_) {
      available_.notify_one();
      return;  // a session of before a re-initialisation: its handle may be someone else's now
    }
  }
  f_->C_CloseSession(handle);  // outside the lock; its result does not matter (the session may be gone)
  available_.notify_one();
}

void SessionPool::flush() {
  std::vector<CK_SESSION_HANDLE> dead;
  {
    std::lock_guard lock(mutex_);
    ++generation_;
    dead.swap(idle_);
    open_ -= static_cast<unsigned>(dead.size());
  }
  for (CK_SESSION_HANDLE h : dead) f_->C_CloseSession(h);
  available_.notify_all();
}

}  // namespace orgproxy::keystore

namespace orgproxy::keystore {

void SessionPool::abandon(CK_SLOT_ID slot) {
  {
    std::lock_guard lock(mutex_);
    ++generation_;
    abandoned_below_ = generation_;
    open_ -= static_cast<unsigned>(idle_.size());
    idle_.clear();
    slot_ = slot;
  }
  available_.notify_all();
}

}  // namespace orgproxy::keystore
