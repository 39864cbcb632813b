// TLS client contexts, one per upstream shared by every identity (get_shared: the identity is set per
// connection; the HTTP path), or per (identity, upstream) (get: the L4 relays), created lazily, shared by
// all worker threads (an SSL_CTX is thread-safe once built), evicted when no connection has used them for
// a while. Only consulted when a NEW upstream connection is
// dialled (a TLS handshake costs milliseconds), so its mutex is off the pooled hot path.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "orgproxy/config/config.hpp"
#include "orgproxy/keystore/keystore.hpp"
#include "orgproxy/keystore/shared_tls.hpp"

namespace orgproxy::daemon {

using SslContextPtr = std::shared_ptr<boost::asio::ssl::context>;

class TlsContextCache {
 public:
  /// `keystore` builds the contexts; it must outlive the cache. nullptr is allowed for tests that never
  /// call get().
  /// `crl_files` (PEM CRLs, config `crl_files`) are checked on every upstream server chain.
  explicit TlsContextCache(std::shared_ptr<keystore::Keystore> keystore, std::vector<std::string> crl_files = {},
                           std::chrono::seconds evict_after = std::chrono::minutes(5));

  /// The context presenting `identity` to `upstream` (its CA bundle, TLS version bounds). Built on first
  /// use. On failure returns nullptr and sets `error` (names the tenant and upstream; never a PIN).
  SslContextPtr get(const keystore::Identity& identity, const config::Upstream& upstream, std::string& error);

  /// The context shared by every identity sent to `upstream` (its CA bundle, CRLs, TLS version bounds; no
  /// client certificate): the connection gets its identity with keystore::present_identity. Built on first
  /// use; on failure returns nullptr and sets `error`. HTTP upstream connections use this one (DESIGN.md
  /// "TLS client contexts"): 10,000 touched sites then cost one context, not 10,000.
  SslContextPtr get_shared(const config::Upstream& upstream, std::string& error);

  /// Number of contexts currently cached.
  std::size_t size() const;

 private:
  struct Key {
    const void* identity;
    const void* upstream;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return std::hash<const void*>{}(k.identity) * 31 + std::hash<const void*>{}(k.upstream);
    }
  };
  struct Entry {
    SslContextPtr ctx;
    std::chrono::steady_clock::time_point last_used;
  };
  void evict_unused(std::chrono::steady_clock::time_point now);
  keystore::TlsClientOptions options_for(const config::Upstream& upstream) const;
  SslContextPtr insert(const Key& key, keystore::SslCtxPtr raw, std::chrono::steady_clock::time_point now);
  SslContextPtr find(const Key& key, std::chrono::steady_clock::time_point now);

  std::shared_ptr<keystore::Keystore> keystore_;
  std::vector<std::string> crl_files_;
  std::chrono::seconds evict_after_;
  mutable std::mutex mutex_;
  std::unordered_map<Key, Entry, KeyHash> entries_;
  std::chrono::steady_clock::time_point last_sweep_{};
};

}  // namespace orgproxy::daemon
