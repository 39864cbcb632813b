#include "orgproxy/daemon/upstream_connection.hpp"

#include "async_util.hpp"
#include "dns.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include "orgproxy/keystore/shared_tls.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

bool UpstreamConnection::clean_after_exchange() const {
  if (buffer.size() != 0) return false;
  // Bytes OpenSSL read ahead but did not process yet count too (e.g. a close_notify read along with the
  // last record).
  if (stream.has_buffered_input() || (SSL_get_shutdown(stream.native_handle()) & SSL_RECEIVED_SHUTDOWN))
    return false;
  return stream.socket().is_open();
}

bool UpstreamConnection::reusable() const {
  if (!clean_after_exchange()) return false;
  const int fd = const_cast<UpstreamConnection&>(*this).stream.socket().native_handle();
  char probe;
  ssize_t n = ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;  // FIN: the upstream closed while idle
  if (n > 0) return false;   // unsolicited bytes (close_notify alert, garbage): not a clean idle connection
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

asio::awaitable<DialResult> dial_upstream(const Runtime& rt, const UpstreamState& up,
                                          const keystore::Identity& identity, UpstreamPool& pool,
                                          const PoolKey& key) {
  DialResult r;
  const config::Upstream& u = *up.upstream;
  std::string error;
  // One context per upstream for every identity; the identity is set on each connection below. Isolation
  // holds because the context stores no session (NO_INTERNAL_STORE): the only session ever offered is the
  // one the pool keeps under exactly `key`.
  SslContextPtr ctx = rt.tls_contexts().get_shared(u, error);
  if (!ctx) {
    r.error = identity.usable() ? ErrorCode::upstream_tls : ErrorCode::identity_unavailable;
    r.detail = std::move(error);
    co_return r;
  }
  auto ex = co_await asio::this_coro::executor;

  // A refused resumption must not cost the request (some servers fail the handshake instead of falling
  // back to a full one): nothing of the request is written yet, so one fresh attempt without the session.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto conn = std::make_unique<UpstreamConnection>(ex, ctx);
    // Connected (and tunnelled) with beast::tcp_stream's timeouts, then the socket goes to the TLS stream.
    beast::tcp_stream tcp_layer(ex);
    const auto connect_started = std::chrono::steady_clock::now();
    ConnectOutcome c = co_await connect_upstream(tcp_layer, u.host, up.port_text, u.connect_timeout,
                                                 up.proxy ? &*up.proxy : nullptr);
    r.connect_ms = ms_since(connect_started);
    if (c.ec) {
      r.error = c.ec == beast::error::timeout ? ErrorCode::upstream_timeout : ErrorCode::upstream_connect;
      r.detail = std::move(c.detail);
      metrics().observe_handshake(u.name, r.error, 0);
      co_return r;
    }

    conn->stream.attach(tcp_layer.release_socket());
    SSL* ssl = conn->stream.native_handle();
    if (std::string why = keystore::present_identity(
            ssl, identity, u.tls_min == config::TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
        !why.empty()) {
      r.error = identity.usable() ? ErrorCode::upstream_tls : ErrorCode::identity_unavailable;
      r.detail = "TLS to upstream " + u.name + ": " + why;
      co_return r;
    }
    if (!up.sni.empty()) SSL_set_tlsext_host_name(ssl, up.sni.c_str());
    if (up.verify_is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), up.verify_name.c_str());
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl, up.verify_name.c_str());
    }
    // Resume only a session made under exactly this (tenant, identity, upstream). A copy is offered:
    // OpenSSL marks the session object of a connection that ends without close_notify as not resumable,
    // which would spoil the stored one for every later connection of the key.
    bool offered = false;
    if (SSL_SESSION* session = pool.session(key)) {
      keystore::SslSessionPtr copy(SSL_SESSION_dup(session));
      offered = copy && SSL_set_session(ssl, copy.get()) == 1;
    }

    conn->stream.expires_after(u.handshake_timeout);
    const auto handshake_started = std::chrono::steady_clock::now();
    auto [hec] = co_await conn->stream.async_handshake(nothrow);
    r.handshake_ms = ms_since(handshake_started);
    if (!hec) {
      conn->stream.expires_never();
      metrics().observe_handshake(u.name, ErrorCode::none, r.handshake_ms / 1000.0);
      spdlog::debug("upstream {} tenant {}: {} handshake done, session {}", u.name, identity.tenant_id(),
                    SSL_get_version(ssl), SSL_session_reused(ssl) ? "resumed" : "new");
      r.conn = std::move(conn);
      co_return r;
    }
    pool.forget_session(key);
    long verify = SSL_get_verify_result(ssl);
    r.detail = "TLS handshake with " + up.authority + ": " + hec.message();
    if (verify != X509_V_OK) r.detail += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
    if (hec == beast::error::timeout) {
      r.error = ErrorCode::upstream_timeout;
    } else if (!identity.usable()) {
      r.error = ErrorCode::identity_unavailable;
    } else {
      r.error = ErrorCode::upstream_tls;
      if (offered && verify == X509_V_OK) {
        spdlog::info("upstream {} tenant {}: handshake offering a stored session failed ({}); retrying without it",
                     u.name, identity.tenant_id(), hec.message());
        metrics().observe_handshake(u.name, r.error, r.handshake_ms / 1000.0);
        continue;
      }
    }
    metrics().observe_handshake(u.name, r.error, r.handshake_ms / 1000.0);
    co_return r;
  }
  co_return r;
}

