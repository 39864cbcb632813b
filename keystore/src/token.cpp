#include "token.hpp"

#include <map>

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

bool is_device_loss(CK_RV rv) {
  return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_ERROR;
}

}  // namespace

Token::Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, const CK_TOKEN_INFO& info, unsigned max_sessions)
    : module_(std::move(module)),
      slot_(slot),
      info_(info),
      label_(trim_padded(info.label, sizeof info.label)),
      serial_(trim_padded(info.serialNumber, sizeof info.serialNumber)),
      display_(make_display(label_, serial_, *module_)),
      pool_(module_->f(), slot, max_sessions, display_) {
  check_ck(module_->f()->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &anchor_), display_,
           "C_OpenSession");
  CK_ULONG count = 0;
  if (module_->f()->C_GetMechanismList(slot_, nullptr, &count) == CKR_OK) {
    std::vector<CK_MECHANISM_TYPE> list(count);
    if (module_->f()->C_GetMechanismList(slot_, list.data(), &count) == CKR_OK)
      mechanisms_.insert(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(count));
  }
}

Token::~Token() {
  // Closing our own sessions; never C_Logout/C_CloseAllSessions, which would also end the sessions of any
  // other user of the module in this process.
  if (anchor_ != CK_INVALID_HANDLE) module_->f()->C_CloseSession(anchor_);
}

void Token::login(const std::string& pin) {
  std::lock_guard lock(login_mutex_);
  if (logged_in_) return;
  if (!login_failure_.empty()) throw KeystoreError(login_failure_, login_failure_rv_);
  if (!(info_.flags & CKF_LOGIN_REQUIRED)) {
    logged_in_ = true;
    return;
  }
  CK_RV rv = module_->f()->C_Login(anchor_, CKU_USER,
                                   reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())), pin.size());
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
    logged_in_ = true;
    spdlog::info("keystore: logged in to {}", display_);
    return;
  }
  std::string message = display_ + ": login refused: " + ckr_name(rv);
  if (is_pin_refusal(rv)) {
    message += " (the PIN is wrong or locked; not retried, to avoid locking the token)";
    login_failure_ = message;
    login_failure_rv_ = rv;
  }
  spdlog::error("keystore: {}", message);
  throw KeystoreError(message, rv);
}

std::vector<TokenKeyObject> Token::index_private_keys() {
  CK_FUNCTION_LIST* f = module_->f();
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

  std::vector<TokenKeyObject> keys;
  std::map<std::string, std::string> ec_points_by_id;  // public key objects
  for (CK_OBJECT_HANDLE object : objects) {
    AttributeMap a = read_attributes(f, s, object,
                                     {CKA_CLASS, CKA_ID, CKA_LABEL, CKA_KEY_TYPE, CKA_SENSITIVE, CKA_EXTRACTABLE,
                                      CKA_SIGN, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT});
    auto cls = attribute_ulong(a, CKA_CLASS);
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
  return keys;
}

std::vector<unsigned char> Token::sign(CK_OBJECT_HANDLE key, CK_MECHANISM& mechanism, const unsigned char* data,
                                       size_t length, size_t max_signature) {
  CK_FUNCTION_LIST* f = module_->f();
  auto lease = pool_.borrow();
  auto fail = [&](CK_RV rv, const char* call) {
    if (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED || is_device_loss(rv)) lease.mark_broken();
    if (is_device_loss(rv)) usable_.store(false, std::memory_order_relaxed);
    throw KeystoreError(display_ + ": " + call + " failed: " + ckr_name(rv), rv);
  };
  CK_RV rv = f->C_SignInit(lease.handle(), &mechanism, key);
  if (rv != CKR_OK) fail(rv, "C_SignInit");
  std::vector<unsigned char> signature(max_signature);
  CK_ULONG signature_length = signature.size();
  rv = f->C_Sign(lease.handle(), const_cast<unsigned char*>(data), length, signature.data(), &signature_length);
  if (rv != CKR_OK) fail(rv, "C_Sign");  // C_Sign ends the operation on any error but CKR_BUFFER_TOO_SMALL
  signature.resize(signature_length);
  return signature;
}

}  // namespace orgproxy::keystore
