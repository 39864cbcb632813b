#include "token.hpp"

#include <algorithm>
#include <map>

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {
namespace {

std::string make_display(const std::string& label, const std::string& serial, const Module& module) {
  return "token '" + label + "' (serial " + serial + ", module " + module.display_name() + ")";
}

bool is_pin_refusal(CK_RV rv) {
  return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
         rv == CKR_PIN_EXPIRED;
}

}  // namespace

Token::Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, const CK_TOKEN_INFO& info, unsigned max_sessions,
             std::shared_ptr<StatsRecorder> stats, ReprobePolicy reprobe)
    : stats_(std::move(stats)),
      reprobe_policy_(reprobe),
      module_(std::move(module)),
      slot_(slot),
      info_(info),
      label_(trim_padded(info.label, sizeof info.label)),
      serial_(trim_padded(info.serialNumber, sizeof info.serialNumber)),
      display_(make_display(label_, serial_, *module_)),
      pool_(module_->f(), slot, max_sessions, display_) {
  seen_module_epoch_ = module_->session_epoch();
  auto gate = module_->enter();
  check_ck(module_->f()->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &anchor_), display_,
           "C_OpenSession");
  CK_ULONG count = 0;
  if (module_->f()->C_GetMechanismList(slot_, nullptr, &count) == CKR_OK) {
    std::vector<CK_MECHANISM_TYPE> list(count);
    if (module_->f()->C_GetMechanismList(slot_, list.data(), &count) == CKR_OK)
      mechanisms_.insert(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(count));
  }
  module_->add_user(this);
}

Token::~Token() {
  {
    std::lock_guard lock(reprobe_mutex_);
    stopping_ = true;
  }
  reprobe_cv_.notify_all();
  if (reprobe_thread_.joinable()) reprobe_thread_.join();
  OPENSSL_cleanse(pin_.data(), pin_.size());
  // Inside the gate, so a re-initialisation cannot make our handles name other sessions while we close them.
  auto gate = module_->enter();
  module_->remove_user(this);
  pool_.flush();
  // Closing our own sessions; never C_Logout/C_CloseAllSessions, which would also end the sessions of any
  // other user of the module in this process.
  if (anchor_ != CK_INVALID_HANDLE) module_->f()->C_CloseSession(anchor_);
}

void Token::login(const std::string& pin) {
  auto gate = module_->enter();
  std::lock_guard lock(login_mutex_);
  if (logged_in_) return;
  if (!login_failure_.empty()) throw KeystoreError(login_failure_, login_failure_rv_);
  if (!(info_.flags & CKF_LOGIN_REQUIRED)) {
    logged_in_ = true;
    return;
  }
  pin_ = pin;
  CK_RV rv = login_locked(anchor_);
  if (rv == CKR_OK) {
    logged_in_ = true;
    return;
  }
  OPENSSL_cleanse(pin_.data(), pin_.size());
  pin_.clear();
  throw KeystoreError(login_failure_.empty() ? display_ + ": login refused: " + ckr_name(rv) : login_failure_, rv);
}

CK_RV Token::login_locked(CK_SESSION_HANDLE session) {
  CK_RV rv = module_->f()->C_Login(session, CKU_USER,
                                   reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin_.data())), pin_.size());
  if (rv == CKR_USER_ALREADY_LOGGED_IN) {
    // Another session of this process (or the host waking up: python-pkcs11#61) kept the login: success.
    stats_->record_recovery("already_logged_in");
    rv = CKR_OK;
  }
  if (rv == CKR_OK) {
    spdlog::info("keystore: logged in to {}", display_);
    return rv;
  }
  std::string message = display_ + ": login refused: " + ckr_name(rv);
  if (is_pin_refusal(rv)) {
    message += " (the PIN is wrong or locked; not retried, to avoid locking the token)";
    login_failure_ = message;
    login_failure_rv_ = rv;
    // A token we cannot log in to cannot sign: its identities answer 503 until a restart with a good PIN.
    usable_.store(false, std::memory_order_release);
  }
  spdlog::error("keystore: {}", message);
  return rv;
}

