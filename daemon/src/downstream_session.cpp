#include "orgproxy/daemon/downstream_session.hpp"

#include <chrono>
#include <limits>
#include <optional>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "exchange.hpp"
#include "orgproxy/daemon/http_rules.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/request_id.hpp"
#include "read_head.hpp"
#include "vihf_gate.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {


// Keeps the session visible to Worker::begin_shutdown while it lives.
class SessionRegistration {
 public:
  SessionRegistration(Worker& w, beast::tcp_stream& s) : worker_(w), it_(w.register_session(s)) {}
  ~SessionRegistration() { worker_.unregister_session(it_); }
  void idle(bool v) { it_->idle = v; }

 private:
  Worker& worker_;
  std::list<Worker::SessionEntry>::iterator it_;
};

std::string_view method_text(const RequestParser& req) {
  return req.get().method_string();
}

// Answers orgproxy's own error and logs it. `keep` is honoured only if the request was fully read.
asio::awaitable<bool> answer_error(Exchange& x, ErrorCode code, std::string_view detail, bool keep) {
  const bool soap = is_soap12(x.req.get()[http::field::content_type]);
  keep = keep && x.client_keep_alive && x.req.is_done() && !x.worker.stopping();
  auto res = make_error_response({code, x.request_id, detail, soap, false, keep, x.client_version});
  x.record.status = res.result_int();
  x.record.error = code;
  spdlog::warn("request {} listener {} tenant {} upstream {}: {} {}: {}", x.request_id, x.listener.name,
               x.record.tenant.empty() ? "-" : x.record.tenant, x.record.upstream.empty() ? "-" : x.record.upstream,
               x.record.status, to_string(code), detail);
  x.down.expires_after(x.listener.idle_timeout);
  auto [ec, n] = co_await http::async_write(x.down, res, nothrow);
  co_return keep && !ec;
}

// Answers a head that could not be parsed (no parser state to consult) and closes.
asio::awaitable<void> answer_head_error(DownstreamStream& down, const config::Listener& l, ErrorCode code,
                                        std::string_view request_id, std::string_view reason) {
  auto res = make_error_response({code, request_id, reason, false, false, false, 11});
  spdlog::warn("request {} listener {}: {} {}: {}", request_id, l.name, res.result_int(), to_string(code), reason);
  AccessRecord rec;
  rec.request_id = request_id;
  rec.listener = l.name;
  rec.status = res.result_int();
  rec.error = code;
  log_access(rec);
  metrics().observe_request(nullptr, rec);
  down.expires_after(l.idle_timeout);
  co_await http::async_write(down, res, nothrow);
}

