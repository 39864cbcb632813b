// Internals of the fault-injecting PKCS#11 module shared by p11shim.cpp (the intercepted functions) and
// p11shim_control.cpp (the control file, rules and call log). See p11shim.cpp for what the module does.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include <p11-kit/pkcs11.h>

namespace orgproxy_p11shim {

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

struct Target {
  bool absent = false;
  CK_RV injected = CKR_OK;
  std::string label;
};

// The real module and the shim's own function list.
extern CK_FUNCTION_LIST* real;
extern CK_FUNCTION_LIST shim_list;
extern bool real_initialized_by_us;
// Normal calls hold it shared; `reinit` holds it exclusively (C_Finalize under a running C_Sign would crash).
extern std::shared_mutex call_lock;
extern std::mutex state_mutex;  // guards the rules and maps below
extern std::vector<AbsentRule> absent_rules;
extern std::map<CK_SESSION_HANDLE, CK_SLOT_ID> session_slots;
extern std::map<CK_SLOT_ID, std::string> slot_labels;

/// Appends "<function> <token> <rv>[ <detail>]" to $ORGPROXY_P11SHIM_LOG. Never arguments that could be
/// secret (no PIN, no data): `detail` is only ever the mechanism of a C_SignInit ("mechanism=0x...").
void log_call(const char* function, const std::string& token, CK_RV rv, const std::string& detail = {});
/// With state_mutex held: the label of the token in `slot` (cached).
std::string label_of_slot_locked(CK_SLOT_ID slot);
/// With state_mutex held: re-reads the control file if it changed, running its one-shot actions.
void refresh_control_locked();
/// The rules for a call of `function` on `slot` (or on the slot of `session` when `by_session`).
Target check(const char* function, CK_SLOT_ID slot, bool by_session, CK_SESSION_HANDLE session);

}  // namespace orgproxy_p11shim
