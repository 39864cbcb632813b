// Forwarding one request upstream and its response downstream, both streamed through a bounded buffer
// (the shape of Beast's http_relay example): a body of any size never sits in memory whole.
#include <limits>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "exchange.hpp"
#include "orgproxy/daemon/http_rules.hpp"
#include "read_head.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxResponseHeadBytes = 64 * 1024;
constexpr std::size_t kMaxResponseFields = 200;

ErrorCode upstream_io_error(const boost::system::error_code& ec) {
  return ec == beast::error::timeout ? ErrorCode::upstream_timeout : ErrorCode::upstream_protocol;
}

// Rewrites the request head for the upstream (C07, C16): hop-by-hop and selection fields removed, one
// framing field of our own, Host = the upstream authority, our request id.
void prepare_upstream_request(Exchange& x) {
  auto& m = x.req.get();
  const bool chunked = m.chunked();
  const auto length = x.req.content_length();
  remove_hop_by_hop(m, x.selection_header);
  // The client already got our 100 Continue (or needs none): the upstream is not asked to send one.
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

struct StepResult {
  boost::system::error_code read_ec;
  boost::system::error_code write_ec;
  bool wrote_any = false;
};

// Streams a parser's body into a serializer of the same message, one relay buffer at a time.
// `in_timeout`/`out_timeout` bound each read/write. Counts body bytes into `bytes`.
template <bool isRequest, class In, class Out>
asio::awaitable<StepResult> relay_body(In& in, beast::flat_buffer& in_buffer,
                                       http::parser<isRequest, http::buffer_body>& p,
                                       http::serializer<isRequest, http::buffer_body>& sr, Out& out, char* buf,
                                       std::chrono::milliseconds in_timeout, std::chrono::milliseconds out_timeout,
                                       std::uint64_t& bytes) {
  StepResult r;
  auto& body = p.get().body();
  do {
    if (!p.is_done()) {
      body.data = buf;
      body.size = kRelayBufferBytes;
      beast::get_lowest_layer(in).expires_after(in_timeout);
      auto [ec, n] = co_await http::async_read_some(in, in_buffer, p, nothrow);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        r.read_ec = ec;
        co_return r;
      }
      body.size = kRelayBufferBytes - body.size;
      body.data = buf;
      body.more = !p.is_done();
      bytes += body.size;
    } else {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
    }
    beast::get_lowest_layer(out).expires_after(out_timeout);
    auto [wec, wn] = co_await http::async_write(out, sr, nothrow);
    if (wn > 0) r.wrote_any = true;
    if (wec == http::error::need_buffer) wec = {};
    if (wec) {
      r.write_ec = wec;
      co_return r;
    }
  } while (!p.is_done() && !sr.is_done());
  co_return r;
}

}  // namespace

asio::awaitable<ForwardOutcome> forward(Exchange& x) {
  ForwardOutcome out;
  const config::Upstream& u = *x.upstream->upstream;
  UpstreamPool& pool = x.worker.pool_for(x.rt);
  const PoolKey key{x.identity->tenant_id(), x.identity, &u};

  // 1. A pooled connection of exactly this key, checked alive before any byte is written (C09a).
  std::unique_ptr<UpstreamConnection> conn;
  const auto now = UpstreamPool::Clock::now();
  while ((conn = pool.acquire(key, now))) {
    if (conn->reusable()) break;
  }
  x.record.upstream_reused = conn != nullptr;
  if (!conn) {
    DialResult dial = co_await dial_upstream(*x.rt, *x.upstream, *x.identity, pool, key);
    if (!dial.conn) {
      out.error = dial.error;
      out.detail = std::move(dial.detail);
      out.keep_downstream = x.req.is_done();
      co_return out;
    }
    conn = std::move(dial.conn);
  }

  // 2. Request: head + streamed body.
  prepare_upstream_request(x);
  {
    http::serializer<true, http::buffer_body> sr{x.req.get()};
    StepResult step = co_await relay_body(x.down, x.down_buffer, x.req, sr, conn->stream, x.relay,
                                          x.listener.idle_timeout, u.first_byte_timeout, x.record.bytes_in);
    if (step.read_ec) {
      // The client's side failed: a bad chunk, a body over the route limit, a reset. The upstream request
      // is left incomplete (no terminating chunk) and its connection discarded, so it is never completed.
      out.request_error = true;
      out.keep_downstream = false;
      if (step.read_ec == http::error::body_limit) {
        out.error = ErrorCode::request_too_large;
        out.detail = "request body over the route's max_body";
      } else if (step.read_ec == beast::error::timeout || step.read_ec == http::error::end_of_stream ||
                 step.read_ec == http::error::partial_message || step.read_ec == asio::error::eof ||
                 step.read_ec == asio::error::connection_reset) {
        out.error = ErrorCode::none;  // client went away or stalled: nobody to answer
        out.detail = "client request body: " + step.read_ec.message();
      } else {
        out.error = ErrorCode::bad_request;
        out.detail = "request body framing: " + step.read_ec.message();
      }
      co_return out;
    }
    if (step.write_ec) {
      // Bytes may have reached the upstream: never replayed (C09b).
      out.error = upstream_io_error(step.write_ec);
      out.detail = "writing request upstream: " + step.write_ec.message();
      co_return out;
    }
  }
  conn->requests++;

  // 3. Response head; 1xx interim answers are dropped, never taken as final (C05a).
  std::optional<http::response_parser<http::buffer_body>> res;
  for (;;) {
    res.emplace();
    res->header_limit(static_cast<std::uint32_t>(kMaxResponseHeadBytes));
    res->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (x.is_head) res->skip(true);
    HeadRead hr = co_await read_head(conn->stream, conn->buffer, *res, kMaxResponseHeadBytes, kMaxResponseFields,
                                     u.first_byte_timeout, u.first_byte_timeout);
    if (hr.ec) {
      out.error = upstream_io_error(hr.ec);
      out.detail = "reading response head: " + hr.ec.message();
      co_return out;
    }
    if (hr.status != HeadScan::Status::complete || hr.parse_ec) {
      out.error = ErrorCode::upstream_protocol;
      out.detail = std::string("malformed response head: ") + (hr.parse_ec ? hr.parse_ec.message() : hr.reason);
      co_return out;
    }
    unsigned status = res->get().result_int();
    if (status == 101) {
      out.error = ErrorCode::upstream_protocol;
      out.detail = "upstream switched protocols although Upgrade was not forwarded";
      co_return out;
    }
    if (status >= 200) break;
  }

  // 4. Response head for the client: hop-by-hop removed, framing of our own.
  auto& msg = res->get();
  const bool body_expected = !res->is_done();
  const bool up_chunked = msg.chunked();
  const auto up_length = res->content_length();
  const bool upstream_keep_alive = res->keep_alive();
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
  msg.keep_alive(keep_down);
  x.record.status = msg.result_int();

  http::serializer<false, http::buffer_body> sr{msg};
  if (!body_expected) {
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
    StepResult step = co_await relay_body(conn->stream, conn->buffer, *res, sr, x.down, x.relay,
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
  out.keep_downstream = keep_down && x.req.is_done();

  // 5. Back to the pool only after a complete, keep-alive, length-delimited exchange.
  if (upstream_keep_alive && res->is_done() && !res->need_eof() && x.worker.pool_accepts(x.rt))
    release_upstream(pool, key, std::move(conn), u);
  co_return out;
}

}  // namespace orgproxy::daemon
