// Worker-local pool of idle upstream connections and TLS sessions, keyed by (tenant, identity, upstream)
// (DESIGN.md "Upstream connections and TLS sessions are keyed by (tenant, identity, upstream)").
// A connection or session stored under one key is only ever handed out for that same key: this is the
// property nginx lacks (its pool key ignores the client certificate) and Pingora keeps.
// Not thread-safe by design: one pool per worker thread, so the hot path takes no lock.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
#include <limits>
#include <functional>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <openssl/ssl.h>

#include "orgproxy/keystore/ossl_ptr.hpp"

namespace orgproxy::daemon {

/// Identifies what an upstream connection is authenticated as and to. The views/pointers refer to the
/// Runtime snapshot the pool is bound to (the pool is flushed when the snapshot changes).
struct PoolKey {
  std::string_view tenant;   ///< tenant id (exact text)
  const void* identity = nullptr;  ///< the keystore::Identity presented
  const void* upstream = nullptr;  ///< the config::Upstream reached

  friend bool operator==(const PoolKey&, const PoolKey&) = default;
};

struct PoolKeyHash {
  std::size_t operator()(const PoolKey& k) const noexcept {
    std::size_t h = std::hash<std::string_view>{}(k.tenant);
    h ^= std::hash<const void*>{}(k.identity) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= std::hash<const void*>{}(k.upstream) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
  }
};

/// Idle connections of type `Conn` plus one resumable TLS session per key. Besides the per-key limit given
/// to release(), the idle connections of all keys together are capped (set_max_idle_total): past the cap,
/// the least recently released idle connection, whatever its key, is dropped. Each idle TLS connection
/// holds about 80 KB (Asio's and the BIO pair's record buffers), so without a global cap a group of 10,000
/// sites each touched once would hold 10,000 of them for the idle timeout.
template <class Conn>
class KeyedIdlePool {
 public:
  using Clock = std::chrono::steady_clock;

  /// Caps the idle connections of all keys together (0 = keep none); lowering it drops the oldest now.
  void set_max_idle_total(std::size_t max_idle_total) {
    max_idle_total_ = max_idle_total;
    while (idle_total_ > max_idle_total_ && drop_oldest()) {
    }
  }
  std::size_t max_idle_total() const { return max_idle_total_; }

  /// The most recently released idle connection of `key` not expired at `now`, or nullptr. Expired
  /// connections met on the way are dropped. The caller still checks liveness (the peer may have closed).
  std::unique_ptr<Conn> acquire(const PoolKey& key, Clock::time_point now) {
    auto it = buckets_.find(key);
    if (it == buckets_.end()) return nullptr;
    auto& idle = it->second.idle;
    while (!idle.empty()) {
      Entry e = std::move(idle.back());
      idle.pop_back();
      --idle_total_;
      if (e.expires > now) return std::move(e.conn);
      retire(std::move(e.conn));
    }
    return nullptr;
  }

  /// Keeps `conn` idle under `key` until `expires`. Returns false (and drops it) when the key already
  /// holds `max_idle` idle connections or the global cap is 0; when the global cap is reached, the
  /// least recently released idle connection of any key is dropped to make room.
  bool release(const PoolKey& key, std::unique_ptr<Conn> conn, Clock::time_point expires, std::size_t max_idle) {
    if (max_idle_total_ == 0) {
      retire(std::move(conn));
      return false;
    }
    auto& bucket = buckets_[key];
    if (bucket.idle.size() >= max_idle) {
      retire(std::move(conn));
      return false;
    }
    const std::uint64_t seq = next_seq_++;
    bucket.idle.push_back(Entry{std::move(conn), expires, seq});
    order_.emplace_back(seq, key);
    ++idle_total_;
    while (idle_total_ > max_idle_total_ && drop_oldest()) {
    }
    // order_ keeps entries taken back by acquire() or swept until they reach its front: rebuild it when
    // they outnumber the live ones, so it stays proportional to the idle connections.
    if (order_.size() > 2 * idle_total_ + 1024) rebuild_order();
    return true;
  }

