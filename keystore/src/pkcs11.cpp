#include "pkcs11.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

std::string ckr_name(CK_RV rv) {
  switch (rv) {
#define ORGPROXY_CKR(x) \
  case x:               \
    return #x;
    ORGPROXY_CKR(CKR_OK)
    ORGPROXY_CKR(CKR_GENERAL_ERROR)
    ORGPROXY_CKR(CKR_FUNCTION_FAILED)
    ORGPROXY_CKR(CKR_ARGUMENTS_BAD)
    ORGPROXY_CKR(CKR_ATTRIBUTE_SENSITIVE)
    ORGPROXY_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    ORGPROXY_CKR(CKR_DEVICE_ERROR)
    ORGPROXY_CKR(CKR_DEVICE_MEMORY)
    ORGPROXY_CKR(CKR_DEVICE_REMOVED)
    ORGPROXY_CKR(CKR_KEY_HANDLE_INVALID)
    ORGPROXY_CKR(CKR_KEY_TYPE_INCONSISTENT)
    ORGPROXY_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    ORGPROXY_CKR(CKR_MECHANISM_INVALID)
    ORGPROXY_CKR(CKR_MECHANISM_PARAM_INVALID)
    ORGPROXY_CKR(CKR_OBJECT_HANDLE_INVALID)
    ORGPROXY_CKR(CKR_OPERATION_ACTIVE)
    ORGPROXY_CKR(CKR_PIN_INCORRECT)
    ORGPROXY_CKR(CKR_PIN_INVALID)
    ORGPROXY_CKR(CKR_PIN_LEN_RANGE)
    ORGPROXY_CKR(CKR_PIN_EXPIRED)
    ORGPROXY_CKR(CKR_PIN_LOCKED)
    ORGPROXY_CKR(CKR_SESSION_CLOSED)
    ORGPROXY_CKR(CKR_SESSION_COUNT)
    ORGPROXY_CKR(CKR_SESSION_HANDLE_INVALID)
    ORGPROXY_CKR(CKR_TOKEN_NOT_PRESENT)
    ORGPROXY_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    ORGPROXY_CKR(CKR_USER_ALREADY_LOGGED_IN)
    ORGPROXY_CKR(CKR_USER_NOT_LOGGED_IN)
    ORGPROXY_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    ORGPROXY_CKR(CKR_USER_TYPE_INVALID)
    ORGPROXY_CKR(CKR_DATA_LEN_RANGE)
    ORGPROXY_CKR(CKR_BUFFER_TOO_SMALL)
    ORGPROXY_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    ORGPROXY_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef ORGPROXY_CKR
    default: {
      std::ostringstream out;
      out << "CKR_0x" << std::hex << rv;
      return out.str();
    }
  }
}

void check_ck(CK_RV rv, const std::string& what, const char* call) {
  if (rv != CKR_OK) throw KeystoreError(what + ": " + call + " failed: " + ckr_name(rv), rv);
}

void ModuleGate::lock_shared() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !writer_ && writers_waiting_ == 0; });
  ++readers_;
}

void ModuleGate::unlock_shared() {
  {
    std::lock_guard lock(mutex_);
    --readers_;
  }
  changed_.notify_all();
}

bool ModuleGate::try_lock_for(std::chrono::milliseconds max_wait) {
  std::unique_lock lock(mutex_);
  ++writers_waiting_;
  const bool got = changed_.wait_for(lock, max_wait, [&] { return !writer_ && readers_ == 0; });
  --writers_waiting_;
  if (got) writer_ = true;
  lock.unlock();
  if (!got) changed_.notify_all();  // the readers held back by our wait may go on
  return got;
}

void ModuleGate::unlock() {
  {
    std::lock_guard lock(mutex_);
    writer_ = false;
  }
  changed_.notify_all();
}

Module::Module(std::string name, std::string path) : name_(std::move(name)), path_(std::move(path)) {
  display_name_ = name_.empty() ? path_ : name_;
  if (!path_.empty()) {
    functions_ = p11_kit_module_load(path_.c_str(), 0);  // 0 = managed
    if (functions_ == nullptr)
      throw KeystoreError("PKCS#11 module " + display_name_ + ": cannot load " + path_ + ": " + p11_kit_message());
  } else {
    // A registered module (p11-kit's module configuration): load them all, keep the one named.
    CK_FUNCTION_LIST** all = p11_kit_modules_load(nullptr, 0);
    if (all != nullptr) {
      for (CK_FUNCTION_LIST** m = all; *m != nullptr; ++m) {
        char* registered = p11_kit_module_get_name(*m);
        bool wanted = registered != nullptr && name_ == registered;
        std::free(registered);
        if (wanted) {
          char* file = p11_kit_module_get_filename(*m);
          if (file != nullptr) {
            path_ = file;
            std::free(file);
          }
          break;
        }
      }
      p11_kit_modules_release(all);
    }
    if (path_.empty())
      throw KeystoreError("PKCS#11 module " + name_ + ": no p11-kit registered module of that name");
    functions_ = p11_kit_module_load(path_.c_str(), 0);
    if (functions_ == nullptr)
      throw KeystoreError("PKCS#11 module " + name_ + ": cannot load " + path_ + ": " + p11_kit_message());
  }
  if (CK_RV rv = p11_kit_module_initialize(functions_); rv != CKR_OK) {
    p11_kit_module_release(functions_);
    functions_ = nullptr;
    throw KeystoreError("PKCS#11 module " + display_name_ + ": C_Initialize failed: " + ckr_name(rv), rv);
  }
  spdlog::info("keystore: PKCS#11 module {} loaded from {} (p11-kit managed)", display_name_, path_);
}

