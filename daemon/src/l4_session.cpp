// One connection of an L4 listener: admission (max_connections), the RIS side's TLS when the listener has
// `tls` (implicit for a tunnel, STARTTLS answered by orgproxy for SMTP/IMAP), client rules (with the
// client's certificate when it presented one), the site's identity, the upstream connection (plaintext
// STARTTLS dialogue first for SMTP/IMAP), the TLS handshake presenting the identity, then the relay. One
// access-log line and one request metric per connection.
#include "orgproxy/daemon/l4_session.hpp"

#include <chrono>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/fields.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include "async_util.hpp"
#include "l4_deadline.hpp"
#include "l4_relay.hpp"
#include "l4_upstream.hpp"
#include "orgproxy/daemon/access_log.hpp"
#include "orgproxy/daemon/authorization.hpp"
#include "orgproxy/daemon/downstream_tls.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/starttls_guard.hpp"
#include "orgproxy/daemon/worker.hpp"
#include "starttls.hpp"
#include "tls_pipe.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using config::ListenerMode;

namespace {


struct Outcome {
  ErrorCode error = ErrorCode::none;
  std::string detail;
  RelayResult relay;
  double connect_ms = 0;
  double handshake_ms = 0;
};

Outcome failure(ErrorCode code, std::string detail) {
  Outcome o;
  o.error = code;
  o.detail = std::move(detail);
  return o;
}

// Releases what admission counted, however the session ends.
struct Admission {
  std::shared_ptr<std::atomic<std::size_t>> listener_open;
  ClientLimiter* limiter = nullptr;
  const config::Client* client = nullptr;
  ~Admission() {
    if (listener_open) listener_open->fetch_sub(1, std::memory_order_relaxed);
    if (limiter && client) limiter->close_connection(*client);
  }
};

// Server-first protocols get a reason before the close (RFC 5321 §3.8 `421`, RFC 3501 §7.1.5 `BYE`).
asio::awaitable<void> tell_client(ClientLink& client, ListenerMode mode, ErrorCode code) {
  std::string line;
  if (mode == ListenerMode::smtp_starttls)
    line = "421 4.7.0 orgproxy: " + std::string(to_string(code)) + ", closing\r\n";
  else if (mode == ListenerMode::imap_starttls)
    line = "* BYE [UNAVAILABLE] orgproxy: " + std::string(to_string(code)) + "\r\n";
  if (line.empty() || !client.is_open()) co_return;
  L4Deadline deadline(client.socket().get_executor(), std::chrono::seconds(5), [&client] { client.abort(); });
  co_await client.write(asio::buffer(line));
}

// A refused client may have sent bytes we never read; closing over them would reset the connection and
// could destroy our answer before it is read (RFC 9293 §3.6.1): FIN first, then drain briefly.
asio::awaitable<void> linger_close(ClientLink& client) {
  if (!client.is_open()) co_return;
  L4Deadline deadline(client.socket().get_executor(), std::chrono::seconds(2), [&client] { client.abort(); });
  co_await client.close_write();
  char sink[4096];
  for (std::size_t drained = 0; drained < 64 * 1024 && client.is_open();) {
    auto [rec, n] = co_await client.read_some(asio::buffer(sink));
    if (rec) break;
    drained += n;
  }
}

// The RIS side's server handshake on `client` (already switched to TLS), within the listener's
// header_timeout as on HTTP listeners; the verified client certificate, when one was presented, in `cert`.
// A handshake that fails is the client's bad_request; one that does not complete in time is a
// header_timeout (the deadline it missed), so a stalled or slow RIS is told apart from a broken one.
asio::awaitable<std::optional<Outcome>> accept_client_tls(ClientLink& client, const config::Listener& l,
                                                          std::optional<PeerCertificate>& cert) {
  L4Deadline deadline(client.socket().get_executor(), l.header_timeout, [&client] { client.abort(); });
  if (auto ec = co_await client.tls()->handshake()) {
    if (deadline.expired())
      co_return failure(ErrorCode::header_timeout, "the client's TLS handshake did not complete within header_timeout");
    co_return failure(ErrorCode::bad_request, "the client's TLS handshake failed: " + ec.message());
  }
  cert = peer_certificate(client.tls()->ssl());
  co_return std::nullopt;
}

// The RIS side before any upstream work, for a listener with `tls`: the server handshake (tunnel), or the
// plaintext STARTTLS dialogue served by orgproxy and then the handshake (SMTP/IMAP).
struct ClientSetup {
  std::optional<Outcome> done;          ///< set when the session ends here (refused, or the client quit)
  std::optional<PeerCertificate> cert;  ///< the RIS's verified certificate, when it presented one
  std::string pending;  ///< TLS optional and plaintext chosen: client bytes to send upstream first
  std::string note;     ///< for the log
  bool greeted = false;  ///< orgproxy greeted the client itself: the upstream's greeting is not relayed
};

asio::awaitable<ClientSetup> set_up_client(ClientLink& client, const config::Listener& l, const SslContextPtr& ctx) {
  ClientSetup s;
  if (l.mode == ListenerMode::tunnel) {
    client.start_tls(ctx);
    s.done = co_await accept_client_tls(client, l, s.cert);
    co_return s;
  }
  ClientPlainPhase phase = co_await serve_client_before_tls(l.mode, client.socket(), l.tls->require_starttls,
                                                            l.idle_timeout);
  s.greeted = true;
  if (phase.refused > 0) s.note = std::to_string(phase.refused) + " command(s) refused before STARTTLS (TLS required)";
  switch (phase.next) {
    case ClientPlainPhase::Next::quit:
      s.done = Outcome{};
      s.done->detail = s.note.empty() ? "the client quit before STARTTLS" : s.note + "; the client quit";
      break;
    case ClientPlainPhase::Next::failed:
      s.done = failure(ErrorCode::bad_request, s.note.empty() ? phase.detail : s.note + "; " + phase.detail);
      break;
    case ClientPlainPhase::Next::plaintext:
      s.pending = std::move(phase.pending);
      s.note = phase.detail;
      break;
    case ClientPlainPhase::Next::tls:
      if (phase.discarded > 0)
        s.note = std::to_string(phase.discarded) +
                 " byte(s) the client pipelined after its STARTTLS were discarded (field case C23)";
      client.start_tls(ctx);
      s.done = co_await accept_client_tls(client, l, s.cert);
      break;
  }
  co_return s;
}

asio::awaitable<Outcome> serve(Worker& worker, const std::shared_ptr<const Runtime>& rt, ListenerSlot& slot,
                               const config::Listener& l, ClientLink& client, bool& greeted) {
  Admission admission;
  admission.listener_open = slot.l4_open;
  if (slot.l4_open && slot.l4_open->fetch_add(1, std::memory_order_relaxed) >= l.max_connections)
    co_return failure(ErrorCode::rate_limited, "listener at its max_connections");
  if (!slot.l4_open) admission.listener_open = nullptr;

  error_code ec;
  const PeerAddress peer = PeerAddress::from(client.socket().remote_endpoint(ec).address());

  // The RIS side first: nothing is opened upstream, with the site's identity, for a client that is not
  // yet TLS, or not yet known by its certificate.
  ClientSetup setup;
  if (const int i = rt->listener_index(l.name); i >= 0 && l.tls) {
    setup = co_await set_up_client(client, l, rt->listener_tls(std::size_t(i)));
    greeted = setup.greeted;
    if (setup.done) co_return std::move(*setup.done);
  }
  const std::optional<PeerCertificate>& cert = setup.cert;
  const std::string& pending = setup.pending;

  ClientDecision decision = authorize_client(rt->config().clients, peer, boost::beast::http::fields{},
                                             l.fixed_tenant, l.upstream, cert ? &*cert : nullptr);
  if (!decision.allowed) co_return failure(ErrorCode::client_not_allowed, decision.reason);
  if (decision.client) {
    if (!decision.client->allows_upstream(l.upstream))
      co_return failure(ErrorCode::client_not_allowed, "client may not reach this upstream");
    if (!rt->client_limits().open_connection(*decision.client))
      co_return failure(ErrorCode::rate_limited, "client over its max_connections");
    admission.limiter = &rt->client_limits();
    admission.client = decision.client;
  }

  const TenantState* tenant = rt->find_tenant(l.fixed_tenant);
  const config::Upstream* u = rt->config().find_upstream(l.upstream);
  if (!tenant || !u) co_return failure(ErrorCode::unknown_tenant, "listener's tenant or upstream is not configured");
  const UpstreamState up = make_upstream_state(*u);
  IdentityPick pick = pick_identity(tenant->identities[purpose_index(u->purpose)], std::chrono::system_clock::now());
  if (pick.error != ErrorCode::none)
    co_return failure(pick.error, std::string(pick.error == ErrorCode::identity_missing ? "tenant has no identity"
                                                                                       : "no usable identity") +
                                      " of purpose " + std::string(config::to_string(u->purpose)));
  std::string why;
  SslContextPtr ctx = rt->tls_contexts().get(*pick.identity, *u, why);
  if (!ctx)
    co_return failure(pick.identity->usable() ? ErrorCode::upstream_tls : ErrorCode::identity_unavailable, why);

  UpstreamPool& pool = worker.pool_for(rt);
  const PoolKey key{tenant->tenant->id, pick.identity, u};
  L4Upstream opened = co_await open_l4_upstream(l.mode, up, *pick.identity, ctx, pool, key);
  Outcome out;
  out.connect_ms = opened.connect_ms;
  out.handshake_ms = opened.handshake_ms;
  out.detail = std::move(setup.note);
  if (opened.error != ErrorCode::none) {
    out.error = opened.error;
    out.detail = std::move(opened.detail);
    co_return out;
  }
  TlsPipe& tls = *opened.tls;
  // A client that orgproxy greeted itself (STARTTLS served here) is not greeted again: after TLS it sends
  // EHLO / CAPABILITY, which the upstream answers.
  if (const std::string& greeting = opened.greeting; !greeting.empty() && !greeted) {
    if (auto wec = co_await client.write(asio::buffer(greeting)))
      co_return failure(ErrorCode::none, "client gone before the greeting: " + wec.message());
  }
  // The upstream link is TLS now: a STARTTLS from the RIS is answered here, never relayed (RFC 3207 §4.2).
  StarttlsGuard guard(l.mode);
  std::string first;
  guard.from_client(pending, first);
  if (!first.empty()) {
    if (auto wec = co_await tls.write(asio::buffer(first)))
      co_return failure(ErrorCode::upstream_protocol, "writing the client's first command upstream: " + wec.message());
  }
  UpstreamFilter filter;
  if (l.mode == ListenerMode::smtp_starttls) filter = SmtpReplyFilter{};
  const bool mail = l.mode != ListenerMode::tunnel;
  out.relay = co_await relay_l4(client, tls, l.idle_timeout, std::move(filter), mail ? &guard : nullptr);
  out.relay.to_upstream += first.size();
  if (guard.cut() > 0) {
    if (!out.detail.empty()) out.detail += "; ";
    out.detail += std::to_string(guard.cut()) + " STARTTLS command(s) inside TLS answered by orgproxy, not relayed";
  }
  // Kept after the relay, not after the handshake: TLS 1.3 tickets arrive later.
  if (worker.pool_accepts(rt)) {
    SSL_SESSION* s = SSL_get0_session(tls.ssl());
    if (s && SSL_SESSION_is_resumable(s))
      if (keystore::SslSessionPtr copy(SSL_SESSION_dup(s)); copy) pool.store_session(key, std::move(copy));
  }
  co_return out;
}

}  // namespace