  /// Remembers the TLS session to resume on the next connection of `key` (replaces the previous one).
  void store_session(const PoolKey& key, keystore::SslSessionPtr session) {
    buckets_[key].session = std::move(session);
  }
  /// The session stored for exactly `key`, or nullptr; nullptr too once the session's lifetime (its
  /// SSL_SESSION timeout: the server's ticket lifetime hint in TLS 1.3, RFC 8446 §4.6.1) has passed at
  /// `now` (seconds since the epoch): offering it would only cost a refused resumption. The pool keeps
  /// ownership.
  SSL_SESSION* session(const PoolKey& key, std::time_t now = std::time(nullptr)) const {
    auto it = buckets_.find(key);
    if (it == buckets_.end() || !it->second.session) return nullptr;
    return session_expired(it->second.session.get(), now) ? nullptr : it->second.session.get();
  }
  /// True when `s` is past its lifetime at `now` (seconds since the epoch).
  static bool session_expired(const SSL_SESSION* s, std::time_t now) {
    return static_cast<std::time_t>(SSL_SESSION_get_time(s)) + static_cast<std::time_t>(SSL_SESSION_get_timeout(s)) <= now;
  }
  /// Forgets the session of `key` (after a failed resumption or handshake).
  void forget_session(const PoolKey& key) {
    auto it = buckets_.find(key);
    if (it != buckets_.end()) it->second.session.reset();
  }

  /// Drops idle connections expired at `now` and TLS sessions past their lifetime at `wall_now` (seconds
  /// since the epoch); removes buckets left empty without a session. Without the session expiry, every site
  /// ever used kept its bucket and session (a few KB) for the life of the worker.
  void sweep(Clock::time_point now, std::time_t wall_now = std::time(nullptr)) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      if (it->second.session && session_expired(it->second.session.get(), wall_now)) it->second.session.reset();
      auto& idle = it->second.idle;
      std::size_t before = idle.size();
      std::erase_if(idle, [&](Entry& e) {
        if (e.expires > now) return false;
        retire(std::move(e.conn));
        return true;
      });
      idle_total_ -= before - idle.size();
      if (idle.empty() && !it->second.session)
        it = buckets_.erase(it);
      else
        ++it;
    }
  }

  /// Drops everything (used when the Runtime snapshot changes: nothing authenticated under an old
  /// identity or CA bundle is reused).
  void clear() {
    for (auto& [key, bucket] : buckets_)
      for (auto& e : bucket.idle) retire(std::move(e.conn));
    buckets_.clear();
    order_.clear();
    idle_total_ = 0;
  }

  std::size_t idle_count(const PoolKey& key) const {
    auto it = buckets_.find(key);
    return it == buckets_.end() ? 0 : it->second.idle.size();
  }
  std::size_t idle_total() const { return idle_total_; }

  /// What becomes of a connection the pool lets go (expired, over max_idle, swept, cleared): by default it
  /// is destroyed; the daemon sets a retirement that ends TLS with close_notify, bounded in time.
  using Retire = std::function<void(std::unique_ptr<Conn>)>;
  void set_retire(Retire r) { retire_ = std::move(r); }

 private:
  void retire(std::unique_ptr<Conn> conn) {
    if (retire_ && conn) retire_(std::move(conn));
  }

  struct Entry {
    std::unique_ptr<Conn> conn;
    Clock::time_point expires;
    std::uint64_t seq;  ///< release order, over all keys
  };
  struct Bucket {
    std::vector<Entry> idle;  ///< oldest first (release appends, acquire takes the back)
    keystore::SslSessionPtr session;
  };

  // The front of order_ names the oldest release still idle, or one no longer idle (skipped): within a
  // bucket, entries are in release order, so a live oldest one is its bucket's front. False when nothing
  // was left to drop (cannot happen while order_ lists every idle entry; the callers' loops rely on it).
  bool drop_oldest() {
    while (!order_.empty()) {
      auto [seq, key] = order_.front();
      order_.pop_front();
      auto it = buckets_.find(key);
      if (it == buckets_.end() || it->second.idle.empty() || it->second.idle.front().seq != seq) continue;
      retire(std::move(it->second.idle.front().conn));
      it->second.idle.erase(it->second.idle.begin());
      --idle_total_;
      if (it->second.idle.empty() && !it->second.session) buckets_.erase(it);
      return true;
    }
    return false;
  }

  void rebuild_order() {
    order_.clear();
    for (const auto& [key, bucket] : buckets_)
      for (const Entry& e : bucket.idle) order_.emplace_back(e.seq, key);
    std::sort(order_.begin(), order_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  }

  std::unordered_map<PoolKey, Bucket, PoolKeyHash> buckets_;
  std::deque<std::pair<std::uint64_t, PoolKey>> order_;
  std::size_t idle_total_ = 0;
  std::size_t max_idle_total_ = std::numeric_limits<std::size_t>::max();
  std::uint64_t next_seq_ = 0;
  Retire retire_;
};

}  // namespace orgproxy::daemon
