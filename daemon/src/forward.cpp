// Forwarding one request upstream and its response downstream, both streamed through a bounded buffer
// (the shape of Beast's http_relay example): a body of any size never sits in memory whole.
#include <limits>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "exchange.hpp"
#include "orgproxy/daemon/http_rules.hpp"
#include "read_head.hpp"
#include "relay.hpp"

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

}  // namespace

namespace {

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

// Refusal of a response head: transport error / timeout, malformed framing, or 101.
bool head_failed(const HeadRead& hr, const http::response_parser<http::buffer_body>& res, ForwardOutcome& out) {
  if (hr.ec) {
    out.error = upstream_io_error(hr.ec);
    out.detail = "reading response head: " + hr.ec.message();
    return true;
  }
  if (hr.status != HeadScan::Status::complete || hr.parse_ec) {
    out.error = ErrorCode::upstream_protocol;
    out.detail = std::string("malformed response head: ") + (hr.parse_ec ? hr.parse_ec.message() : hr.reason);
    return true;
  }
  if (res.get().result_int() == 101) {
    out.error = ErrorCode::upstream_protocol;
    out.detail = "upstream switched protocols although Upgrade was not forwarded";
    return true;
  }
  return false;
}

void new_response_parser(std::optional<http::response_parser<http::buffer_body>>& res, bool is_head) {
  res.emplace();
  res->header_limit(static_cast<std::uint32_t>(kMaxResponseHeadBytes));
  res->body_limit(std::numeric_limits<std::uint64_t>::max());
  if (is_head) res->skip(true);
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Fields in order, then the empty line, exactly as Beast's serializer writes them (RFC 9112 §2.1).
void append_fields(std::string& out, const http::fields& f) {
  for (const auto& field : f) {
    out.append(field.name_string());
    out.append(": ");
    out.append(field.value());
    out.append("\r\n");
  }
  out.append("\r\n");
}

// The request head as Beast's serializer writes it: "<method> <target> HTTP/1.1\r\n" and the fields.
void append_request_head(std::string& out, const http::request<http::buffer_body>& m) {
  out.append(m.method_string());
  out.push_back(' ');
  out.append(m.target());
  out.append(" HTTP/");
  out.push_back(static_cast<char>('0' + m.version() / 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + m.version() % 10));
  out.append("\r\n");
  append_fields(out, m);
}

// The response head as Beast's serializer writes it: "HTTP/X.Y ### <reason>\r\n" (the upstream's reason,
// else the standard one) and the fields.
void append_response_head(std::string& out, const http::response<http::buffer_body>& m) {
  const unsigned code = m.result_int();
  const char line[] = {'H', 'T', 'T', 'P', '/', static_cast<char>('0' + m.version() / 10), '.',
                       static_cast<char>('0' + m.version() % 10), ' ', static_cast<char>('0' + code / 100),
                       static_cast<char>('0' + (code / 10) % 10), static_cast<char>('0' + code % 10), ' '};
  out.append(line, sizeof line);
  const auto reason = m.reason();
  out.append(reason.empty() ? http::obsolete_reason(m.result()) : reason);
  out.append("\r\n");
  append_fields(out, m);
}

// Parses a length-delimited body wholly present in `buffer` into `relay` (kRelayBufferBytes). Returns the
// bytes parsed when the message is then complete, 0 otherwise (nothing consumed: the streaming path
// applies). A chunked body never qualifies: its framing is rewritten on the way.
template <bool isRequest>
std::size_t take_buffered_body(http::parser<isRequest, http::buffer_body>& p, beast::flat_buffer& buffer,
                               char* relay, boost::system::error_code& ec) {
  if (p.is_done() || p.get().chunked()) return 0;
  const auto length = p.content_length_remaining();
  if (!length || *length > kRelayBufferBytes || buffer.size() < *length) return 0;
  auto& body = p.get().body();
  body.data = relay;
  body.size = kRelayBufferBytes;
  buffer.consume(p.put(buffer.data(), ec));
  if (ec == http::error::need_buffer) ec = {};
  return kRelayBufferBytes - body.size;
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
  // The session's read buffer (grown once to a TLS record) serves this connection until its release.
  if (x.upstream_read_buffer && conn->buffer.size() == 0 && x.upstream_read_buffer->size() == 0)
    swap(conn->buffer, *x.upstream_read_buffer);

  // 2. Request head, then the body streamed while the response head is awaited (full duplex).
  prepare_upstream_request(x);
  std::optional<http::response_parser<http::buffer_body>> res;
  new_response_parser(res, x.is_head);
  bool request_complete = true;
  {
    http::serializer<true, http::buffer_body> sr{x.req.get()};
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
                                   prefilled);
      }
      if (step.write_ec) {
        out.error = upstream_io_error(step.write_ec);
        out.detail = "writing request upstream: " + step.write_ec.message();
        co_return out;
      }
      HeadRead hr = co_await read_head(conn->stream, conn->buffer, *res, kMaxResponseHeadBytes, kMaxResponseFields,
                                       u.first_byte_timeout, u.first_byte_timeout, false, kUpstreamReadBytes);
      if (head_failed(hr, *res, out)) co_return out;
    } else {
      // No body bytes yet, more to come: the serializer must stop after the head (need_buffer), not
      // conclude the body (it would emit the last chunk).
      auto& body = x.req.get().body();
      body.data = nullptr;
      body.size = 0;
      body.more = true;
      upstream_tcp.expires_after(u.first_byte_timeout);
      auto [hec, hn] = co_await http::async_write_header(conn->stream, sr, nothrow);
      if (hec) {
        out.error = upstream_io_error(hec);
        out.detail = "writing request head upstream: " + hec.message();
        co_return out;
      }
      HeadWaiter waiter(co_await asio::this_coro::executor);
      // No deadline on the read itself: the upload may legitimately take longer than first_byte_timeout,
      // which counts from the end of the request (enforced below by closing the socket).
      waiter.start(conn->stream, conn->buffer, *res, kMaxResponseHeadBytes, kMaxResponseFields,
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
          if (head_failed(waiter.result, *res, out)) co_return out;
          early_final = res->get().result_int() >= 200;
        }
        if (!early_final) {
          x.down.expires_after(x.listener.idle_timeout);
          auto [cec, cn] =
              co_await asio::async_write(x.down, asio::buffer(kContinue.data(), kContinue.size()), nothrow);
          if (cec) {
            co_await abandon();
            out.detail = "writing 100 Continue: " + cec.message();
            co_return out;
          }
        }
      }
      if (!early_final) {
        waiter.cancel_on_final[0] = &upstream_tcp;
        waiter.cancel_on_final[1] = &x.down.tcp();
        StepResult step = co_await relay_body(x.down, x.down_buffer, x.req, sr, conn->stream, x.relay,
                                              kRelayBufferBytes, x.listener.idle_timeout, u.first_byte_timeout,
                                              x.record.bytes_in, &waiter.final_or_failed);
        waiter.cancel_on_final[0] = waiter.cancel_on_final[1] = nullptr;
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
          } else {
            // Bytes may have reached the upstream: never replayed (C09b).
            out.error = upstream_io_error(step.write_ec);
            out.detail = "writing request upstream: " + step.write_ec.message();
          }
          co_return out;
        }
        request_complete = !step.stopped;
      } else {
        request_complete = false;
      }
      if (!co_await waiter.wait(u.first_byte_timeout)) {
        co_await abandon();
        out.error = ErrorCode::upstream_timeout;
        out.detail = "no response head within first_byte_timeout";
        co_return out;
      }
      if (head_failed(waiter.result, *res, out)) co_return out;
      // An answer that came before the whole body was sent ends the request there (C04 ii, early 413).
      if (res->get().result_int() >= 200 && !x.req.is_done()) request_complete = false;
    }
  }
  conn->requests++;

  // 3. Further heads: 1xx interim answers are dropped, never taken as final (C05a).
  while (res->get().result_int() < 200) {
    new_response_parser(res, x.is_head);
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

  http::serializer<false, http::buffer_body> sr{msg};
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
  }
  co_return out;
}

}  // namespace orgproxy::daemon
