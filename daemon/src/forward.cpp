// Forwarding one request upstream and its response downstream, both streamed through a bounded buffer
// (the shape of Beast's http_relay example): a body of any size never sits in memory whole. A small message
// whole at hand leaves in one write (forward_wire.cpp); a request body in transit takes the full-duplex path
// (forward_stream.cpp).
#include <limits>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "forward_parts.hpp"
#include "orgproxy/daemon/http_rules.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {


// Rewrites the request head for the upstream (C07, C16): hop-by-hop and selection fields removed, one
// framing field of our own, Host = the upstream authority, our request id.
void prepare_upstream_request(Exchange& x) {
  auto& m = x.req.get();
  const bool chunked = m.chunked();
  const auto length = x.req.content_length();
  remove_hop_by_hop(m, x.selection_header);
  if (x.strip_authorization) m.erase(http::field::authorization);
  // The expectation travels on so the upstream can answer 100 or refuse before the body (C04); any other
  // expectation, or one without a body, is dropped.
  if (x.expect_continue)
    m.set(http::field::expect, "100-continue");
  else
    m.erase(http::field::expect);
  m.target(x.target);
  m.version(11);
  m.set(http::field::host, x.upstream->authority);
  m.set("X-Request-Id", x.request_id);
  if (chunked) {
    m.chunked(true);
  } else if (length) {
    m.content_length(*length);  // collapses identical duplicates into one field
  }
}

// A small request body that arrived with the head (a RIS writes head and SOAP body at once) is parsed
// into the relay buffer before anything is sent: head and body then leave in one write (one TLS record,
// one sendmsg) on the half-duplex path, with no concurrent head read to set up. Only for a declared
// length that is wholly buffered and fits the relay buffer; chunked bodies and Expect: 100-continue keep
// the streaming path. Returns the body bytes parsed into x.relay; sets `ec` on a parse error.
std::size_t prefill_buffered_body(Exchange& x, boost::system::error_code& ec) {
  if (x.expect_continue) return 0;
  return take_buffered_body(x.req, x.down_buffer, x.relay, ec);
}

}  // namespace

