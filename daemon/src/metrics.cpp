// Recording side of the metrics: what the data path and the control thread call.
#include "orgproxy/daemon/metrics.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "orgproxy/daemon/runtime.hpp"

namespace orgproxy::daemon {

namespace {

constexpr std::array<std::string_view, 6> kClassLabels{"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

unsigned class_index(unsigned status) { return status >= 100 && status < 600 ? status / 100 : 0; }

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view handshake_result(ErrorCode code) {
  switch (code) {
    case ErrorCode::none: return "success";
    case ErrorCode::upstream_connect: return "connect_error";
    case ErrorCode::upstream_timeout: return "timeout";
    case ErrorCode::upstream_tls: return "tls_error";
    case ErrorCode::identity_unavailable: return "identity_unavailable";
    default: return to_string(code);
  }
}

// Per-thread caches of label-resolved entries: the hot path does one hash lookup on a reused string and
// takes no lock. Bound to one Metrics instance (unit tests may create several, one after the other).
template <class Value>
struct ThreadCache {
  const void* owner = nullptr;
  std::string scratch;
  std::unordered_map<std::string, Value*> map;
  Value* find(const void* metrics, std::string_view a, std::string_view b) {
    if (owner != metrics) {
      map.clear();
      owner = metrics;
    }
    scratch.assign(a);
    scratch.push_back('\x1f');
    scratch.append(b);
    auto it = map.find(scratch);
    return it == map.end() ? nullptr : it->second;
  }
};

}  // namespace

struct Metrics::PairEntry {
  std::string tenant_label;  ///< "" when tenant labels are off
  std::string upstream;
  std::array<std::atomic<prometheus::Counter*>, kClassLabels.size()> classes{};
  AtomicHistogram* duration = nullptr;
  std::atomic<std::int64_t> last_success_ms{0};
  std::atomic<std::int64_t> last_failure_ms{0};
  std::atomic<unsigned> last_failure_status{0};
  std::atomic<std::uint8_t> last_failure_error{0};
  std::atomic<std::uint64_t> requests{0};
};

AtomicHistogram::AtomicHistogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void AtomicHistogram::observe(double seconds) {
  if (!(seconds > 0)) seconds = 0;  // also maps NaN to 0
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), seconds);
  counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::llround(seconds * 1e9)), std::memory_order_relaxed);
}

prometheus::ClientMetric::Histogram AtomicHistogram::snapshot() const {
  prometheus::ClientMetric::Histogram h;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    h.bucket.push_back({cumulative, i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity()});
  }
  h.sample_count = cumulative;
  h.sample_sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return h;
}

