#include "stats.hpp"

#include <algorithm>
#include <limits>

namespace orgproxy::keystore {

void StatsRecorder::record_sign(std::chrono::steady_clock::duration elapsed) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
  const double seconds = static_cast<double>(ns) / 1e9;
  signs_.fetch_add(1, std::memory_order_relaxed);
  nanoseconds_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
  for (size_t i = 0; i < kBounds.size(); ++i)
    if (seconds <= kBounds[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
}

void StatsRecorder::record_sign_error(const std::string& ckr_name) {
  std::lock_guard lock(mutex_);
  ++errors_[ckr_name];
}

void StatsRecorder::record_recovery(const std::string& reason) {
  std::lock_guard lock(mutex_);
  ++recoveries_[reason];
}

KeystoreStats StatsRecorder::snapshot() const {
  KeystoreStats s;
  s.signs = signs_.load(std::memory_order_relaxed);
  s.sign_seconds_sum = static_cast<double>(nanoseconds_.load(std::memory_order_relaxed)) / 1e9;
  std::uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    s.sign_seconds_bounds.push_back(kBounds[i]);
    s.sign_seconds_buckets.push_back(cumulative);
  }
  s.sign_seconds_bounds.push_back(std::numeric_limits<double>::infinity());
  s.sign_seconds_buckets.push_back(std::max(cumulative, s.signs));
  std::lock_guard lock(mutex_);
  s.sign_errors = errors_;
  s.recoveries = recoveries_;
  return s;
}

}  // namespace orgproxy::keystore