void remember_session(UpstreamPool& pool, const PoolKey& key, UpstreamConnection& conn) {
  // Taken after a complete exchange, not right after the handshake: TLS 1.3 tickets arrive after it.
  SSL* ssl = conn.stream.native_handle();
  // Stored as a copy, for the same reason as above (the live connection may still end uncleanly).
  // Copied once per session object (a new TLS 1.3 ticket is a new object), not after every exchange.
  SSL_SESSION* s = SSL_get0_session(ssl);
  if (s && s != conn.remembered_session.get() && SSL_SESSION_is_resumable(s)) {
    keystore::SslSessionPtr copy(SSL_SESSION_dup(s));
    if (copy) {
      pool.store_session(key, std::move(copy));
      SSL_SESSION_up_ref(s);
      conn.remembered_session.reset(s);
    }
  }
}

void release_upstream(UpstreamPool& pool, const PoolKey& key, std::unique_ptr<UpstreamConnection> conn,
                      const config::Upstream& up) {
  // The FIN check (a system call) is left to the next acquire, which must make it anyway.
  if (!conn || !conn->clean_after_exchange()) return;
  conn->stream.expires_never();
  // The read buffer (a TLS record's worth while in use) and OpenSSL's record buffers are given back while
  // idle: thousands of pooled connections would otherwise hold 16 KB + 34 KB each for nothing.
  conn->buffer.shrink_to_fit();
  conn->stream.release_buffers();
  pool.release(key, std::move(conn), UpstreamPool::Clock::now() + up.idle_timeout, up.max_idle_per_key);
}

namespace {
asio::awaitable<void> close_cleanly(std::shared_ptr<UpstreamConnection> conn, std::function<void()> on_closed) {
  conn->stream.expires_after(kCloseNotifyBudget);
  // Either outcome ends the connection: the peer's close_notify, its FIN, a reset or the budget.
  auto [ec] = co_await conn->stream.async_shutdown(nothrow);
  if (ec && ec != asio::error::eof && ec != asio::ssl::error::stream_truncated && ec != beast::error::timeout)
    spdlog::debug("upstream TLS close: {}", ec.message());
  boost::system::error_code ignored;
  conn->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  conn->stream.close();
  conn.reset();
  if (on_closed) on_closed();
}
}  // namespace

void retire_upstream(std::unique_ptr<UpstreamConnection> conn, std::function<void()> on_closed) {
  if (!conn) return;
  if (!conn->stream.socket().is_open() ||
      (SSL_get_shutdown(conn->stream.native_handle()) & (SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN))) {
    conn.reset();
    if (on_closed) on_closed();
    return;
  }
  auto ex = conn->stream.get_executor();
  asio::co_spawn(ex, close_cleanly(std::shared_ptr<UpstreamConnection>(std::move(conn)), std::move(on_closed)),
                 asio::detached);
}

}  // namespace orgproxy::daemon
