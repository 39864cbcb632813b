// orgproxy_p11shim: a fault-injecting PKCS#11 module for tests (field case C19). It loads the real module
// (ORGPROXY_P11SHIM_MODULE, default: SoftHSMv2), forwards every call to it, and obeys a control file named by
// ORGPROXY_P11SHIM_CONTROL. The file is re-read whenever it changes (write a temp file and rename it over:
// every new version is a new set of rules, and its one-shot actions run once). One rule a line, '#' comments:
//
//   fail <C_Function> <CKR_NAME|0xHEX> <count> [token=<label>]   next <count> calls return that CKR_
//   logout [token=<label>]        once: C_Logout on the real module (the process's login is gone)
//   absent <seconds> [token=<label>]  token "removed" for that long: its sessions are closed in the real module,
//                                 C_GetSlotList(TRUE) hides the slot, C_GetTokenInfo / C_OpenSession answer
//                                 CKR_TOKEN_NOT_PRESENT, calls on its sessions CKR_DEVICE_REMOVED
//   reinit                        once: C_Finalize + C_Initialize of the real module (every session, login and
//                                 object handle of before is gone), as a restarted PKCS#11 daemon does
//
// Interceptable functions: C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo, C_OpenSession, C_CloseSession,
// C_GetSessionInfo, C_Login, C_Logout, C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal,
// C_GetAttributeValue, C_SignInit, C_Sign. Every other function goes straight to the real module.
// ORGPROXY_P11SHIM_LOG, when set, names a file that gets one line per C_Login / C_OpenSession / C_SignInit /
// C_FindObjectsInit / C_GetTokenInfo call: "<function> <token label> <rv as 0x...>" (never a PIN), so tests can
// count login attempts.
#include <dlfcn.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <vector>

#include <p11-kit/pkcs11.h>

#ifndef ORGPROXY_P11SHIM_DEFAULT_MODULE
#define ORGPROXY_P11SHIM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct FailRule {
  std::string function;
  CK_RV rv = CKR_OK;
  long remaining = 0;
  std::string token;  // "" = any token
};

struct AbsentRule {
  std::string token;
  Clock::time_point until;
};

CK_FUNCTION_LIST* real = nullptr;
CK_FUNCTION_LIST shim_list;
bool real_initialized_by_us = false;

// Normal calls hold it shared; `reinit` holds it exclusively (C_Finalize under a running C_Sign would crash).
std::shared_mutex call_lock;

std::mutex state_mutex;  // guards everything below
struct stat control_seen {};
bool control_seen_valid = false;
std::vector<FailRule> fail_rules;
std::vector<AbsentRule> absent_rules;
std::map<CK_SESSION_HANDLE, CK_SLOT_ID> session_slots;
std::map<CK_SLOT_ID, std::string> slot_labels;
std::mutex log_mutex;
std::FILE* log_file = nullptr;
std::string log_path;

