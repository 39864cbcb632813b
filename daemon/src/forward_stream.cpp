// The full-duplex streaming path of forward(): a request body still in transit is relayed while the
// response head is read concurrently (the shape of Beast's http_relay example), so an early final answer
// (413, 401) ends the upload, and Expect: 100-continue is honoured (C04).
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/write.hpp>

#include "forward_parts.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// Classifies a failure reading the client's request body (the upstream request is then left incomplete:
// no terminating chunk, connection discarded, so the upstream never sees a complete request).
void client_body_failure(ForwardOutcome& out, const boost::system::error_code& ec) {
  out.request_error = true;
  out.keep_downstream = false;
  if (ec == http::error::body_limit) {
    out.error = ErrorCode::request_too_large;
    out.detail = "request body over the route's max_body";
  } else if (ec == beast::error::timeout || ec == http::error::end_of_stream ||
             ec == http::error::partial_message || ec == asio::error::eof || ec == asio::error::connection_reset) {
    out.error = ErrorCode::none;  // the client went away or stalled: nobody to answer
    out.detail = "client request body: " + ec.message();
  } else {
    out.error = ErrorCode::bad_request;  // bad chunk framing (C02)
    out.detail = "request body framing: " + ec.message();
  }
}

asio::awaitable<bool> stream_request(Exchange& x, UpstreamConnection& conn, RequestSerializer& sr,
                                     std::optional<ResponseParser>& res, const BodyPace& pace, ForwardOutcome& out,
                                     bool& request_complete) {
  const config::Upstream& u = *x.upstream->upstream;
  auto& upstream_tcp = beast::get_lowest_layer(conn.stream);
  // No body bytes yet, more to come: the serializer must stop after the head (need_buffer), not
  // conclude the body (it would emit the last chunk).
  auto& body = x.req.get().body();
  body.data = nullptr;
  body.size = 0;
  body.more = true;
  upstream_tcp.expires_after(u.first_byte_timeout);
  auto [hec, hn] = co_await http::async_write_header(conn.stream, sr, nothrow);
  if (hec) {
    out.error = upstream_io_error(hec);
    out.detail = "writing request head upstream: " + hec.message();
    co_return false;
  }
  HeadWaiter waiter(co_await asio::this_coro::executor);
  // No deadline on the read itself: the upload may legitimately take longer than first_byte_timeout,
  // which counts from the end of the request (enforced below by closing the socket).
  waiter.start(conn.stream, conn.buffer, *res, kMaxResponseHeadBytes, kMaxResponseFields,
               std::chrono::hours(24));
  // Every exit from here on first ends the concurrent read: it references `conn` and `res`.
  auto abandon = [&]() -> asio::awaitable<void> {
    if (!waiter.done) upstream_tcp.close();
    co_await waiter.wait(std::chrono::hours(24));
  };
  bool early_final = false;
  if (x.expect_continue) {
    // C04: the upstream decides within about a second (100, or a final answer such as 413); a silent
    // one gets our own 100 so the client never deadlocks.
    if (co_await waiter.wait(std::chrono::seconds(1))) {
      if (head_failed(waiter.result, *res, out)) co_return false;
      early_final = res->get().result_int() >= 200;
    }
    if (!early_final) {
      x.down.expires_after(x.listener.idle_timeout);
      auto [cec, cn] =
          co_await asio::async_write(x.down, asio::buffer(kContinue.data(), kContinue.size()), nothrow);
      if (cec) {
        co_await abandon();
        out.detail = "writing 100 Continue: " + cec.message();
        co_return false;
      }
    }
  }
  if (!early_final) {
    waiter.cancel_upstream_on_final = &conn.stream;
    waiter.cancel_downstream_on_final = &x.down.tcp();
    StepResult step = co_await relay_body(x.down, x.down_buffer, x.req, sr, conn.stream, x.relay,
                                          kRelayBufferBytes, x.listener.idle_timeout, u.first_byte_timeout,
                                          x.record.bytes_in, &waiter.final_or_failed, 0, &pace);
    waiter.cancel_upstream_on_final = nullptr;
    waiter.cancel_downstream_on_final = nullptr;
    const bool answered_early = waiter.done && !waiter.result.ec && !waiter.result.parse_ec &&
                                waiter.result.status == HeadScan::Status::complete &&
                                res->get().result_int() >= 200;
    if ((step.read_ec || step.write_ec) && answered_early) {
      // Our own cancellation after an early final answer (C04 ii): relay that answer.
      step = {};
      step.stopped = true;
    }
    if (step.read_ec || step.write_ec) {
      co_await abandon();
      if (step.read_ec) {
        client_body_failure(out, step.read_ec);
        if (step.too_slow) out.detail = "client request body slower than the listener's body_min_rate";
      } else {
        // Bytes may have reached the upstream: never replayed (C09b).
        out.error = upstream_io_error(step.write_ec);
        out.detail = "writing request upstream: " + step.write_ec.message();
      }
      co_return false;
    }
    request_complete = !step.stopped;
  } else {
    request_complete = false;
  }
  if (!co_await waiter.wait(u.first_byte_timeout)) {
    co_await abandon();
    out.error = ErrorCode::upstream_timeout;
    out.detail = "no response head within first_byte_timeout";
    co_return false;
  }
  if (head_failed(waiter.result, *res, out)) co_return false;
  // An answer that came before the whole body was sent ends the request there (C04 ii, early 413).
  if (res->get().result_int() >= 200 && !x.req.is_done()) request_complete = false;
  co_return true;
}

}  // namespace orgproxy::daemon
