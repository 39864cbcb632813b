// orgproxy_p11shim: a fault-injecting PKCS#11 module for tests (field case C19). It loads the real module
// (ORGPROXY_P11SHIM_MODULE, default: SoftHSMv2), forwards every call to it, and obeys a control file named by
// ORGPROXY_P11SHIM_CONTROL. The file is re-read whenever it changes (write a temp file and rename it over:
// every new version is a new set of rules, and its one-shot actions run once). One rule a line, '#' comments:
//
// <label> is %-encoded as in an RFC 7512 URI when it holds a space or '%' (token=Cabinet%20A).
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
// count login attempts; C_SignInit lines end with " mechanism=0x<CKM_>" so tests see how the token signed.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "p11shim_state.hpp"

#ifndef ORGPROXY_P11SHIM_DEFAULT_MODULE
#define ORGPROXY_P11SHIM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

namespace orgproxy_p11shim {
namespace {

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
  char detail[40] = "";
  if (mechanism != nullptr)
    std::snprintf(detail, sizeof detail, "mechanism=0x%lx", static_cast<unsigned long>(mechanism->mechanism));
  log_call("C_SignInit", t.label, rv, detail);
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
}  // namespace orgproxy_p11shim

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  static std::mutex load_mutex;
  std::lock_guard lock(load_mutex);
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  CK_RV rv = orgproxy_p11shim::load_real();
  if (rv != CKR_OK) return rv;
  *list = &orgproxy_p11shim::shim_list;
  return CKR_OK;
}