asio::awaitable<ForwardOutcome> forward(Exchange& x) {
  ForwardOutcome out;
  const config::Upstream& u = *x.upstream->upstream;
  UpstreamPool& pool = x.worker.pool_for(x.rt);
  const PoolKey key{x.identity->tenant_id(), x.identity, &u};

  // 0. A small body already buffered is taken now: head and body then go upstream in one write.
  boost::system::error_code prefill_ec;
  const std::size_t prefilled = prefill_buffered_body(x, prefill_ec);
  if (prefill_ec) {
    client_body_failure(out, prefill_ec);
    co_return out;
  }

  // 1. A pooled connection of exactly this key, checked alive before any byte is written (C09a).
  std::unique_ptr<UpstreamConnection> conn;
  const auto now = UpstreamPool::Clock::now();
  while ((conn = pool.acquire(key, now))) {
    if (conn->reusable()) break;
  }
  x.record.upstream_reused = conn != nullptr;
  if (!conn) {
    DialResult dial = co_await dial_upstream(*x.rt, *x.upstream, *x.identity, pool, key);
    x.record.connect_ms = dial.connect_ms;
    x.record.handshake_ms = dial.handshake_ms;
    if (!dial.conn) {
      out.error = dial.error;
      out.detail = std::move(dial.detail);
      out.keep_downstream = x.req.is_done();
      co_return out;
    }
    conn = std::move(dial.conn);
  }
  auto& upstream_tcp = beast::get_lowest_layer(conn->stream);
  // The request body's pace is counted from here, once the upstream is reached (dialling is not the
  // client's time).
  const BodyPace pace{std::chrono::steady_clock::now(), x.listener.body_timeout,
                      x.listener.body_min_rate};
  // The session's read buffer (grown once to a TLS record) serves this connection until its release.
  if (x.upstream_read_buffer && conn->buffer.size() == 0 && x.upstream_read_buffer->size() == 0)
    swap(conn->buffer, *x.upstream_read_buffer);

  // 2. Request head, then the body streamed while the response head is awaited (full duplex).
  prepare_upstream_request(x);
  std::optional<ResponseParser> res;
  new_response_parser(res, x.is_head, *x.response_arena);
  bool request_complete = true;
  {
    RequestSerializer sr{x.req.get()};
    if (x.req.is_done() || prefilled > 0) {
      StepResult step;
      if (x.req.is_done() && !x.req.get().chunked() && x.wire) {
        // The whole request is at hand: head and body in one buffer, one TLS record, one sendmsg.
        x.wire->clear();
        append_request_head(*x.wire, x.req.get());
        x.wire->append(x.relay, prefilled);
        x.record.bytes_in += prefilled;
        upstream_tcp.expires_after(u.first_byte_timeout);
        auto [wec, wn] = co_await asio::async_write(conn->stream, asio::buffer(*x.wire), nothrow);
        step.write_ec = wec;
      } else {
        step = co_await relay_body(x.down, x.down_buffer, x.req, sr, conn->stream, x.relay, kRelayBufferBytes,
                                   x.listener.idle_timeout, u.first_byte_timeout, x.record.bytes_in, nullptr,
                                   prefilled, &pace);
      }
      if (step.write_ec) {
        out.error = upstream_io_error(step.write_ec);
        out.detail = "writing request upstream: " + step.write_ec.message();
        co_return out;
      }
      if (step.read_ec) {  // the rest of a body begun before forwarding (VIHF gate) did not arrive
        client_body_failure(out, step.read_ec);
        if (step.too_slow) out.detail = "client request body slower than the listener's body_min_rate";
        co_return out;
      }
      HeadRead hr = co_await read_head(conn->stream, conn->buffer, *res, kMaxResponseHeadBytes, kMaxResponseFields,
                                       u.first_byte_timeout, u.first_byte_timeout, false, kUpstreamReadBytes);
      if (head_failed(hr, *res, out)) co_return out;
    } else {
      // No body bytes yet, more to come: the full-duplex streaming path (forward_stream.cpp).
      if (!co_await stream_request(x, *conn, sr, res, pace, out, request_complete)) co_return out;
    }
  }
  conn->requests++;

  // 3. Further heads: 1xx interim answers are dropped, never taken as final (C05a).
  while (res->get().result_int() < 200) {
    new_response_parser(res, x.is_head, *x.response_arena);
    HeadRead hr = co_await read_head(conn->stream, conn->buffer, *res, kMaxResponseHeadBytes, kMaxResponseFields,
                                     u.first_byte_timeout, u.first_byte_timeout, false, kUpstreamReadBytes);
    if (head_failed(hr, *res, out)) co_return out;
  }

  // 4. Response head for the client: hop-by-hop removed, framing of our own.
  auto& msg = res->get();
  const bool body_expected = !res->is_done();
  const bool up_chunked = msg.chunked();
  const auto up_length = res->content_length();
  const bool upstream_keep_alive = res->keep_alive();
  // A small length-delimited answer read whole with its head (the usual SOAP response) is relayed in one
  // write with its head.
  boost::system::error_code whole_ec;
  const std::size_t whole_body =
      body_expected && x.wire ? take_buffered_body(*res, conn->buffer, x.relay, whole_ec) : 0;
  if (whole_ec) {
    out.error = ErrorCode::upstream_protocol;
    out.detail = "reading response body: " + whole_ec.message();
    out.keep_downstream = false;
    co_return out;
  }
  bool keep_down = x.client_keep_alive && !x.worker.stopping();
  remove_hop_by_hop(msg);
  msg.version(x.client_version);
  msg.set("X-Request-Id", x.request_id);
  if (up_length) {
    msg.content_length(*up_length);  // identical duplicates collapsed; differing ones were refused (C01e)
  } else if (body_expected) {
    // Chunked or close-delimited upstream (C06a): never invent a Content-Length.
    if (x.client_version >= 11)
      msg.chunked(true);
    else
      keep_down = false;
  } else if (up_chunked && x.is_head) {
    msg.set(http::field::transfer_encoding, "chunked");  // what a GET would have used
  }
  if (!x.req.is_done()) keep_down = false;  // an early answer: the rest of the request body is not read
  msg.keep_alive(keep_down);
  x.record.status = msg.result_int();

  ResponseSerializer sr{msg};
  if (x.wire && (!body_expected || whole_body > 0)) {
    x.wire->clear();
    append_response_head(*x.wire, msg);
    // One buffer (the body copied after the head): a TLS downstream writes it as one record.
    x.wire->append(x.relay, whole_body);
    x.down.expires_after(x.listener.idle_timeout);
    auto [wec, wn] = co_await asio::async_write(x.down, asio::buffer(*x.wire), nothrow);
    out.response_started = true;
    x.record.bytes_out += whole_body;
    if (wec) {
      out.keep_downstream = false;
      out.detail = "writing response downstream: " + wec.message();
      co_return out;
    }
  } else if (!body_expected) {
    sr.split(true);
    x.down.expires_after(x.listener.idle_timeout);
    auto [wec, wn] = co_await http::async_write_header(x.down, sr, nothrow);
    out.response_started = true;
    if (wec) {
      out.keep_downstream = false;
      out.detail = "writing response downstream: " + wec.message();
      co_return out;
    }
  } else {
    StepResult step = co_await relay_body(conn->stream, conn->buffer, *res, sr, x.down, x.relay, kRelayBufferBytes,
                                          u.first_byte_timeout, x.listener.idle_timeout, x.record.bytes_out);
    out.response_started = step.wrote_any;
    if (step.read_ec) {
      // Truncated upstream answer (C06b/c): the client sees the truncation (connection closed before the
      // declared length or the final chunk); never reported as success.
      out.error = upstream_io_error(step.read_ec);
      out.detail = "reading response body: " + step.read_ec.message();
      out.keep_downstream = false;
      co_return out;
    }
    if (step.write_ec) {
      out.keep_downstream = false;
      out.detail = "writing response downstream: " + step.write_ec.message();
      co_return out;
    }
  }
  out.response_started = true;
  out.keep_downstream = keep_down;

  // 5. Back to the pool only after a complete, keep-alive, length-delimited exchange.
  if (res->is_done() && x.worker.pool_accepts(x.rt)) remember_session(pool, key, *conn);
  if (request_complete && upstream_keep_alive && res->is_done() && !res->need_eof() && x.worker.pool_accepts(x.rt)) {
    if (x.upstream_read_buffer && conn->buffer.size() == 0) swap(conn->buffer, *x.upstream_read_buffer);
    release_upstream(pool, key, std::move(conn), u);
    // A graceful shutdown that began during this exchange has already emptied the pool: what was just
    // released is retired at once (close_notify, counted until closed) instead of lingering until the
    // worker ends and going with a bare FIN.
    if (x.worker.stopping()) pool.clear();
  }
  co_return out;
}

}  // namespace orgproxy::daemon
