// One mutual-TLS connection to an upstream, presenting one identity. Lives in a worker's KeyedIdlePool
// between requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "orgproxy/daemon/error_response.hpp"
#include "orgproxy/daemon/keyed_pool.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "orgproxy/daemon/tls_socket_stream.hpp"

namespace orgproxy::daemon {

struct UpstreamConnection {
  UpstreamConnection(const boost::asio::any_io_executor& ex, SslContextPtr context)
      : ctx(std::move(context)), stream(ex, *ctx) { metrics().upstream_connection_opened(); }
  ~UpstreamConnection() { metrics().upstream_connection_closed(); }

  SslContextPtr ctx;  ///< keeps the SSL_CTX alive as long as the connection
  /// OpenSSL on the socket itself (no BIO pair); beast::get_lowest_layer(stream) is the stream itself,
  /// with beast::tcp_stream's expiry calls.
  TlsSocketStream stream;
  boost::beast::flat_buffer buffer;  ///< upstream read buffer; must be empty for the connection to be pooled
  std::uint64_t requests = 0;
  /// The TLS session this connection last stored under its pool key (a reference): stored again only when
  /// a new ticket replaced it, not copied after every exchange.
  keystore::SslSessionPtr remembered_session;

  /// True when the connection, just done with an exchange, may go back to the pool: nothing unread in our
  /// buffer nor inside OpenSSL (decrypted or still encrypted) and no close_notify received. No system call:
  /// this runs once per request, and the peer's later FIN is checked by reusable() when the connection is
  /// taken out again.
  bool clean_after_exchange() const;

  /// True when the idle connection can carry a new request: clean_after_exchange() and nothing on the
  /// socket (data there is a close_notify or garbage) and no FIN/RST received. Checked with one
  /// non-blocking MSG_PEEK, so a request is never written to a dead pooled connection (C09 a).
  bool reusable() const;
};

using UpstreamPool = KeyedIdlePool<UpstreamConnection>;

/// Outcome of dialling.
struct DialResult {
  std::unique_ptr<UpstreamConnection> conn;
  ErrorCode error = ErrorCode::none;
  std::string detail;  ///< for the log line
  double connect_ms = 0;    ///< TCP connect duration (access log)
  double handshake_ms = 0;  ///< TLS handshake duration (access log, handshake metrics)
};

/// Resolves, connects (upstream.connect_timeout) and handshakes (upstream.handshake_timeout) a new
/// connection for `identity` to `up`: SNI = up.sni (none for IP literals), certificate verified against
/// up.verify_name (SSL_set1_host / IP), the TLS session of exactly `key` offered for resumption.
/// Errors: upstream_connect, upstream_timeout, upstream_tls, identity_unavailable (token failing).
/// Never throws across the coroutine boundary.
boost::asio::awaitable<DialResult> dial_upstream(const Runtime& rt, const UpstreamState& up,
                                                 const keystore::Identity& identity, UpstreamPool& pool,
                                                 const PoolKey& key);

/// After a complete exchange: keeps the connection's TLS session under exactly `key` for the next
/// connection of that key (also when this connection is not reused: an upstream closing after each
/// request still gets resumptions).
void remember_session(UpstreamPool& pool, const PoolKey& key, UpstreamConnection& conn);

/// After a complete response on a keep-alive connection: returns it to `pool` (expiring after the
/// upstream's idle_timeout). Drops it when not reusable.
void release_upstream(UpstreamPool& pool, const PoolKey& key, std::unique_ptr<UpstreamConnection> conn,
                      const config::Upstream& up);

/// How long a retired connection may take to end its TLS session cleanly before its socket is closed.
inline constexpr std::chrono::milliseconds kCloseNotifyBudget{1000};

/// Ends a connection the pool lets go (idle expiry, eviction, reload, shutdown): sends TLS close_notify and
/// waits for the upstream's (RFC 8446 §6.1) at most kCloseNotifyBudget, in the background on the
/// connection's executor, then closes the socket. A connection whose socket is already closed, or whose
/// peer already ended TLS, is simply destroyed. `on_closed` (optional) runs once the connection is gone,
/// on its executor (the worker counts retiring connections so a graceful shutdown waits for them). Never
/// throws.
void retire_upstream(std::unique_ptr<UpstreamConnection> conn, std::function<void()> on_closed = {});

}  // namespace orgproxy::daemon
