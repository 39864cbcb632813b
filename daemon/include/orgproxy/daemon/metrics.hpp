// Prometheus metrics of the daemon (ops/README.md lists them). The hot path records through Metrics with
// no lock: label-resolved counters are looked up once per (tenant, upstream) and cached per thread; the
// duration histograms are arrays of relaxed atomics. Values derived from state (certificate dates, identity
// availability, PKCS#11 statistics, pool gauges) are computed when /metrics is scraped, not per request.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "orgproxy/daemon/access_log.hpp"
#include "orgproxy/daemon/error_response.hpp"

namespace orgproxy::keystore {
class Keystore;
}

namespace orgproxy::daemon {

class Runtime;

/// A Prometheus histogram updated with relaxed atomics only (prometheus-cpp 1.0's Histogram takes a mutex
/// per observation). `bounds` are the upper bounds in seconds, increasing; +Inf is implicit.
class AtomicHistogram {
 public:
  explicit AtomicHistogram(std::vector<double> bounds);
  /// Records one observation of `seconds` (negative values count as 0). Lock-free.
  void observe(double seconds);
  /// Cumulative buckets, count and sum as prometheus-cpp's client model (bucket +Inf last).
  prometheus::ClientMetric::Histogram snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  ///< bounds_.size() + 1 (the last is +Inf)
  std::atomic<std::uint64_t> sum_ns_{0};                  ///< sum in nanoseconds: integer adds stay lock-free
};

/// The last upstream outcome seen for one (tenant, upstream), for `/sites` and `orgproxy sites status`.
/// Times are Unix milliseconds; 0 = never.
struct UpstreamOutcome {
  std::int64_t last_success_ms = 0;  ///< last answer relayed from the upstream with a status < 500
  std::int64_t last_failure_ms = 0;  ///< last request that ended in a 5xx (ours or the upstream's)
  unsigned last_failure_status = 0;
  ErrorCode last_failure_error = ErrorCode::none;  ///< orgproxy's code of that failure (none: relayed 5xx)
  std::uint64_t requests = 0;
};

/// Process-wide metrics. One instance per process (like spdlog's registry): the daemon's data path reaches it
/// through metrics(), so instrumentation is one call per event and no object has to be threaded through
/// every constructor. Thread-safe.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// Whether series carry a `tenant` label (settings.metrics_per_tenant). Read at start; later changes
  /// are ignored (series already exported keep their labels until a restart).
  void set_per_tenant_labels(bool on);
  bool per_tenant_labels() const { return per_tenant_.load(std::memory_order_relaxed); }

  /// One finished request (its access record; `rt` is the snapshot it ran on, null before one was chosen:
  /// a tenant id it does not configure is reported as tenant "none", so request text never becomes a
  /// label). Lock-free once the (tenant, upstream) pair was seen by this thread.
  void observe_request(const Runtime* rt, const AccessRecord& record);

  /// One upstream connection attempt that reached the handshake stage or failed before it:
  /// `result` none = handshake done; `seconds` = TLS handshake duration (0 when it never started).
  void observe_handshake(std::string_view upstream, ErrorCode result, double seconds);

  /// Upstream connections alive (pooled or in use): +1 when one is created, -1 when destroyed.
  void upstream_connection_opened() { open_connections_.fetch_add(1, std::memory_order_relaxed); }
  void upstream_connection_closed() { open_connections_.fetch_sub(1, std::memory_order_relaxed); }
  /// Idle pooled connections of worker `index` (published by the worker's sweeper, once a second).
  void set_idle_connections(unsigned index, std::size_t idle);

  /// A configuration became active: `reload` false at start (sets the last-success time only), true for
  /// a SIGHUP reload (also counts orgproxy_config_reloads_total{result="success"}).
  void config_loaded(bool reload);
  /// A reload was rejected (orgproxy_config_reloads_total{result="failure"}).
  void config_reload_failed();

  /// Every family for the text exposition: the registry's counters and gauges, the histograms, and
  /// state-derived families computed from `rt` (may be null) and `keystore` (may be null).
  std::vector<prometheus::MetricFamily> collect(const Runtime* rt, const keystore::Keystore* keystore) const;

  /// The Prometheus text exposition (format 0.0.4) of collect().
  std::string exposition(const Runtime* rt, const keystore::Keystore* keystore) const;

  /// Last outcome for (tenant, upstream), or nullopt when no request of that pair was seen.
  std::optional<UpstreamOutcome> outcome(std::string_view tenant, std::string_view upstream) const;

  /// Entry of one (tenant, upstream) pair; public for the per-thread cache only.
  struct PairEntry;

 private:
  PairEntry& pair_slow(const std::string& key, std::string_view tenant, std::string_view upstream);
  prometheus::Counter& class_counter_slow(PairEntry& e, unsigned cls);
  prometheus::Counter& handshake_counter_slow(const std::string& key, std::string_view upstream,
                                              std::string_view result);
  AtomicHistogram& histogram_slow(std::map<std::string, std::unique_ptr<AtomicHistogram>, std::less<>>& map,
                                  std::string_view upstream, const std::vector<double>& bounds);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& handshakes_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Gauge& last_reload_success_;
  std::atomic<bool> per_tenant_{true};

  mutable std::mutex mutex_;  ///< slow paths and scrapes only
  std::unordered_map<std::string, std::unique_ptr<PairEntry>> pairs_;             ///< tenant \x1f upstream
  std::unordered_map<std::string, prometheus::Counter*> handshake_counters_;      ///< upstream \x1f result
  std::map<std::string, std::unique_ptr<AtomicHistogram>, std::less<>> request_durations_;    ///< by upstream
  std::map<std::string, std::unique_ptr<AtomicHistogram>, std::less<>> handshake_durations_;  ///< by upstream

  std::atomic<std::int64_t> open_connections_{0};
  static constexpr unsigned kMaxWorkers = 256;
  std::unique_ptr<std::atomic<std::uint64_t>[]> idle_by_worker_;
};

/// The process's Metrics.
Metrics& metrics();

/// Bucket bounds (seconds) of orgproxy_request_duration_seconds: 5 ms to 60 s (national services answer
/// in tens of ms to tens of seconds for large DMP documents).
const std::vector<double>& request_duration_bounds();
/// Bucket bounds (seconds) of orgproxy_upstream_handshake_duration_seconds: 1 ms to 10 s.
const std::vector<double>& handshake_duration_bounds();

}  // namespace orgproxy::daemon
