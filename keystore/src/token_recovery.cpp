// Token recovery (field case C19): restoring sessions and login after a fault, resynchronising with the other
// tokens of a module, and the background re-probe of an absent token. See the Token class comment.
#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"
#include "token.hpp"

namespace orgproxy::keystore {

CK_RV Token::recover(Fault fault, CK_RV cause, std::uint64_t seen_epoch) {
  std::lock_guard lock(login_mutex_);
  if (epoch() != seen_epoch) return CKR_OK;  // another thread recovered from the same fault meanwhile
  if (!usable()) return login_failure_.empty() ? CKR_TOKEN_NOT_PRESENT : login_failure_rv_;
  stats_->record_recovery(reason_name(fault));
  spdlog::warn("keystore: {}: {} ({}): recovering (new session, login checked, key looked up again), then one "
               "retry",
               display_, reason_name(fault), ckr_name(cause));
  // These faults kill every session of the token (a restarted PKCS#11 daemon, a re-initialised module): no
  // pooled session may be handed out again. A lost login or a stale key handle leaves the sessions usable.
  if (fault == Fault::session_lost || fault == Fault::device_error) {
    pool_.flush();
    module_->bump_session_epoch();
    seen_module_epoch_.store(module_->session_epoch(), std::memory_order_release);
  }
  CK_RV rv = ensure_logged_in_locked();
  if (rv != CKR_OK) {
    if (classify(rv) == Fault::absent || classify(rv) == Fault::device_error) {
      // The token does not answer: treat it as absent (fast failures, background re-probe).
      mark_absent(rv);
    }
    return rv;
  }
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  return CKR_OK;
}

CK_RV Token::ensure_logged_in_locked() {
  if (!login_failure_.empty()) return login_failure_rv_;
  CK_FUNCTION_LIST* f = module_->f();
  CK_SESSION_INFO session_info{};
  CK_RV rv = anchor_ != CK_INVALID_HANDLE ? f->C_GetSessionInfo(anchor_, &session_info) : CKR_SESSION_HANDLE_INVALID;
  // After a module re-initialisation, the handle may now name another slot's session: not ours any more.
  if (rv == CKR_OK && session_info.slotID != slot_) {
    anchor_ = CK_INVALID_HANDLE;
    rv = CKR_SESSION_HANDLE_INVALID;
  }
  if (rv != CKR_OK) {
    // The anchor died with the others; a new one carries the login from now on.
    if (anchor_ != CK_INVALID_HANDLE) f->C_CloseSession(anchor_);
    anchor_ = CK_INVALID_HANDLE;
    rv = f->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &anchor_);
    if (rv != CKR_OK) {
      anchor_ = CK_INVALID_HANDLE;
      return rv;
    }
    rv = f->C_GetSessionInfo(anchor_, &session_info);
    if (rv != CKR_OK) return rv;
  }
  if (!logged_in_ || !(info_.flags & CKF_LOGIN_REQUIRED)) return CKR_OK;  // nothing of ours to restore
  if (session_info.state == CKS_RO_USER_FUNCTIONS || session_info.state == CKS_RW_USER_FUNCTIONS) return CKR_OK;
  return login_locked(anchor_);
}

void Token::resync_with_module() {
  std::lock_guard lock(login_mutex_);
  const std::uint64_t module_epoch = module_->session_epoch();
  if (module_epoch == seen_module_epoch_.load(std::memory_order_acquire)) return;  // done by another thread
  seen_module_epoch_.store(module_epoch, std::memory_order_release);
  if (!usable()) return;
  stats_->record_recovery("session_lost");
  spdlog::warn("keystore: {}: another token of the module lost its sessions; dropping ours and checking the login",
               display_);
  pool_.flush();
  CK_RV rv = ensure_logged_in_locked();
  if (rv != CKR_OK) {
    if (classify(rv) == Fault::absent || classify(rv) == Fault::device_error) mark_absent(rv);
    return;
  }
  epoch_.fetch_add(1, std::memory_order_acq_rel);
}

