// Internal: the VIHF step of a request (DESIGN.md "Selector", issue 8): bounded read of the body's first
// bytes, extraction, the consistency checks, and the audit line.
#pragma once

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "exchange.hpp"
#include "orgproxy/daemon/vihf.hpp"

namespace orgproxy::daemon {

/// What reading the VIHF of one request gave.
struct VihfRead {
  bool abort = false;                 ///< the client went away or stalled: close without answering
  /// bad_request: a hostile envelope (DTD, entity, VIHF given twice), or any unreadable one when the VIHF
  /// selects the site; request_too_large: a SOAP header that does not end within vihf_max_bytes.
  ErrorCode error = ErrorCode::none;
  std::string detail;
};

/// When the listener uses the VIHF (`vihf` selector, or `vihf_check`) and the request is SOAP 1.2 with a
/// body: reads up to `listener.vihf_max_bytes` body bytes into the downstream buffer WITHOUT consuming
/// them (the body relay then forwards them byte for byte) and stores the VIHF found in `x.vihf`. An
/// `Expect: 100-continue` request is answered 100 first (the body is needed to decide) and the expectation
/// is not forwarded. Never throws.
boost::asio::awaitable<VihfRead> read_vihf(Exchange& x, bool vihf_selector);

/// The checks after selection, for a request whose VIHF was read: the VIHF structure must be the tenant
/// (`vihf_mismatch`), and when the tenant has `vihf-sign` identities loaded, the Issuer must be one of
/// their certificates' subjects (as X.509 names). Returns none or vihf_mismatch with `detail` set; records
/// the Issuer check's result in `x.vihf_issuer_check` for the audit line.
ErrorCode check_vihf(Exchange& x, const TenantState& tenant, std::string& detail);

/// One audit line (logger "audit", else "access", else the default) for a VIHF-bearing request: site,
/// VIHF structure, user (NameID), mode, sector, upstream, status, outcome and the Issuer check. Never the assertion itself.
void log_vihf_audit(const AccessRecord& record, const Vihf& vihf, std::string_view issuer_check);

}  // namespace orgproxy::daemon