const std::vector<double>& request_duration_bounds() {
  static const std::vector<double> b{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return b;
}

const std::vector<double>& handshake_duration_bounds() {
  static const std::vector<double> b{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
  return b;
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("orgproxy_requests_total")
                    .Help("Requests answered, by tenant, upstream and status class")
                    .Register(*registry_)),
      handshakes_(prometheus::BuildCounter()
                      .Name("orgproxy_upstream_handshakes_total")
                      .Help("New upstream connections (TCP connect and mutual-TLS handshake), by result")
                      .Register(*registry_)),
      reloads_(prometheus::BuildCounter()
                   .Name("orgproxy_config_reloads_total")
                   .Help("Configuration reloads (SIGHUP), by result")
                   .Register(*registry_)),
      last_reload_success_(prometheus::BuildGauge()
                               .Name("orgproxy_config_last_reload_success_timestamp_seconds")
                               .Help("Unix time the running configuration became active")
                               .Register(*registry_)
                               .Add({})),
      idle_by_worker_(new std::atomic<std::uint64_t>[kMaxWorkers]) {
  for (unsigned i = 0; i < kMaxWorkers; ++i) idle_by_worker_[i].store(0, std::memory_order_relaxed);
  prometheus::BuildGauge()
      .Name("orgproxy_build_info")
      .Help("Build information; the value is always 1")
      .Register(*registry_)
      .Add({{"version", ORGPROXY_VERSION}})
      .Set(1);
  // Both results exported from the start, so that rate() and alerts see a 0 rather than no series.
  reloads_.Add({{"result", "success"}});
  reloads_.Add({{"result", "failure"}});
}

Metrics::~Metrics() = default;

void Metrics::set_per_tenant_labels(bool on) { per_tenant_.store(on, std::memory_order_relaxed); }

void Metrics::observe_request(const Runtime* rt, const AccessRecord& r) {
  // Only configured tenant ids become label values: request text never grows the series set.
  const std::string_view tenant = !r.tenant.empty() && rt && rt->find_tenant(r.tenant) ? r.tenant : "none";
  const std::string_view upstream = r.upstream.empty() ? std::string_view("none") : r.upstream;
  thread_local ThreadCache<PairEntry> cache;
  PairEntry* e = cache.find(this, tenant, upstream);
  if (!e) {
    e = &pair_slow(cache.scratch, tenant, upstream);
    cache.map.emplace(cache.scratch, e);
  }
  const unsigned cls = class_index(r.status);
  prometheus::Counter* counter = e->classes[cls].load(std::memory_order_acquire);
  if (!counter) counter = &class_counter_slow(*e, cls);
  counter->Increment();
  e->duration->observe(r.duration_ms / 1000.0);
  e->requests.fetch_add(1, std::memory_order_relaxed);
  if (r.status >= 500) {
    e->last_failure_status.store(r.status, std::memory_order_relaxed);
    e->last_failure_error.store(static_cast<std::uint8_t>(r.error), std::memory_order_relaxed);
    e->last_failure_ms.store(now_unix_ms(), std::memory_order_release);
  } else if (r.error == ErrorCode::none && r.status >= 100 && !r.upstream.empty()) {
    e->last_success_ms.store(now_unix_ms(), std::memory_order_release);
  }
}

Metrics::PairEntry& Metrics::pair_slow(const std::string& key, std::string_view tenant, std::string_view upstream) {
  std::lock_guard lock(mutex_);
  auto& slot = pairs_[key];
  if (!slot) {
    slot = std::make_unique<PairEntry>();
    if (per_tenant_labels()) slot->tenant_label.assign(tenant);
    slot->upstream.assign(upstream);
    slot->duration = &histogram_slow(request_durations_, upstream, request_duration_bounds());
  }
  return *slot;
}

prometheus::Counter& Metrics::class_counter_slow(PairEntry& e, unsigned cls) {
  std::lock_guard lock(mutex_);
  if (auto* c = e.classes[cls].load(std::memory_order_acquire)) return *c;
  std::map<std::string, std::string> labels{{"upstream", e.upstream}, {"code_class", std::string(kClassLabels[cls])}};
  if (per_tenant_labels()) labels.emplace("tenant", e.tenant_label);
  // Family::Add returns the existing counter for equal labels: with tenant labels off, every tenant's entry
  // of one upstream shares the same counter.
  prometheus::Counter& c = requests_.Add(labels);
  e.classes[cls].store(&c, std::memory_order_release);
  return c;
}

AtomicHistogram& Metrics::histogram_slow(std::map<std::string, std::unique_ptr<AtomicHistogram>, std::less<>>& map,
                                         std::string_view upstream, const std::vector<double>& bounds) {
  auto it = map.find(upstream);
  if (it == map.end()) it = map.emplace(std::string(upstream), std::make_unique<AtomicHistogram>(bounds)).first;
  return *it->second;
}

void Metrics::observe_handshake(std::string_view upstream, ErrorCode result, double seconds) {
  const std::string_view r = handshake_result(result);
  thread_local ThreadCache<prometheus::Counter> counters;
  prometheus::Counter* c = counters.find(this, upstream, r);
  if (!c) {
    c = &handshake_counter_slow(counters.scratch, upstream, r);
    counters.map.emplace(counters.scratch, c);
  }
  c->Increment();
  if (result == ErrorCode::none || seconds > 0) {
    thread_local ThreadCache<AtomicHistogram> histograms;
    AtomicHistogram* h = histograms.find(this, upstream, "");
    if (!h) {
      std::lock_guard lock(mutex_);
      h = &histogram_slow(handshake_durations_, upstream, handshake_duration_bounds());
      histograms.map.emplace(histograms.scratch, h);
    }
    h->observe(seconds);
  }
}

prometheus::Counter& Metrics::handshake_counter_slow(const std::string& key, std::string_view upstream,
                                                     std::string_view result) {
  std::lock_guard lock(mutex_);
  auto& slot = handshake_counters_[key];
  if (!slot) slot = &handshakes_.Add({{"upstream", std::string(upstream)}, {"result", std::string(result)}});
  return *slot;
}

void Metrics::set_idle_connections(unsigned index, std::size_t idle) {
  if (index < kMaxWorkers) idle_by_worker_[index].store(idle, std::memory_order_relaxed);
}

void Metrics::config_loaded(bool reload) {
  if (reload) reloads_.Add({{"result", "success"}}).Increment();
  last_reload_success_.Set(static_cast<double>(now_unix_ms()) / 1000.0);
}

void Metrics::config_reload_failed() { reloads_.Add({{"result", "failure"}}).Increment(); }

std::optional<UpstreamOutcome> Metrics::outcome(std::string_view tenant, std::string_view upstream) const {
  std::string key(tenant);
  key.push_back('\x1f');
  key.append(upstream);
  std::lock_guard lock(mutex_);
  auto it = pairs_.find(key);
  if (it == pairs_.end()) return std::nullopt;
  const PairEntry& e = *it->second;
  UpstreamOutcome o;
  o.last_success_ms = e.last_success_ms.load(std::memory_order_acquire);
  o.last_failure_ms = e.last_failure_ms.load(std::memory_order_acquire);
  o.last_failure_status = e.last_failure_status.load(std::memory_order_relaxed);
  o.last_failure_error = static_cast<ErrorCode>(e.last_failure_error.load(std::memory_order_relaxed));
  o.requests = e.requests.load(std::memory_order_relaxed);
  return o;
}

Metrics& metrics() {
  static Metrics instance;
  return instance;
}

}  // namespace orgproxy::daemon