// Selection, routing, limits, identity; then forward. Returns whether the connection may be reused.
asio::awaitable<bool> handle_request(Exchange& x, const TenantSelector& selector) {
  auto& head = x.req.get();

  if (const char* why = check_request_framing(head, head.version()); *why)
    co_return co_await answer_error(x, ErrorCode::bad_request, why, false);

  const char* target_reason = "";
  auto parts = check_target(head.target(), &target_reason);
  if (!parts) co_return co_await answer_error(x, ErrorCode::bad_request, target_reason, false);
  x.record_path.assign(parts->path);
  x.record.path = x.record_path;

  std::string_view host_name;
  if (auto host_it = head.find(http::field::host); host_it != head.end()) {
    auto hp = parse_host(host_it->value());
    if (!hp) co_return co_await answer_error(x, ErrorCode::bad_request, "malformed Host", false);
    host_name = hp->host;
  }

  VihfRead vihf = co_await read_vihf(x, selector.vihf_enabled());
  if (vihf.abort) co_return false;
  if (vihf.error != ErrorCode::none) co_return co_await answer_error(x, vihf.error, vihf.detail, false);

  Selection sel = selector.select({nullptr, parts->path, x.source_tenant,
                                   x.vihf ? std::string_view(x.vihf->structure_id) : std::string_view{},
                                   x.cert_tenant.tenant, x.cert_tenant.conflict, &head});
  if (sel.error != ErrorCode::none) co_return co_await answer_error(x, sel.error, sel.reason, true);
  x.record.tenant = sel.tenant_id;  // a view into the request: valid until the head is rewritten below
  const TenantState* tenant = x.rt->find_tenant(sel.tenant_id);
  if (!tenant) co_return co_await answer_error(x, ErrorCode::unknown_tenant, "tenant is not configured", true);
  x.record.tenant = tenant->tenant->id;  // the snapshot's copy outlives the rewrite
  if (std::string why; (x.listener.vihf_check || selector.vihf_enabled()) && check_vihf(x, *tenant, why) != ErrorCode::none)
    co_return co_await answer_error(x, ErrorCode::vihf_mismatch, why, false);

  // Authorization after selection (DESIGN.md "Client"): a forged selector reaches only allowed tenants.
  ClientDecision client = authorize_client(x.rt->config().clients, *x.peer, head, x.record.tenant, {}, x.peer_cert);
  if (client.client) x.record.client = client.client->name;
  if (!client.allowed) co_return co_await answer_error(x, ErrorCode::client_not_allowed, client.reason, true);
  x.strip_authorization = client.used_bearer;
  if (client.client) {
    ClientLimiter& limits = x.rt->client_limits();
    if (x.counted->client != client.client || x.counted->rt != x.rt) {
      x.counted->release();
      if (!limits.open_connection(*client.client))
        co_return co_await answer_error(x, ErrorCode::rate_limited, "client over its max_connections", false);
      x.counted->rt = x.rt;
      x.counted->client = client.client;
    }
    auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    if (!limits.admit_request(*client.client, now_ns))
      co_return co_await answer_error(x, ErrorCode::rate_limited, "client over its request rate", true);
  }

  const config::Route* route = x.rt->config().match_route(sel.route_path, host_name);
  const UpstreamState* up = x.rt->route_upstream(route);
  if (!route || !up) co_return co_await answer_error(x, ErrorCode::no_route, "no route matches the path", true);
  x.upstream = up;
  x.record.upstream = up->upstream->name;
  if (client.client && !client.client->allows_upstream(up->upstream->name))
    co_return co_await answer_error(x, ErrorCode::client_not_allowed, "client may not reach this upstream", true);

  // Body limit from the headers alone (C10c): refused before a byte of body is read or sent.
  if (auto length = x.req.content_length(); length && *length > route->max_body_bytes)
    co_return co_await answer_error(x, ErrorCode::request_too_large, "Content-Length over the route's max_body",
                                    false);
  x.req.body_limit(route->max_body_bytes);

  const config::Purpose purpose = up->upstream->purpose;
  IdentityPick pick =
      pick_identity(tenant->identities[purpose_index(purpose)], std::chrono::system_clock::now());
  if (pick.error == ErrorCode::identity_missing) {
    std::string why = "tenant has no identity of purpose " + std::string(config::to_string(purpose));
    co_return co_await answer_error(x, pick.error, why, true);
  }
  if (pick.error != ErrorCode::none) {
    std::string why = "no usable identity of purpose " + std::string(config::to_string(purpose));
    co_return co_await answer_error(x, pick.error, why, true);
  }
  x.identity = pick.identity;
  map_target_into(x.target, up->upstream->base_path, route->prefix, sel.route_path, *parts);

  // Expect: 100-continue (C04): answered in forward(), once the upstream had its say (or a second passed).
  x.expect_continue = !x.req.is_done() && x.client_version >= 11 &&
                      beast::iequals(trim_ows(head[http::field::expect]), "100-continue");

  ForwardOutcome fo = co_await forward(x);
  if (fo.error != ErrorCode::none && !fo.response_started)
    co_return co_await answer_error(x, fo.error, fo.detail, fo.keep_downstream);
  if (fo.error != ErrorCode::none || !fo.detail.empty()) {
    x.record.error = fo.error;
    spdlog::warn("request {} listener {} tenant {} upstream {}: {} after the response started: {}", x.request_id,
                 x.listener.name, x.record.tenant, x.record.upstream, to_string(fo.error), fo.detail);
  }
  co_return fo.keep_downstream;
}

}  // namespace