void Token::mark_absent(CK_RV cause) {
  if (!usable_.exchange(false, std::memory_order_acq_rel)) return;  // already known
  stats_->record_recovery("token_absent");
  spdlog::error("keystore: {}: {}: token marked unavailable; its identities answer 503 until a re-probe finds it",
                display_, ckr_name(cause));
  start_reprobe();
}

void Token::start_reprobe() {
  std::lock_guard lock(reprobe_mutex_);
  if (reprobe_running_ || stopping_) return;
  if (reprobe_thread_.joinable()) reprobe_thread_.join();  // the previous prober has finished its loop
  reprobe_running_ = true;
  reprobe_thread_ = std::thread([this] { reprobe_loop(); });
}

void Token::reprobe_loop() {
  auto delay = reprobe_policy_.initial;
  std::unique_lock lock(reprobe_mutex_);
  for (;;) {
    if (reprobe_cv_.wait_for(lock, delay, [&] { return stopping_; })) break;
    lock.unlock();
    const bool done = probe_once();
    lock.lock();
    if (done) break;
    delay = std::min(delay * 2, reprobe_policy_.max);
  }
  reprobe_running_ = false;
}

bool Token::probe_once() {
  auto gate = module_->enter();
  std::lock_guard lock(login_mutex_);
  CK_TOKEN_INFO info{};
  CK_RV rv = module_->f()->C_GetTokenInfo(slot_, &info);
  if (rv != CKR_OK) {
    spdlog::debug("keystore: {}: still unavailable ({})", display_, ckr_name(rv));
    return false;
  }
  if (trim_padded(info.serialNumber, sizeof info.serialNumber) != serial_) {
    spdlog::error("keystore: {}: the slot now holds another token (serial {}); waiting for ours", display_,
                  trim_padded(info.serialNumber, sizeof info.serialNumber));
    return false;
  }
  pool_.flush();  // sessions of before the removal are dead
  if (anchor_ != CK_INVALID_HANDLE) module_->f()->C_CloseSession(anchor_);
  anchor_ = CK_INVALID_HANDLE;
  rv = ensure_logged_in_locked();
  if (rv != CKR_OK) {
    // A refused PIN stops the probing for good (it is never tried again); anything else: probe later.
    return !login_failure_.empty();
  }
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  usable_.store(true, std::memory_order_release);
  stats_->record_recovery("token_returned");
  spdlog::warn("keystore: {}: token back; its identities are usable again", display_);
  return true;
}

void Token::module_reinitialised() {
  std::lock_guard lock(login_mutex_);
  CK_FUNCTION_LIST* f = module_->f();
  // Every session (the anchor too) died with C_Finalize: forget the handles, never close them.
  anchor_ = CK_INVALID_HANDLE;
  seen_module_epoch_.store(module_->session_epoch(), std::memory_order_release);
  std::optional<CK_SLOT_ID> found;
  try {
    for (CK_SLOT_ID slot : module_->slots_with_token()) {
      CK_TOKEN_INFO info{};
      if (f->C_GetTokenInfo(slot, &info) == CKR_OK && trim_padded(info.serialNumber, sizeof info.serialNumber) == serial_ &&
          trim_padded(info.label, sizeof info.label) == label_) {
        found = slot;
        break;
      }
    }
  } catch (const KeystoreError& e) {
    spdlog::error("keystore: {}: after the module's re-initialisation: {}", display_, e.what());
  }
  pool_.abandon(found.value_or(slot_));
  // Keys are looked up again by CKA_ID (+ label) at their next sign: handles are numbered anew.
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (!found) {
    mark_absent(CKR_TOKEN_NOT_PRESENT);
    return;
  }
  slot_ = *found;
  if (!login_failure_.empty()) return;  // a refused PIN is never tried again
  CK_RV rv = ensure_logged_in_locked();
  if (rv != CKR_OK) {
    spdlog::error("keystore: {}: no session or login after the module's re-initialisation: {}", display_,
                  ckr_name(rv));
    mark_absent(rv);
    return;
  }
  if (!usable_.exchange(true, std::memory_order_acq_rel)) {
    stats_->record_recovery("token_returned");
    spdlog::warn("keystore: {}: token back after the module's re-initialisation", display_);
  }
}

}  // namespace orgproxy::keystore