const std::map<std::string, CK_RV>& ckr_names() {
  static const std::map<std::string, CK_RV> names{
      {"CKR_OK", CKR_OK},
      {"CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
      {"CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
      {"CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
      {"CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY},
      {"CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
      {"CKR_KEY_HANDLE_INVALID", CKR_KEY_HANDLE_INVALID},
      {"CKR_OBJECT_HANDLE_INVALID", CKR_OBJECT_HANDLE_INVALID},
      {"CKR_PIN_INCORRECT", CKR_PIN_INCORRECT},
      {"CKR_PIN_LOCKED", CKR_PIN_LOCKED},
      {"CKR_SESSION_CLOSED", CKR_SESSION_CLOSED},
      {"CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
      {"CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
      {"CKR_USER_ALREADY_LOGGED_IN", CKR_USER_ALREADY_LOGGED_IN},
      {"CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
      {"CKR_MECHANISM_INVALID", CKR_MECHANISM_INVALID},
  };
  return names;
}

void log_call(const char* function, const std::string& token, CK_RV rv) {
  std::lock_guard lock(log_mutex);
  const char* path = std::getenv("ORGPROXY_P11SHIM_LOG");
  if (path == nullptr || *path == '\0') return;
  if (log_file == nullptr || log_path != path) {  // a test may point the log elsewhere between two uses
    if (log_file != nullptr) std::fclose(log_file);
    log_path = path;
    log_file = std::fopen(path, "a");
    if (log_file == nullptr) return;
  }
  std::fprintf(log_file, "%s %s 0x%lx\n", function, token.c_str(), static_cast<unsigned long>(rv));
  std::fflush(log_file);
}

std::string trim(const unsigned char* text, size_t width) {
  std::string s(reinterpret_cast<const char*>(text), width);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// With state_mutex held. The real token's label (cached; read once per slot).
std::string label_of_slot_locked(CK_SLOT_ID slot) {
  auto it = slot_labels.find(slot);
  if (it != slot_labels.end()) return it->second;
  CK_TOKEN_INFO info{};
  if (real->C_GetTokenInfo(slot, &info) != CKR_OK) return {};
  std::string label = trim(info.label, sizeof info.label);
  slot_labels[slot] = label;
  return label;
}

std::vector<CK_SLOT_ID> slots_of_token_locked(const std::string& token) {
  std::vector<CK_SLOT_ID> out;
  CK_ULONG count = 0;
  if (real->C_GetSlotList(CK_TRUE, nullptr, &count) != CKR_OK) return out;
  std::vector<CK_SLOT_ID> slots(count);
  if (real->C_GetSlotList(CK_TRUE, slots.data(), &count) != CKR_OK) return out;
  slots.resize(count);
  for (CK_SLOT_ID slot : slots)
    if (token.empty() || label_of_slot_locked(slot) == token) out.push_back(slot);
  return out;
}

std::string token_option(std::istringstream& in) {
  std::string word;
  while (in >> word)
    if (word.rfind("token=", 0) == 0) return word.substr(6);
  return {};
}

void run_logout_locked(const std::string& token) {
  for (CK_SLOT_ID slot : slots_of_token_locked(token)) {
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    if (real->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s) != CKR_OK) continue;
    real->C_Logout(s);
    real->C_CloseSession(s);
  }
}

void run_reinit_locked() {
  std::unique_lock exclusive(call_lock);
  real->C_Finalize(nullptr);
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  real->C_Initialize(&args);
  session_slots.clear();
  slot_labels.clear();
}

// With state_mutex held: re-reads the control file when it changed.
void refresh_control_locked() {
  const char* path = std::getenv("ORGPROXY_P11SHIM_CONTROL");
  if (path == nullptr || *path == '\0') return;
  struct stat st {};
  if (::stat(path, &st) != 0) {
    if (control_seen_valid) {  // file removed: rules end
      control_seen_valid = false;
      fail_rules.clear();
      absent_rules.clear();
    }
    return;
  }
  if (control_seen_valid && st.st_ino == control_seen.st_ino && st.st_size == control_seen.st_size &&
      st.st_mtim.tv_sec == control_seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == control_seen.st_mtim.tv_nsec)
    return;
  control_seen = st;
  control_seen_valid = true;
  fail_rules.clear();
  absent_rules.clear();
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string verb;
    in >> verb;
    if (verb == "fail") {
      FailRule rule;
      std::string rv;
      in >> rule.function >> rv >> rule.remaining;
      auto it = ckr_names().find(rv);
      rule.rv = it != ckr_names().end() ? it->second : std::strtoul(rv.c_str(), nullptr, 0);
      rule.token = token_option(in);
      if (!rule.function.empty() && rule.remaining > 0) fail_rules.push_back(rule);
    } else if (verb == "logout") {
      run_logout_locked(token_option(in));
    } else if (verb == "absent") {
      double seconds = 0;
      in >> seconds;
      AbsentRule rule;
      rule.token = token_option(in);
      rule.until = Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
      // A removed token takes its sessions (and so the login) with it.
      for (CK_SLOT_ID slot : slots_of_token_locked(rule.token)) {
        label_of_slot_locked(slot);
        real->C_CloseAllSessions(slot);
      }
      absent_rules.push_back(rule);
    } else if (verb == "reinit") {
      run_reinit_locked();
    }
  }
}

struct Target {
  bool absent = false;
  CK_RV injected = CKR_OK;
  std::string label;
};

// Looks the call up against the rules: `slot` known, or taken from `session`.
Target check(const char* function, CK_SLOT_ID slot, bool by_session, CK_SESSION_HANDLE session) {
  std::lock_guard lock(state_mutex);
  refresh_control_locked();
  Target t;
  if (by_session) {
    auto it = session_slots.find(session);
    if (it == session_slots.end()) return t;  // not ours to judge: forward
    slot = it->second;
  }
  t.label = label_of_slot_locked(slot);
  const auto now = Clock::now();
  for (const AbsentRule& a : absent_rules)
    if (now < a.until && (a.token.empty() || a.token == t.label)) t.absent = true;
  for (FailRule& r : fail_rules) {
    if (r.remaining <= 0 || r.function != function || (!r.token.empty() && r.token != t.label)) continue;
    --r.remaining;
    t.injected = r.rv;
    break;
  }
  return t;
}

#define SHIM_SESSION_CALL(name, session, ...)                                     \
  Target t = check(#name, 0, true, session);                                      \
  if (t.absent) return CKR_DEVICE_REMOVED;                                        \
  if (t.injected != CKR_OK) return t.injected;                                    \
  std::shared_lock shared(call_lock);                                             \
  return real->name(__VA_ARGS__);

CK_RV shim_Initialize(CK_VOID_PTR args) {
  CK_RV rv = real->C_Initialize(args);
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) return CKR_OK;  // another user owns it: never finalise it
  if (rv == CKR_OK) real_initialized_by_us = true;
  return rv;
}

CK_RV shim_Finalize(CK_VOID_PTR reserved) {
  {
    std::lock_guard lock(state_mutex);
    session_slots.clear();
    slot_labels.clear();
  }
  if (!real_initialized_by_us) return CKR_OK;
  real_initialized_by_us = false;
  return real->C_Finalize(reserved);
}

CK_RV shim_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  std::vector<CK_SLOT_ID> slots;
  {
    std::lock_guard lock(state_mutex);
    refresh_control_locked();
    CK_ULONG n = 0;
    CK_RV rv = real->C_GetSlotList(present, nullptr, &n);
    if (rv != CKR_OK) return rv;
    slots.resize(n);
    rv = real->C_GetSlotList(present, slots.data(), &n);
    if (rv != CKR_OK) return rv;
    slots.resize(n);
    if (present) {
      const auto now = Clock::now();
      std::vector<CK_SLOT_ID> kept;
      for (CK_SLOT_ID slot : slots) {
        bool absent = false;
        for (const AbsentRule& a : absent_rules)
          if (now < a.until && (a.token.empty() || a.token == label_of_slot_locked(slot))) absent = true;
        if (!absent) kept.push_back(slot);
      }
      slots.swap(kept);
    }
  }
  if (list == nullptr) {
    *count = slots.size();
    return CKR_OK;
  }
  if (*count < slots.size()) {
    *count = slots.size();
    return CKR_BUFFER_TOO_SMALL;
  }
  std::copy(slots.begin(), slots.end(), list);
  *count = slots.size();
  return CKR_OK;
}

CK_RV shim_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  Target t = check("C_GetSlotInfo", slot, false, 0);
  if (t.injected != CKR_OK) return t.injected;
  CK_RV rv = real->C_GetSlotInfo(slot, info);
  if (rv == CKR_OK && t.absent) info->flags &= ~static_cast<CK_FLAGS>(CKF_TOKEN_PRESENT);
  return rv;
}

CK_RV shim_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  Target t = check("C_GetTokenInfo", slot, false, 0);
  CK_RV rv = t.absent ? CKR_TOKEN_NOT_PRESENT : t.injected;
  if (rv == CKR_OK) {
    std::shared_lock shared(call_lock);
    rv = real->C_GetTokenInfo(slot, info);
  }
  log_call("C_GetTokenInfo", t.label, rv);
  return rv;
}

CK_RV shim_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                       CK_SESSION_HANDLE_PTR session) {
  Target t = check("C_OpenSession", slot, false, 0);
  CK_RV rv = t.absent ? CKR_TOKEN_NOT_PRESENT : t.injected;
  if (rv == CKR_OK) {
    std::shared_lock shared(call_lock);
    rv = real->C_OpenSession(slot, flags, app, notify, session);
  }
  if (rv == CKR_OK) {
    std::lock_guard lock(state_mutex);
    session_slots[*session] = slot;
  }
  log_call("C_OpenSession", t.label, rv);
  return rv;
}

CK_RV shim_CloseSession(CK_SESSION_HANDLE session) {
  Target t = check("C_CloseSession", 0, true, session);
  {
    std::lock_guard lock(state_mutex);
    session_slots.erase(session);
  }
  if (t.absent) return CKR_DEVICE_REMOVED;
  if (t.injected != CKR_OK) return t.injected;
  std::shared_lock shared(call_lock);
  return real->C_CloseSession(session);
}

CK_RV shim_GetSessionInfo(CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info) {
  SHIM_SESSION_CALL(C_GetSessionInfo, session, session, info)
}

CK_RV shim_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_length) {
  Target t = check("C_Login", 0, true, session);
  CK_RV rv = t.absent ? CKR_DEVICE_REMOVED : t.injected;
  if (rv == CKR_OK) {
    std::shared_lock shared(call_lock);
    rv = real->C_Login(session, user, pin, pin_length);
  }
  log_call("C_Login", t.label, rv);
  return rv;
}

CK_RV shim_Logout(CK_SESSION_HANDLE session) { SHIM_SESSION_CALL(C_Logout, session, session) }

CK_RV shim_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count) {
  Target t = check("C_FindObjectsInit", 0, true, session);
  CK_RV rv = t.absent ? CKR_DEVICE_REMOVED : t.injected;
  if (rv == CKR_OK) {
    std::shared_lock shared(call_lock);
    rv = real->C_FindObjectsInit(session, tmpl, count);
  }
  log_call("C_FindObjectsInit", t.label, rv);
  return rv;
}

CK_RV shim_FindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objects, CK_ULONG max, CK_ULONG_PTR count) {
  SHIM_SESSION_CALL(C_FindObjects, session, session, objects, max, count)
}

