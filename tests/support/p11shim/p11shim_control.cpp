// The control file of the fault-injecting PKCS#11 module: rules, one-shot actions, the call log.
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "p11shim_state.hpp"

namespace orgproxy_p11shim {

CK_FUNCTION_LIST* real = nullptr;
CK_FUNCTION_LIST shim_list;
bool real_initialized_by_us = false;

std::shared_mutex call_lock;

std::mutex state_mutex;
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

void log_call(const char* function, const std::string& token, CK_RV rv, const std::string& detail) {
  std::lock_guard lock(log_mutex);
  const char* path = std::getenv("ORGPROXY_P11SHIM_LOG");
  if (path == nullptr || *path == '\0') return;
  if (log_file == nullptr || log_path != path) {  // a test may point the log elsewhere between two uses
    if (log_file != nullptr) std::fclose(log_file);
    log_path = path;
    log_file = std::fopen(path, "a");
    if (log_file == nullptr) return;
  }
  std::fprintf(log_file, "%s %s 0x%lx%s%s\n", function, token.c_str(), static_cast<unsigned long>(rv),
               detail.empty() ? "" : " ", detail.c_str());
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

// "token=<label>", the label %-encoded as in an RFC 7512 URI ("token=Cabinet%20A"), since rules split on spaces.
std::string token_option(std::istringstream& in) {
  std::string word;
  while (in >> word) {
    if (word.rfind("token=", 0) != 0) continue;
    std::string label;
    for (size_t i = 6; i < word.size(); ++i) {
      if (word[i] == '%' && i + 2 < word.size() && std::isxdigit(static_cast<unsigned char>(word[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(word[i + 2]))) {
        label += static_cast<char>(std::stoi(word.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        label += word[i];
      }
    }
    return label;
  }
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

}  // namespace orgproxy_p11shim
