#include "orgproxy/daemon/selection.hpp"

#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {

TenantSelector::TenantSelector(const config::Listener& listener)
    : fixed_id_(listener.fixed_tenant), header_name_(listener.tenant_header) {
  for (auto kind : listener.selectors) {
    switch (kind) {
      case config::SelectorKind::fixed: fixed_enabled_ = true; break;
      case config::SelectorKind::header: header_enabled_ = true; break;
      case config::SelectorKind::path: path_enabled_ = true; break;
      case config::SelectorKind::source: source_enabled_ = true; break;
      case config::SelectorKind::vihf: vihf_enabled_ = true; break;
      case config::SelectorKind::client_cert: client_cert_enabled_ = true; break;
    }
  }
}

Selection TenantSelector::select(const SelectionInput& in) const {
  Selection s;
  s.route_path = in.path;
  std::string_view chosen;
  bool have = false;
  // One vote per yielding selector; any disagreement is final.
  auto vote = [&](std::string_view id) {
    if (!have) {
      chosen = id;
      have = true;
      return true;
    }
    return chosen == id;
  };
  auto ambiguous = [&](const char* why) {
    s.error = ErrorCode::tenant_ambiguous;
    s.reason = why;
    return s;
  };

  if (fixed_enabled_ && !fixed_id_.empty()) vote(fixed_id_);
  if (source_enabled_ && !in.source_tenant.empty() && !vote(in.source_tenant))
    return ambiguous("tenant selectors disagree (source address)");
  if (client_cert_enabled_) {
    if (in.client_cert_conflict) return ambiguous("the client certificate matches client_cert rules of different tenants");
    if (!in.client_cert_tenant.empty() && !vote(in.client_cert_tenant))
      return ambiguous("tenant selectors disagree (client certificate)");
  }

  if (header_enabled_ && (in.head_fields || in.fields)) {
    // Every occurrence counts: two differing selection headers are ambiguous, not "first wins".
    // Returns none when every occurrence agreed, else the refusal (with s.reason set).
    auto header_votes = [&](const auto& fields) -> ErrorCode {
      for (auto const& f : fields) {
        if (!boost::beast::iequals(f.name_string(), header_name_)) continue;
        auto value = trim_ows(f.value());
        if (value.empty()) {
          s.reason = "empty tenant selection header";
          return ErrorCode::bad_request;
        }
        if (!vote(value)) {
          s.reason = "tenant selectors disagree (header)";
          return ErrorCode::tenant_ambiguous;
        }
      }
      return ErrorCode::none;
    };
    s.error = in.head_fields ? header_votes(*in.head_fields) : header_votes(*in.fields);
    if (s.error != ErrorCode::none) return s;
  }

  if (path_enabled_) {
    std::string_view rest;
    if (auto id = split_site_prefix(in.path, rest)) {
      if (!vote(*id)) return ambiguous("tenant selectors disagree (path)");
      s.route_path = rest;
    }
  }

  if (vihf_enabled_ && !in.vihf_structure.empty()) {
    if (!vote(in.vihf_structure)) {
      s.error = ErrorCode::vihf_mismatch;
      s.reason = "the VIHF names another site than the other selectors";
      return s;
    }
  }

  if (!have) {
    s.error = ErrorCode::tenant_missing;
    s.reason = "no selector yielded a tenant";
    return s;
  }
  s.tenant_id = chosen;
  return s;
}

}  // namespace orgproxy::daemon