asio::awaitable<void> run_downstream_session(Worker& worker, ListenerSlot& slot, asio::ip::tcp::socket socket) {
  std::shared_ptr<const Runtime> rt = worker.runtime();
  // The listener's TLS context is the one of the snapshot current at accept; the connection keeps it.
  const int accept_index = rt->listener_index(slot.listener.name);
  std::shared_ptr<asio::ssl::context> tls_context;
  const config::Listener* accepted_on = &slot.listener;
  if (accept_index >= 0) {
    tls_context = rt->listener_tls(static_cast<std::size_t>(accept_index));
    accepted_on = &rt->config().listeners[static_cast<std::size_t>(accept_index)];
  }
  DownstreamStream down(std::move(socket), tls_context.get());
  beast::flat_buffer buffer;
  auto relay = std::make_unique<char[]>(kRelayBufferBytes);
  SessionRegistration registration(worker, down.tcp());
  std::string record_method, record_path, upstream_target;
  std::string wire;                    // message heads serialized for one-write exchanges (forward.cpp)
  beast::flat_buffer upstream_read_buffer;  // lent to the upstream connection of each request
  // The fields of each request head and of each upstream response head: no malloc per header field.
  // Both live in the session's coroutine frame; each is reset before a head is parsed into it.
  HeadArena request_arena;
  HeadArena response_arena;
  std::string given_request_id;  // the client's X-Request-Id, copied: the head is rewritten before forwarding
  boost::system::error_code peer_ec;
  const PeerAddress peer = PeerAddress::from(down.socket().remote_endpoint(peer_ec).address());
  std::string_view source_tenant_for_peer;
  ClientCertTenant cert_tenant_for_peer;
  CountedClient counted;
  std::optional<PeerCertificate> peer_cert;
  if (down.tls()) {
    TlsAccept accepted = co_await accept_tls(down, *accepted_on);
    if (!accepted.ok) {
      down.close();
      co_return;
    }
    peer_cert = std::move(accepted.cert);
  }

  // The listener settings to use follow reloads; cached per snapshot generation, not looked up per request.
  std::uint64_t cached_generation = 0;
  const config::Listener* listener = &slot.listener;
  const TenantSelector* selector = &slot.selector;

  // After an answer that closes the connection while the client may still be sending (a refused body),
  // closing at once could turn into a reset that destroys the answer before the client reads it
  // (RFC 9112 §9.6): half-close, then drain a bounded amount for a short while.
  bool linger = false;
  bool first_request = true;
  // A reload shows as a new generation; requests after it run on the new snapshot, while the one in
  // flight keeps `rt` (reassigned only between requests).
  auto follow_reload = [&] {
    if (worker.runtime_generation() != rt->generation()) rt = worker.runtime();
    if (rt->generation() == cached_generation) return;
    cached_generation = rt->generation();
    int index = rt->listener_index(slot.listener.name);
    listener = index >= 0 ? &rt->config().listeners[static_cast<std::size_t>(index)] : &slot.listener;
    selector = index >= 0 ? &rt->selector(static_cast<std::size_t>(index)) : &slot.selector;
    // The peer does not change during a connection: its `source` tenant is matched once per snapshot.
    source_tenant_for_peer = selector->source_enabled() ? source_tenant(listener->source_tenants, peer) : "";
    cert_tenant_for_peer = selector->client_cert_enabled()
                               ? client_cert_tenant(listener->client_cert_tenants, peer_cert ? &*peer_cert : nullptr)
                               : ClientCertTenant{};
  };
  while (!worker.stopping()) {
    follow_reload();

    // The previous request's parser is gone (it lives in this loop's scope): its arena starts afresh.
    request_arena.reset();
    RequestParser req{std::piecewise_construct, std::tuple<>{}, std::make_tuple(request_arena.allocator())};
    req.header_limit(static_cast<std::uint32_t>(listener->max_header_bytes + 4));
    // Beast's default (1 MB) would refuse large Content-Lengths while parsing the head, as a framing
    // error; the route's own limit is applied once the route is known (413, C10).
    req.body_limit(std::numeric_limits<std::uint64_t>::max());
    registration.idle(buffer.size() == 0);
    // The first head has no idle period before it: the whole of it, first byte included, must arrive within
    // header_timeout (SCHEMA), else a silent connection would hold a slot for idle_timeout. Between
    // keep-alive requests, idle_timeout is the wait for the next first byte.
    HeadRead hr = co_await read_head(down, buffer, req, listener->max_header_bytes, listener->max_header_count,
                                     listener->idle_timeout, listener->header_timeout, first_request);
    first_request = false;
    registration.idle(false);
    // A keep-alive connection may wait in read_head across a reload: the request that just arrived runs on
    // the snapshot current now (new certificates, tenants, routes), not on the one of the previous request.
    // The head itself was read under the previous snapshot's listener limits.
    if (!hr.ec) follow_reload();
    const auto started = std::chrono::steady_clock::now();
    RequestId id = worker.next_request_id();

    linger = true;
    if (hr.ec == beast::error::timeout && hr.got_bytes) {  // a head started and stalled (slowloris)
      co_await answer_head_error(down, *listener, ErrorCode::header_timeout, id.view(),
                                 "request head not complete within header_timeout");
      break;
    }
    if (hr.ec) {
      linger = false;
      break;
    }  // EOF, reset, idle deadline, silence before a first byte, shutdown wake-up: close quietly
    if (hr.status == HeadScan::Status::too_large) {
      co_await answer_head_error(down, *listener, ErrorCode::headers_too_large, id.view(), hr.reason);
      break;
    }
    if (hr.status == HeadScan::Status::malformed) {
      co_await answer_head_error(down, *listener, ErrorCode::bad_request, id.view(), hr.reason);
      break;
    }
    if (hr.parse_ec) {
      co_await answer_head_error(down, *listener, ErrorCode::bad_request, id.view(),
                                 "request head: " + hr.parse_ec.message());
      break;
    }

    const std::string_view request_id = adopt_request_id(req.get()["X-Request-Id"], given_request_id, id.view());
    AccessRecord record;
    record.request_id = request_id;
    record.listener = listener->name;
    record_method.assign(method_text(req));
    record.method = record_method;
    Exchange x{worker,
               rt,
               *listener,
               down,
               buffer,
               req,
               relay.get(),
               request_id,
               record,
               record_method,
               record_path,
               upstream_target,
               selector->selection_header(),
               req.get().version(),
               req.keep_alive(),
               req.get().method() == http::verb::head};
    x.peer = &peer;
    x.counted = &counted;
    x.source_tenant = source_tenant_for_peer;
    x.wire = &wire;
    x.upstream_read_buffer = &upstream_read_buffer;
    x.response_arena = &response_arena;
    x.peer_cert = peer_cert ? &*peer_cert : nullptr;
    x.cert_tenant = cert_tenant_for_peer;
    bool keep = co_await handle_request(x, *selector);
    record.duration_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    log_access(record);
    if (x.vihf) log_vihf_audit(record, *x.vihf, x.vihf_issuer_check);
    metrics().observe_request(rt.get(), record);
    if (!keep) {
      linger = !req.is_done();
      break;
    }
    linger = false;
  }
  if (auto* tls = down.tls()) {
    // close_notify (RFC 8446 §6.1), so the client can tell our close from a truncation; bounded wait.
    down.expires_after(std::chrono::seconds(1));
    co_await tls->async_shutdown(nothrow);
  }
  boost::system::error_code ec;
  down.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (linger && !ec) {
    std::size_t drained = 0;
    down.expires_after(std::chrono::seconds(1));
    while (drained < 1024 * 1024) {
      // Raw bytes, TLS or not: only their arrival matters, and TLS is shut down by now.
      auto [rec, n] = co_await down.tcp().async_read_some(asio::buffer(relay.get(), kRelayBufferBytes), nothrow);
      if (rec) break;
      drained += n;
    }
  }
  down.close();
}

}  // namespace orgproxy::daemon