TokenIndex Token::index_objects(bool with_certificates) {
  CK_FUNCTION_LIST* f = module_->f();
  auto gate = module_->enter();
  auto lease = pool_.borrow();
  const CK_SESSION_HANDLE s = lease.handle();
  // One search over every object visible to the logged-in user; classes are sorted out in memory.
  check_ck(f->C_FindObjectsInit(s, nullptr, 0), display_, "C_FindObjectsInit");
  std::vector<CK_OBJECT_HANDLE> objects;
  CK_OBJECT_HANDLE batch[256];
  CK_ULONG found = 0;
  CK_RV rv;
  while ((rv = f->C_FindObjects(s, batch, 256, &found)) == CKR_OK && found > 0)
    objects.insert(objects.end(), batch, batch + found);
  f->C_FindObjectsFinal(s);
  check_ck(rv, display_, "C_FindObjects");

  TokenIndex index;
  std::vector<TokenKeyObject>& keys = index.keys;
  std::map<std::string, std::string> ec_points_by_id;  // public key objects
  for (CK_OBJECT_HANDLE object : objects) {
    AttributeMap a = read_attributes(f, s, object,
                                     {CKA_CLASS, CKA_ID, CKA_LABEL, CKA_KEY_TYPE, CKA_SENSITIVE, CKA_EXTRACTABLE,
                                      CKA_SIGN, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT});
    auto cls = attribute_ulong(a, CKA_CLASS);
    if (cls == CKO_CERTIFICATE && with_certificates) {
      AttributeMap c = read_attributes(f, s, object, {CKA_CERTIFICATE_TYPE, CKA_VALUE});
      if (attribute_ulong(c, CKA_CERTIFICATE_TYPE).value_or(CKC_X_509) == CKC_X_509 && !c[CKA_VALUE].empty())
        index.certificates.push_back({a[CKA_ID], a[CKA_LABEL], c[CKA_VALUE]});
      continue;
    }
    if (cls == CKO_PUBLIC_KEY) {
      if (a.count(CKA_EC_POINT) && a.count(CKA_ID)) ec_points_by_id[a[CKA_ID]] = a[CKA_EC_POINT];
      continue;
    }
    if (cls != CKO_PRIVATE_KEY) continue;
    TokenKeyObject k;
    k.handle = object;
    k.id = a[CKA_ID];
    k.label = a[CKA_LABEL];
    k.key_type = attribute_ulong(a, CKA_KEY_TYPE).value_or(CKK_VENDOR_DEFINED);
    k.sensitive = attribute_bool(a, CKA_SENSITIVE).value_or(false);
    k.extractable = attribute_bool(a, CKA_EXTRACTABLE).value_or(true);
    k.can_sign = attribute_bool(a, CKA_SIGN).value_or(false);
    k.modulus = a[CKA_MODULUS];
    k.public_exponent = a[CKA_PUBLIC_EXPONENT];
    k.ec_params = a[CKA_EC_PARAMS];
    k.ec_point = a[CKA_EC_POINT];  // some tokens expose it on the private key (PKCS#11 3.0)
    keys.push_back(std::move(k));
  }
  for (TokenKeyObject& k : keys)
    if (k.ec_point.empty())
      if (auto it = ec_points_by_id.find(k.id); it != ec_points_by_id.end()) k.ec_point = it->second;
  spdlog::info("keystore: {}: {} objects, {} private keys indexed", display_, objects.size(), keys.size());
  return index;
}

Token::Fault Token::classify(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
      return Fault::session_lost;
    case CKR_USER_NOT_LOGGED_IN:
      return Fault::login_lost;
    case CKR_DEVICE_ERROR:
      return Fault::device_error;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
      return Fault::key_handle;
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_REMOVED:
      return Fault::absent;
    default:
      return Fault::none;
  }
}

const char* Token::reason_name(Fault fault) {
  switch (fault) {
    case Fault::session_lost: return "session_lost";
    case Fault::login_lost: return "login_lost";
    case Fault::device_error: return "device_error";
    case Fault::key_handle: return "key_handle_invalid";
    case Fault::absent: return "token_absent";
    case Fault::none: break;
  }
  return "none";
}

