// Tenant selection (DESIGN.md "Selector"): every selector configured on a listener is evaluated; those
// that yield a tenant must agree, else 403 tenant_ambiguous; none yields one → 400 tenant_missing.
#pragma once

#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>

#include "orgproxy/daemon/head_fields.hpp"

#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/error_response.hpp"

namespace orgproxy::daemon {

/// What one request offers to the selectors. Views into the request; valid for the request's lifetime.
struct SelectionInput {
  const boost::beast::http::fields* fields = nullptr;  ///< request header fields
  std::string_view path;                                ///< request path (checked, without query)
  std::string_view source_tenant;  ///< the `source` rules' tenant for the peer ("" = none), per connection
  std::string_view vihf_structure;  ///< the request's VIHF Identifiant_Structure ("" = no VIHF read)
  /// The `client_cert` rules' tenant for the connection's verified client certificate ("" = none), per
  /// connection (downstream_tls.hpp client_cert_tenant), and whether those rules disagreed among themselves.
  std::string_view client_cert_tenant;
  bool client_cert_conflict = false;
  /// The request header fields when parsed into a HeadArena (the data path); used instead of `fields`
  /// when set.
  const HeadFields* head_fields = nullptr;
};

/// The outcome: the tenant id (a view into the request or the listener config) and the path to route
/// (the path with any `/sites/<id>` prefix removed), or an error code.
struct Selection {
  ErrorCode error = ErrorCode::none;
  std::string_view tenant_id;
  std::string_view route_path;
  const char* reason = "";  ///< static text for logs when error != none
};

/// The selectors of one listener, prepared once per listener (not per request).
/// Implemented: `fixed`, `header`, `path`, `source` (rules matched once per connection by the caller),
/// `vihf` (the caller reads the VIHF, vihf_gate.hpp); a VIHF disagreeing with the other selectors is
/// `vihf_mismatch` (DESIGN.md: more specific than tenant_ambiguous). `client_cert` (rules matched once per
/// connection by the caller, like `source`) votes like the others; rules disagreeing about one certificate
/// are tenant_ambiguous.
class TenantSelector {
 public:
  /// `listener` must outlive the selector (it is part of the Runtime's config snapshot).
  explicit TenantSelector(const config::Listener& listener);

  /// Runs every configured selector over `in`. Never throws.
  Selection select(const SelectionInput& in) const;

  /// The header to remove before forwarding ("" when the header selector is not configured).
  std::string_view selection_header() const { return header_enabled_ ? header_name_ : std::string_view{}; }
  bool source_enabled() const { return source_enabled_; }
  bool vihf_enabled() const { return vihf_enabled_; }
  bool client_cert_enabled() const { return client_cert_enabled_; }

 private:
  bool fixed_enabled_ = false;
  bool header_enabled_ = false;
  bool path_enabled_ = false;
  bool source_enabled_ = false;
  bool vihf_enabled_ = false;
  bool client_cert_enabled_ = false;
  std::string_view fixed_id_;
  std::string_view header_name_;
};

}  // namespace orgproxy::daemon
