// The keystore's counters (KeystoreStats): lock-free on the signing path, a small lock for rare events.
// Internal to the keystore.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

class StatsRecorder {
 public:
  /// A successful sign that took `elapsed` (atomics only: called on every handshake, from every thread).
  void record_sign(std::chrono::steady_clock::duration elapsed);
  /// A sign that failed for good with `ckr_name`.
  void record_sign_error(const std::string& ckr_name);
  /// One recovery of `reason` (see KeystoreStats::recoveries).
  void record_recovery(const std::string& reason);
  KeystoreStats snapshot() const;

 private:
  static constexpr std::array<double, 10> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0};
  std::atomic<std::uint64_t> signs_{0};
  std::atomic<std::uint64_t> nanoseconds_{0};
  std::array<std::atomic<std::uint64_t>, kBounds.size()> buckets_{};  // non-cumulative here
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> errors_, recoveries_;
};

}  // namespace orgproxy::keystore
