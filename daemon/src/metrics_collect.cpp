// Scrape side of the metrics: families computed when /metrics is read (histograms, pool gauges, identity
// and certificate state, PKCS#11 statistics), then the text exposition.
#include <limits>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "orgproxy/daemon/site_status.hpp"
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::daemon {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric gauge(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

void collect_identities(const Runtime& rt, bool per_tenant, std::vector<MetricFamily>& out) {
  auto not_after = family("orgproxy_certificate_not_after_timestamp_seconds",
                          "Latest notAfter (Unix time) of the certificates loaded for a tenant and purpose; "
                          "without tenant labels the earliest such date over all tenants",
                          MetricType::Gauge);
  auto unavailable = family("orgproxy_identity_unavailable",
                            "1 when requests of this tenant and purpose get 503 identity_unavailable; without "
                            "tenant labels the number of such identities",
                            MetricType::Gauge);
  auto ready = family("orgproxy_ready", "1 when /readyz answers 200", MetricType::Gauge);
  const auto statuses = identity_statuses(rt, std::chrono::system_clock::now());
  if (per_tenant) {
    for (const auto& s : statuses) {
      std::vector<ClientMetric::Label> labels{{"purpose", std::string(config::to_string(s.purpose))},
                                              {"tenant", std::string(s.tenant)}};
      if (s.has_certificate) not_after.metric.push_back(gauge(labels, unix_seconds(s.not_after)));
      unavailable.metric.push_back(gauge(labels, s.usable ? 0 : 1));
    }
  } else {
    // Aggregated per purpose: the earliest expiry is what an alert needs; the list is on /sites.
    std::map<config::Purpose, std::pair<double, double>> by_purpose;  // earliest not_after, unavailable count
    for (const auto& s : statuses) {
      auto [it, fresh] = by_purpose.try_emplace(s.purpose, std::numeric_limits<double>::infinity(), 0.0);
      if (s.has_certificate) it->second.first = std::min(it->second.first, unix_seconds(s.not_after));
      if (!s.usable) it->second.second += 1;
    }
    for (const auto& [purpose, v] : by_purpose) {
      std::vector<ClientMetric::Label> labels{{"purpose", std::string(config::to_string(purpose))}};
      if (v.first != std::numeric_limits<double>::infinity()) not_after.metric.push_back(gauge(labels, v.first));
      unavailable.metric.push_back(gauge(labels, v.second));
    }
  }
  ready.metric.push_back(gauge({}, is_ready(rt, statuses) ? 1 : 0));
  out.push_back(std::move(not_after));
  out.push_back(std::move(unavailable));
  out.push_back(std::move(ready));
}

void collect_keystore(const keystore::Keystore& ks, std::vector<MetricFamily>& out) {
  const keystore::KeystoreStats stats = ks.stats();
  auto duration = family("orgproxy_pkcs11_sign_duration_seconds",
                         "Signatures made in the PKCS#11 token (C_SignInit to C_Sign, recovery included)",
                         MetricType::Histogram);
  ClientMetric h;
  for (std::size_t i = 0; i < stats.sign_seconds_buckets.size(); ++i) {
    double bound = i < stats.sign_seconds_bounds.size() ? stats.sign_seconds_bounds[i]
                                                        : std::numeric_limits<double>::infinity();
    h.histogram.bucket.push_back({stats.sign_seconds_buckets[i], bound});
  }
  if (h.histogram.bucket.empty() || h.histogram.bucket.back().upper_bound != std::numeric_limits<double>::infinity())
    h.histogram.bucket.push_back({stats.signs, std::numeric_limits<double>::infinity()});
  h.histogram.sample_count = stats.signs;
  h.histogram.sample_sum = stats.sign_seconds_sum;
  duration.metric.push_back(std::move(h));
  out.push_back(std::move(duration));

  auto errors = family("orgproxy_pkcs11_sign_errors_total", "Signatures that failed after the one retry, by CKR",
                       MetricType::Counter);
  for (const auto& [ckr, n] : stats.sign_errors) {
    ClientMetric m;
    m.label = {{"ckr", ckr}};
    m.counter.value = static_cast<double>(n);
    errors.metric.push_back(std::move(m));
  }
  out.push_back(std::move(errors));

  auto recoveries = family("orgproxy_pkcs11_recoveries_total",
                           "PKCS#11 recoveries (lost session or login, device error, token absent or back)",
                           MetricType::Counter);
  for (const auto& [reason, n] : stats.recoveries) {
    ClientMetric m;
    m.label = {{"reason", reason}};
    m.counter.value = static_cast<double>(n);
    recoveries.metric.push_back(std::move(m));
  }
  out.push_back(std::move(recoveries));
}

}  // namespace

std::vector<MetricFamily> Metrics::collect(const Runtime* rt, const keystore::Keystore* keystore) const {
  std::vector<MetricFamily> out = registry_->Collect();

  auto request_durations = family("orgproxy_request_duration_seconds",
                                  "Time from a request's head read to its access-log line, by upstream",
                                  MetricType::Histogram);
  auto handshake_durations = family("orgproxy_upstream_handshake_duration_seconds",
                                    "Mutual-TLS handshake duration of new upstream connections (the token "
                                    "signature included)",
                                    MetricType::Histogram);
  std::int64_t idle = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [upstream, h] : request_durations_) {
      ClientMetric m;
      m.label = {{"upstream", upstream}};
      m.histogram = h->snapshot();
      request_durations.metric.push_back(std::move(m));
    }
    for (const auto& [upstream, h] : handshake_durations_) {
      ClientMetric m;
      m.label = {{"upstream", upstream}};
      m.histogram = h->snapshot();
      handshake_durations.metric.push_back(std::move(m));
    }
  }
  for (unsigned i = 0; i < kMaxWorkers; ++i) idle += static_cast<std::int64_t>(idle_by_worker_[i].load(std::memory_order_relaxed));
  out.push_back(std::move(request_durations));
  out.push_back(std::move(handshake_durations));

  // Open connections are counted exactly; idle ones are published by each worker once a second, so
  // `active` may lag by up to a second.
  const std::int64_t open = open_connections_.load(std::memory_order_relaxed);
  auto connections = family("orgproxy_upstream_connections", "Upstream connections alive, by state",
                            MetricType::Gauge);
  connections.metric.push_back(gauge({{"state", "active"}}, static_cast<double>(std::max<std::int64_t>(0, open - idle))));
  connections.metric.push_back(gauge({{"state", "idle"}}, static_cast<double>(std::min(idle, std::max<std::int64_t>(open, 0)))));
  out.push_back(std::move(connections));

  if (rt) {
    collect_identities(*rt, per_tenant_labels(), out);
    auto generation = family("orgproxy_config_generation", "Generation of the running configuration (1 at start, +1 per successful reload)",
                             MetricType::Gauge);
    generation.metric.push_back(gauge({}, static_cast<double>(rt->generation())));
    out.push_back(std::move(generation));
  }
  if (keystore) collect_keystore(*keystore, out);
  return out;
}

std::string Metrics::exposition(const Runtime* rt, const keystore::Keystore* keystore) const {
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, collect(rt, keystore));
  return os.str();
}

}  // namespace orgproxy::daemon
