// The state of every configured (tenant, purpose) identity of a Runtime snapshot, evaluated at one instant:
// the single source for /readyz, /sites, and the certificate and availability metrics, so they never disagree.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "orgproxy/config/config.hpp"

namespace orgproxy::daemon {

class Runtime;

/// One (tenant, purpose) of the configuration.
struct IdentityStatus {
  std::string_view tenant;  ///< tenant id (view into the snapshot's config)
  config::Purpose purpose = config::Purpose::dmp;
  bool usable = false;      ///< a certificate is loaded, its token present, and it is valid now (what
                            ///< requests get; same rule as pick_identity)
  bool token_present = false;  ///< at least one loaded identity's token answers
  bool has_certificate = false;  ///< at least one certificate loaded (then not_after is set)
  std::chrono::system_clock::time_point not_after{};  ///< latest notAfter among the loaded certificates
  std::string subject;      ///< RFC 2253 DN of the certificate requests present now ("" when none)
  std::string serial_hex;
  std::string reason;       ///< why not usable ("" when usable): load error, token absent, expired...
};

/// Statuses of every identity purpose configured for every tenant of `rt`, in config order (tenants as
/// written, purposes in enum order). `now` decides validity.
std::vector<IdentityStatus> identity_statuses(const Runtime& rt, std::chrono::system_clock::time_point now);

/// Readiness rule (DESIGN.md): ready when at least one identity is usable, or none is configured; with
/// settings.require_all_identities every configured identity must be usable.
bool is_ready(const Runtime& rt, const std::vector<IdentityStatus>& statuses);

}  // namespace orgproxy::daemon
