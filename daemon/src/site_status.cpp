#include "orgproxy/daemon/site_status.hpp"

#include "orgproxy/daemon/runtime.hpp"

namespace orgproxy::daemon {

std::vector<IdentityStatus> identity_statuses(const Runtime& rt, std::chrono::system_clock::time_point now) {
  std::vector<IdentityStatus> out;
  for (const auto& tenant : rt.config().tenants) {
    const TenantState* state = rt.find_tenant(tenant.id);
    for (const auto& [purpose, refs] : tenant.identities) {
      (void)refs;
      IdentityStatus s;
      s.tenant = tenant.id;
      s.purpose = purpose;
      const std::vector<IdentitySlot>* slots = state ? &state->identities[purpose_index(purpose)] : nullptr;
      if (slots) {
        for (const auto& slot : *slots) {
          if (!slot.identity) {
            if (s.reason.empty()) s.reason = slot.error;
            continue;
          }
          s.has_certificate = true;
          if (slot.identity->not_after() > s.not_after) s.not_after = slot.identity->not_after();
          if (slot.identity->usable()) s.token_present = true;
        }
        IdentityPick pick = pick_identity(*slots, now);
        if (pick.error == ErrorCode::none && pick.identity) {
          s.usable = true;
          s.reason.clear();
          s.subject = pick.identity->subject();
          s.serial_hex = pick.identity->serial_hex();
        } else if (s.has_certificate) {
          // A certificate is loaded but cannot serve: say which of the two reasons applies.
          s.reason = !s.token_present ? "token not present or failing"
                                      : "no certificate valid now (expired or not yet valid)";
        }
      }
      if (!s.usable && s.reason.empty()) s.reason = "not loaded";
      out.push_back(std::move(s));
    }
  }
  return out;
}

bool is_ready(const Runtime& rt, const std::vector<IdentityStatus>& statuses) {
  if (statuses.empty()) return true;
  std::size_t usable = 0;
  for (const auto& s : statuses) usable += s.usable ? 1 : 0;
  if (rt.config().settings.require_all_identities) return usable == statuses.size();
  return usable > 0;
}

}  // namespace orgproxy::daemon
