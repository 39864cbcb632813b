#include "l4_upstream.hpp"

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include "async_util.hpp"
#include "dns.hpp"
#include "l4_deadline.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "starttls.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using config::ListenerMode;

namespace {

// RFC 5321 §4.1.3 address literal of our end of the upstream connection, for EHLO.
std::string ehlo_name(const tcp::socket& s) {
  error_code ec;
  const auto a = s.local_endpoint(ec).address();
  if (ec) return "[127.0.0.1]";
  return a.is_v6() ? "[IPv6:" + a.to_string() + "]" : "[" + a.to_string() + "]";
}

// SNI, the name the server certificate must carry, and a session of exactly this key to resume.
bool prepare_client_ssl(SSL* ssl, const UpstreamState& up, UpstreamPool& pool, const PoolKey& key) {
  if (!up.sni.empty()) SSL_set_tlsext_host_name(ssl, up.sni.c_str());
  if (up.verify_is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), up.verify_name.c_str());
  } else {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, up.verify_name.c_str());
  }
  // A copy: OpenSSL marks the session of a connection that ends without close_notify as not resumable.
  if (SSL_SESSION* session = pool.session(key)) {
    keystore::SslSessionPtr copy(SSL_SESSION_dup(session));
    return copy && SSL_set_session(ssl, copy.get()) == 1;
  }
  return false;
}

struct Attempt {
  L4Upstream result;
  bool retry_without_session = false;
};

asio::awaitable<Attempt> attempt(ListenerMode mode, const UpstreamState& up, const keystore::Identity& identity,
                                 SslContextPtr ctx, UpstreamPool& pool, const PoolKey& key) {
  const config::Upstream& u = *up.upstream;
  Attempt a;
  L4Upstream& r = a.result;
  auto fail = [&](ErrorCode code, std::string detail) {
    r.error = code;
    r.detail = std::move(detail);
    r.tls.reset();
    return std::move(a);
  };
  auto ex = co_await asio::this_coro::executor;
  tcp::socket socket(ex);
  {
    // The same dial as HTTP forwarding: the egress proxy when configured, else every address in turn.
    beast::tcp_stream stream(ex);
    const auto started = std::chrono::steady_clock::now();
    ConnectOutcome c = co_await connect_upstream(stream, u.host, up.port_text, u.connect_timeout,
                                                 up.proxy ? &*up.proxy : nullptr);
    r.connect_ms = ms_since(started);
    if (c.ec)
      co_return fail(c.ec == beast::error::timeout ? ErrorCode::upstream_timeout : ErrorCode::upstream_connect,
                     std::move(c.detail));
    socket = stream.release_socket();
  }

  // The plaintext dialogue: the client is not greeted yet, so none of its bytes go up in clear.
  if (mode != ListenerMode::tunnel) {
    L4Deadline deadline(ex, u.handshake_timeout, [&] {
      error_code ignored;
      socket.close(ignored);
    });
    // No co_await inside a conditional expression: GCC 12 miscompiles the temporaries of that form.
    MailPhase phase;
    if (mode == ListenerMode::smtp_starttls)
      phase = co_await smtp_before_tls(socket, ehlo_name(socket), r.greeting);
    else
      phase = co_await imap_before_tls(socket);
    if (deadline.expired())
      co_return fail(ErrorCode::upstream_timeout, "upstream dialogue before STARTTLS: " + phase.detail);
    if (phase.error != ErrorCode::none) co_return fail(phase.error, phase.detail);
    r.discarded = phase.discarded;
    // Logged at once, not with the connection's end: it is a security event of its own.
    if (r.discarded > 0)
      spdlog::warn("upstream {} tenant {}: {} byte(s) sent after its STARTTLS answer and before the handshake "
                   "were discarded (STARTTLS injection attempt?)",
                   u.name, identity.tenant_id(), r.discarded);
  }

  r.tls = std::make_unique<TlsPipe>(std::move(socket), std::move(ctx));
  TlsPipe& tls = *r.tls;
  const bool offered = prepare_client_ssl(tls.ssl(), up, pool, key);
  L4Deadline deadline(ex, u.handshake_timeout, [&tls] { tls.abort(); });
  const auto started = std::chrono::steady_clock::now();
  const error_code hec = co_await tls.handshake();
  r.handshake_ms = ms_since(started);
  if (hec) {
    pool.forget_session(key);
    const long verify = SSL_get_verify_result(tls.ssl());
    const ErrorCode code = deadline.expired()    ? ErrorCode::upstream_timeout
                           : !identity.usable()  ? ErrorCode::identity_unavailable
                                                 : ErrorCode::upstream_tls;
    metrics().observe_handshake(u.name, code, r.handshake_ms / 1000.0);
    std::string d = "TLS handshake with " + up.authority + ": " + hec.message();
    if (verify != X509_V_OK) d += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
    a.retry_without_session = code == ErrorCode::upstream_tls && offered && verify == X509_V_OK;
    co_return fail(code, d);
  }
  metrics().observe_handshake(u.name, ErrorCode::none, r.handshake_ms / 1000.0);
  if (mode != ListenerMode::tunnel) {
    deadline.extend(u.handshake_timeout);
    MailPhase phase;
    if (mode == ListenerMode::smtp_starttls)
      phase = co_await smtp_after_tls(tls, ehlo_name(tls.socket()));
    else
      phase = co_await imap_after_tls(tls, r.greeting);
    if (deadline.expired()) co_return fail(ErrorCode::upstream_timeout, "capabilities inside TLS: " + phase.detail);
    if (phase.error != ErrorCode::none) co_return fail(phase.error, phase.detail);
  }
  spdlog::debug("upstream {} tenant {}: {} up, session {}", u.name, identity.tenant_id(), SSL_get_version(tls.ssl()),
                SSL_session_reused(tls.ssl()) ? "resumed" : "new");
  co_return a;
}

}  // namespace

asio::awaitable<L4Upstream> open_l4_upstream(ListenerMode mode, const UpstreamState& up,
                                             const keystore::Identity& identity, SslContextPtr ctx, UpstreamPool& pool,
                                             const PoolKey& key) {
  Attempt first = co_await attempt(mode, up, identity, ctx, pool, key);
  if (!first.retry_without_session) co_return std::move(first.result);
  // Some servers fail the handshake instead of refusing a resumption; nothing of the client's is sent yet.
  spdlog::info("upstream {} tenant {}: handshake offering a stored session failed ({}); retrying without it",
               up.upstream->name, identity.tenant_id(), first.result.detail);
  Attempt second = co_await attempt(mode, up, identity, std::move(ctx), pool, key);
  co_return std::move(second.result);
}

}  // namespace orgproxy::daemon
