// JSON views of the admin listener: /readyz and /sites.
#include <chrono>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "orgproxy/daemon/admin_server.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "orgproxy/daemon/site_status.hpp"

namespace orgproxy::daemon {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

std::string iso8601(Clock::time_point t) {
  const std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json time_or_null(std::int64_t unix_ms) {
  if (unix_ms == 0) return nullptr;
  return iso8601(Clock::time_point(std::chrono::milliseconds(unix_ms)));
}

}  // namespace

std::string readyz_json(const Runtime& rt, bool& ready) {
  const auto statuses = identity_statuses(rt, Clock::now());
  ready = is_ready(rt, statuses);
  json unavailable = json::array();
  std::size_t usable = 0;
  for (const auto& s : statuses) {
    if (s.usable) {
      ++usable;
      continue;
    }
    unavailable.push_back({{"tenant", s.tenant},
                           {"purpose", config::to_string(s.purpose)},
                           {"reason", s.reason},
                           {"token_present", s.token_present}});
  }
  json body{{"ready", ready},
            {"generation", rt.generation()},
            {"require_all_identities", rt.config().settings.require_all_identities},
            {"identities", {{"usable", usable}, {"unavailable", statuses.size() - usable}}},
            {"unavailable", std::move(unavailable)}};
  // Lossy replacement of invalid UTF-8 (a reason may quote a file name): the answer must always serialize.
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string sites_json(const Runtime& rt) {
  const auto now = Clock::now();
  const auto statuses = identity_statuses(rt, now);
  const Metrics& m = metrics();
  json sites = json::array();
  std::size_t next = 0;
  for (const auto& tenant : rt.config().tenants) {
    json site{{"id", tenant.id}, {"name", tenant.name}, {"sector", tenant.sector}};
    json identities = json::array();
    std::set<config::Purpose> purposes;
    for (; next < statuses.size() && statuses[next].tenant == tenant.id; ++next) {
      const auto& s = statuses[next];
      purposes.insert(s.purpose);
      json ident{{"purpose", config::to_string(s.purpose)}, {"usable", s.usable}, {"token_present", s.token_present}};
      if (s.has_certificate) {
        ident["not_after"] = iso8601(s.not_after);
        // Whole days left, rounded down; negative once expired.
        ident["days_to_expiry"] = static_cast<long>(
            std::floor(std::chrono::duration<double, std::ratio<86400>>(s.not_after - now).count()));
      } else {
        ident["not_after"] = nullptr;
        ident["days_to_expiry"] = nullptr;
      }
      if (!s.subject.empty()) ident["subject"] = s.subject;
      if (!s.serial_hex.empty()) ident["serial"] = s.serial_hex;
      if (!s.reason.empty()) ident["reason"] = s.reason;
      identities.push_back(std::move(ident));
    }
    site["identities"] = std::move(identities);
    // Upstreams this site can reach: those whose purpose it has an identity for.
    json upstreams = json::array();
    for (const auto& [name, up] : rt.config().upstreams) {
      if (!purposes.count(up.purpose)) continue;
      json u{{"upstream", name}, {"purpose", config::to_string(up.purpose)}};
      auto o = m.outcome(tenant.id, name);
      u["requests"] = o ? o->requests : 0;
      u["last_success"] = time_or_null(o ? o->last_success_ms : 0);
      u["last_failure"] = time_or_null(o ? o->last_failure_ms : 0);
      if (o && o->last_failure_ms) {
        u["last_failure_status"] = o->last_failure_status;
        u["last_failure_error"] = to_string(o->last_failure_error);
      }
      upstreams.push_back(std::move(u));
    }
    site["upstreams"] = std::move(upstreams);
    sites.push_back(std::move(site));
  }
  json body{{"generated_at", iso8601(now)}, {"generation", rt.generation()}, {"sites", std::move(sites)}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace orgproxy::daemon