CK_RV shim_FindObjectsFinal(CK_SESSION_HANDLE session) { SHIM_SESSION_CALL(C_FindObjectsFinal, session, session) }

CK_RV shim_GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR tmpl,
                             CK_ULONG count) {
  SHIM_SESSION_CALL(C_GetAttributeValue, session, session, object, tmpl, count)
}

CK_RV shim_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
  Target t = check("C_SignInit", 0, true, session);
  CK_RV rv = t.absent ? CKR_DEVICE_REMOVED : t.injected;
  if (rv == CKR_OK) {
    std::shared_lock shared(call_lock);
    rv = real->C_SignInit(session, mechanism, key);
  }
  log_call("C_SignInit", t.label, rv);
  return rv;
}

CK_RV shim_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG length, CK_BYTE_PTR signature,
                CK_ULONG_PTR signature_length) {
  SHIM_SESSION_CALL(C_Sign, session, session, data, length, signature, signature_length)
}

CK_RV load_real() {
  if (real != nullptr) return CKR_OK;
  const char* path = std::getenv("ORGPROXY_P11SHIM_MODULE");
  if (path == nullptr || *path == '\0') path = ORGPROXY_P11SHIM_DEFAULT_MODULE;
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return CKR_GENERAL_ERROR;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));
  if (get == nullptr || get(&real) != CKR_OK || real == nullptr) return CKR_GENERAL_ERROR;
  shim_list = *real;
  shim_list.C_Initialize = shim_Initialize;
  shim_list.C_Finalize = shim_Finalize;
  shim_list.C_GetSlotList = shim_GetSlotList;
  shim_list.C_GetSlotInfo = shim_GetSlotInfo;
  shim_list.C_GetTokenInfo = shim_GetTokenInfo;
  shim_list.C_OpenSession = shim_OpenSession;
  shim_list.C_CloseSession = shim_CloseSession;
  shim_list.C_GetSessionInfo = shim_GetSessionInfo;
  shim_list.C_Login = shim_Login;
  shim_list.C_Logout = shim_Logout;
  shim_list.C_FindObjectsInit = shim_FindObjectsInit;
  shim_list.C_FindObjects = shim_FindObjects;
  shim_list.C_FindObjectsFinal = shim_FindObjectsFinal;
  shim_list.C_GetAttributeValue = shim_GetAttributeValue;
  shim_list.C_SignInit = shim_SignInit;
  shim_list.C_Sign = shim_Sign;
  return CKR_OK;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  static std::mutex load_mutex;
  std::lock_guard lock(load_mutex);
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  CK_RV rv = load_real();
  if (rv != CKR_OK) return rv;
  *list = &shim_list;
  return CKR_OK;
}