asio::awaitable<void> run_l4_session(Worker& worker, ListenerSlot& slot, tcp::socket socket) {
  const auto started = std::chrono::steady_clock::now();
  const std::shared_ptr<const Runtime> rt = worker.runtime();
  // The listener as the current snapshot has it (a reload may change its upstream or limits).
  const config::Listener* lp = &slot.listener;
  if (const int i = rt->listener_index(slot.listener.name); i >= 0) lp = &rt->config().listeners[std::size_t(i)];
  const config::Listener& l = *lp;
  const RequestId id = worker.next_request_id();

  ClientLink client(socket);
  bool greeted = false;
  Outcome out = co_await serve(worker, rt, slot, l, client, greeted);
  if (out.error != ErrorCode::none) {
    // bad_request is the client's own fault (a failed handshake, or a plaintext phase that already answered
    // it), or header_timeout (a handshake cut short: the link is closed, and half TLS): no further answer.
    if (out.error != ErrorCode::bad_request && out.error != ErrorCode::header_timeout)
      co_await tell_client(client, l.mode, out.error);
    co_await linger_close(client);
  }
  client.abort();

  AccessRecord rec;
  rec.request_id = id.view();
  rec.listener = l.name;
  rec.tenant = l.fixed_tenant;
  rec.upstream = l.upstream;
  rec.method = l4_method(l.mode);
  rec.status = status_of(out.error);
  rec.error = out.error;
  rec.bytes_in = out.relay.to_upstream;
  rec.bytes_out = out.relay.to_client;
  rec.duration_ms = ms_since(started);
  rec.connect_ms = out.connect_ms;
  rec.handshake_ms = out.handshake_ms;
  log_access(rec);
  metrics().observe_request(rt.get(), rec);

  if (out.error != ErrorCode::none) {
    spdlog::warn("connection {} listener {} tenant {} upstream {}: {}: {}", id.view(), l.name, l.fixed_tenant,
                 l.upstream, to_string(out.error), out.detail);
  } else if (!out.detail.empty()) {
    spdlog::info("connection {} listener {} tenant {} upstream {}: {}", id.view(), l.name, l.fixed_tenant, l.upstream,
                 out.detail);
  }
  if (out.relay.idle_timeout)
    spdlog::info("connection {} listener {}: closed after idle_timeout without a byte either way", id.view(), l.name);
  else if (out.relay.error)
    spdlog::info("connection {} listener {}: ended {}: {}", id.view(), l.name, out.relay.error_where,
                 out.relay.error.message());
  if (out.relay.upstream_truncated)
    spdlog::debug("connection {} listener {}: the upstream closed without close_notify", id.view(), l.name);
}

}  // namespace orgproxy::daemon