Module::~Module() {
  if (functions_ == nullptr) return;
  p11_kit_module_finalize(functions_);
  p11_kit_module_release(functions_);
}

void Module::add_user(User* user) {
  std::lock_guard lock(users_mutex_);
  users_.push_back(user);
}

void Module::remove_user(User* user) {
  std::lock_guard lock(users_mutex_);
  std::erase(users_, user);
}

bool Module::reinitialise(std::chrono::milliseconds max_wait) {
  const auto start = std::chrono::steady_clock::now();
  if (!gate_.try_lock_for(max_wait)) {
    spdlog::error("keystore: PKCS#11 module {}: calls in flight did not end within {} ms; re-initialisation "
                  "postponed to the next reload",
                  display_name_, max_wait.count());
    return false;
  }
  std::unique_lock<ModuleGate> exclusive(gate_, std::adopt_lock);
  // Managed mode: p11-kit closes the sessions this instance opened, then C_Finalize (when it holds the only
  // initialisation), then C_Initialize with CKF_OS_LOCKING_OK.
  p11_kit_module_finalize(functions_);
  CK_RV rv = p11_kit_module_initialize(functions_);
  std::vector<User*> users;
  {
    std::lock_guard lock(users_mutex_);
    users = users_;
  }
  if (rv == CKR_OK) reinitialisations_.fetch_add(1, std::memory_order_acq_rel);
  // Even after a failed C_Initialize the users must forget their sessions: they are gone either way (their
  // own recovery then finds the module not answering and marks their tokens absent).
  for (User* user : users) user->module_reinitialised();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  if (rv != CKR_OK)
    throw KeystoreError("PKCS#11 module " + display_name_ + ": C_Initialize failed at re-initialisation: " +
                            ckr_name(rv),
                        rv);
  spdlog::warn("keystore: PKCS#11 module {} re-initialised to find new tokens; signing paused {} ms", display_name_,
               ms);
  return true;
}

std::vector<CK_SLOT_ID> Module::slots_with_token() const {
  CK_ULONG count = 0;
  check_ck(functions_->C_GetSlotList(CK_TRUE, nullptr, &count), "PKCS#11 module " + display_name_,
           "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  check_ck(functions_->C_GetSlotList(CK_TRUE, slots.data(), &count), "PKCS#11 module " + display_name_,
           "C_GetSlotList");
  slots.resize(count);
  return slots;
}

AttributeMap read_attributes(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                             const std::vector<CK_ATTRIBUTE_TYPE>& types) {
  std::vector<CK_ATTRIBUTE> tmpl(types.size());
  for (size_t i = 0; i < types.size(); ++i) tmpl[i] = {types[i], nullptr, 0};
  // CKR_ATTRIBUTE_SENSITIVE / _TYPE_INVALID still fill the other lengths (PKCS#11 v2.40 §5.7).
  CK_RV rv = f->C_GetAttributeValue(session, object, tmpl.data(), tmpl.size());
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID)
    throw KeystoreError("C_GetAttributeValue failed: " + ckr_name(rv), rv);
  std::vector<std::string> buffers(types.size());
  for (size_t i = 0; i < types.size(); ++i) {
    if (tmpl[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) {
      tmpl[i].pValue = nullptr;
      continue;
    }
    buffers[i].resize(tmpl[i].ulValueLen);
    tmpl[i].pValue = buffers[i].data();
  }
  rv = f->C_GetAttributeValue(session, object, tmpl.data(), tmpl.size());
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID)
    throw KeystoreError("C_GetAttributeValue failed: " + ckr_name(rv), rv);
  AttributeMap out;
  for (size_t i = 0; i < types.size(); ++i) {
    if (tmpl[i].pValue == nullptr || tmpl[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) continue;
    buffers[i].resize(tmpl[i].ulValueLen);
    out.emplace(types[i], std::move(buffers[i]));
  }
  return out;
}

std::optional<bool> attribute_bool(const AttributeMap& attrs, CK_ATTRIBUTE_TYPE type) {
  auto it = attrs.find(type);
  if (it == attrs.end() || it->second.size() != sizeof(CK_BBOOL)) return std::nullopt;
  return it->second[0] != 0;
}

std::optional<CK_ULONG> attribute_ulong(const AttributeMap& attrs, CK_ATTRIBUTE_TYPE type) {
  auto it = attrs.find(type);
  if (it == attrs.end() || it->second.size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG value;
  std::memcpy(&value, it->second.data(), sizeof value);
  return value;
}

std::string trim_padded(const unsigned char* text, size_t width) {
  std::string s(reinterpret_cast<const char*>(text), width);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace orgproxy::keystore