std::vector<unsigned char> Token::sign(KeyRef& key, CK_MECHANISM& mechanism, const unsigned char* data,
                                       size_t length, size_t max_signature) {
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](CK_RV rv, const std::string& what) -> std::vector<unsigned char> {
    stats_->record_sign_error(ckr_name(rv));
    throw KeystoreError(display_ + ": " + what, rv);
  };
  if (!usable()) {
    // Fast failure while absent: no module call, no wait (the daemon answers 503 identity_unavailable).
    return fail(CKR_TOKEN_NOT_PRESENT, "token unavailable (absent, failing or PIN refused)");
  }
  // Shared: signs run in parallel; a module re-initialisation waits for them, and they for it.
  auto gate = module_->enter();
  if (module_->session_epoch() != seen_module_epoch_.load(std::memory_order_acquire)) resync_with_module();
  for (int attempt = 0;; ++attempt) {
    const std::uint64_t seen_epoch = epoch();
    std::vector<unsigned char> signature(max_signature);
    const char* call = "C_OpenSession";
    CK_RV rv;
    try {
      rv = try_sign(key, mechanism, data, length, signature, call);
    } catch (const KeystoreError& e) {  // the pool could not open a session
      rv = e.ckr() != 0 ? e.ckr() : CKR_GENERAL_ERROR;
    }
    if (rv == CKR_OK) {
      stats_->record_sign(std::chrono::steady_clock::now() - start);
      return signature;
    }
    const Fault fault = classify(rv);
    const std::string what = std::string(call) + " failed: " + ckr_name(rv);
    if (fault == Fault::absent) {
      mark_absent(rv);
      return fail(rv, what);
    }
    if (fault == Fault::none || attempt > 0) return fail(rv, what);
    if (CK_RV stop = recover(fault, rv, seen_epoch); stop != CKR_OK)
      return fail(stop, what + "; recovery failed: " + ckr_name(stop));
  }
}

CK_RV Token::try_sign(KeyRef& key, CK_MECHANISM& mechanism, const unsigned char* data, size_t length,
                      std::vector<unsigned char>& signature, const char*& call) {
  CK_FUNCTION_LIST* f = module_->f();
  call = "C_OpenSession";
  auto lease = pool_.borrow();
  const std::uint64_t current = epoch();
  CK_RV rv = CKR_OK;
  if (key.epoch.load(std::memory_order_acquire) != current) {
    call = "C_FindObjects (key lookup)";
    rv = resolve_key(key, lease.handle(), current);
  }
  if (rv == CKR_OK) {
    call = "C_SignInit";
    rv = f->C_SignInit(lease.handle(), &mechanism, key.handle.load(std::memory_order_acquire));
  }
  if (rv == CKR_OK) {
    call = "C_Sign";
    CK_ULONG signature_length = signature.size();
    // C_Sign ends the operation on any error but CKR_BUFFER_TOO_SMALL, which max_signature rules out.
    rv = f->C_Sign(lease.handle(), const_cast<unsigned char*>(data), length, signature.data(), &signature_length);
    if (rv == CKR_OK) signature.resize(signature_length);
  }
  const Fault fault = classify(rv);
  if (fault == Fault::session_lost || fault == Fault::device_error || fault == Fault::absent) lease.mark_broken();
  return rv;
}

CK_RV Token::resolve_key(KeyRef& key, CK_SESSION_HANDLE session, std::uint64_t epoch) {
  CK_FUNCTION_LIST* f = module_->f();
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  std::vector<CK_ATTRIBUTE> tmpl{{CKA_CLASS, &cls, sizeof cls},
                                 {CKA_ID, const_cast<char*>(key.id.data()), key.id.size()}};
  if (!key.label.empty()) tmpl.push_back({CKA_LABEL, const_cast<char*>(key.label.data()), key.label.size()});
  CK_RV rv = f->C_FindObjectsInit(session, tmpl.data(), tmpl.size());
  if (rv != CKR_OK) return rv;
  CK_OBJECT_HANDLE found[2];
  CK_ULONG count = 0;
  rv = f->C_FindObjects(session, found, 2, &count);
  f->C_FindObjectsFinal(session);
  if (rv != CKR_OK) return rv;
  if (count != 1) {
    spdlog::error("keystore: {}: {} private keys found again for a loaded key (CKA_ID of {} bytes)", display_,
                  count, key.id.size());
    return CKR_KEY_HANDLE_INVALID;
  }
  key.handle.store(found[0], std::memory_order_release);
  key.epoch.store(epoch, std::memory_order_release);
  return CKR_OK;
}

}  // namespace orgproxy::keystore
