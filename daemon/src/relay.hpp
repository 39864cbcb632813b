// Internal: streaming a message body from a parser to a serializer through one bounded buffer (the shape
// of Beast's http_relay example), and waiting for an upstream response head while the request body is
// still being written (full duplex: early answers and Expect: 100-continue).
#pragma once

#include <chrono>
#include <cstdint>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "async_util.hpp"
#include "orgproxy/daemon/tls_socket_stream.hpp"
#include "read_head.hpp"

namespace orgproxy::daemon {

/// True when `pending` (bytes the parser could not use yet, so a chunk-size, last-chunk or trailer line
/// still being framed) holds an LF not preceded by CR. RFC 9112 §7.1 ends those lines with CRLF; Beast
/// keeps waiting for a CR that a bare-LF sender never sends (field case C02 (c)).
inline bool has_bare_lf(const boost::beast::flat_buffer& pending) {
  auto data = pending.data();
  const auto* b = static_cast<const char*>(data.data());
  for (std::size_t i = 0; i < data.size(); ++i)
    if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) return true;
  return false;
}

/// One parse step of a message body, as http::async_read_some(in, buffer, p), except that a chunked
/// body whose framing line ends in a bare LF fails at once with http::error::bad_chunk instead of waiting
/// (until the read deadline) for a CRLF that never comes. Errors: those of the stream and the parser
/// (need_buffer: `p`'s body buffer is full).
template <class In, bool isRequest, class Allocator>
boost::asio::awaitable<boost::system::error_code> read_body_some(
    In& in, boost::beast::flat_buffer& buffer,
    boost::beast::http::parser<isRequest, boost::beast::http::buffer_body, Allocator>& p) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  for (;;) {
    if (buffer.size() > 0) {
      boost::system::error_code ec;
      buffer.consume(p.put(buffer.data(), ec));
      if (ec != http::error::need_more) co_return ec;
      if (p.chunked() && has_bare_lf(buffer)) co_return http::error::bad_chunk;
    }
    const auto size = boost::beast::read_size(buffer, 65536);  // what http::async_read_some asks for
    if (size == 0) co_return http::error::buffer_overflow;
    auto [ec, n] = co_await in.async_read_some(buffer.prepare(size), asio::as_tuple(asio::use_awaitable));
    buffer.commit(n);
    if (ec == asio::error::eof && n == 0) {
      if (!p.got_some()) co_return http::error::end_of_stream;
      boost::system::error_code eof_ec;
      p.put_eof(eof_ec);  // partial_message unless the body is close-delimited
      co_return eof_ec;
    }
    if (ec && n == 0) co_return ec;
  }
}

/// Size of each read from an upstream: a whole TLS record's plaintext, so a small answer (head and body in
/// one record) is read at once and relayed in one write.
inline constexpr std::size_t kUpstreamReadBytes = 16 * 1024;

struct StepResult {
  boost::system::error_code read_ec;
  boost::system::error_code write_ec;
  bool wrote_any = false;
  bool stopped = false;  ///< `*stop` became true between two writes
  bool too_slow = false;  ///< read_ec is the BodyPace deadline, not the per-read timeout
};

/// Minimum pace of a request body (slow-upload defence, listener body_timeout / body_min_rate): the body's
/// first `bytes` must have arrived by start + allowance + bytes / min_rate (per second).
struct BodyPace {
  std::chrono::steady_clock::time_point start;
  std::chrono::milliseconds allowance{0};
  std::uint64_t min_rate = 0;  ///< bytes per second; 0 = the whole body within `allowance`
  std::chrono::steady_clock::time_point deadline(std::uint64_t bytes) const {
    auto earned = min_rate == 0 ? std::chrono::milliseconds(0)
                                : std::chrono::milliseconds(bytes * 1000 / min_rate);
    return start + allowance + earned;
  }
};

/// Streams `p`'s body into `sr` (the serializer of the same message) one `buf_size` buffer at a time.
/// Each read is bounded by `in_timeout`, each write by `out_timeout`. Adds the body bytes to `bytes`.
/// Checks `*stop` (when not null) after each write and returns early with `stopped` when set.
/// `prefilled`: body bytes the caller already parsed into `buf`; written first (with the head, when the
/// serializer has not written it yet: one write instead of two). `pace` (request bodies): reads end at its
/// deadline when that comes before `in_timeout` (StepResult::too_slow).
template <bool isRequest, class In, class Out, class Allocator>
boost::asio::awaitable<StepResult> relay_body(
    In& in, boost::beast::flat_buffer& in_buffer,
    boost::beast::http::parser<isRequest, boost::beast::http::buffer_body, Allocator>& p,
    boost::beast::http::serializer<isRequest, boost::beast::http::buffer_body,
                                   boost::beast::http::basic_fields<Allocator>>& sr,
    Out& out, char* buf, std::size_t buf_size, std::chrono::milliseconds in_timeout,
    std::chrono::milliseconds out_timeout, std::uint64_t& bytes, const bool* stop = nullptr,
    std::size_t prefilled = 0, const BodyPace* pace = nullptr) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  StepResult r;
  auto& body = p.get().body();
  do {
    if (prefilled > 0) {
      body.data = buf;
      body.size = prefilled;
      body.more = !p.is_done();
      bytes += prefilled;
      prefilled = 0;
    } else if (!p.is_done()) {
      body.data = buf;
      body.size = buf_size;
      bool paced = false;
      if (pace && pace->deadline(bytes) < std::chrono::steady_clock::now() + in_timeout) {
        boost::beast::get_lowest_layer(in).expires_at(pace->deadline(bytes));
        paced = true;
      } else {
        boost::beast::get_lowest_layer(in).expires_after(in_timeout);
      }
      auto ec = co_await read_body_some(in, in_buffer, p);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        r.read_ec = ec;
        r.too_slow = paced && ec == boost::beast::error::timeout;
        co_return r;
      }
      body.size = buf_size - body.size;
      bytes += body.size;
      if (body.size == 0) {
        // Nothing new (e.g. only a chunk header was parsed). A zero-sized buffer would be serialized as a
        // zero-sized chunk, which IS the last chunk: never write one; a null buffer ends the body instead.
        body.data = nullptr;
        if (!p.is_done()) continue;
        body.more = false;
      } else {
        body.data = buf;
        body.more = !p.is_done();
      }
    } else {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
    }
    boost::beast::get_lowest_layer(out).expires_after(out_timeout);
    auto [wec, wn] = co_await http::async_write(out, sr, nothrow);
    if (wn > 0) r.wrote_any = true;
    if (wec == http::error::need_buffer) wec = {};
    if (wec) {
      r.write_ec = wec;
      co_return r;
    }
    if (stop && *stop) {
      r.stopped = true;
      co_return r;
    }
  } while (!p.is_done() && !sr.is_done());
  co_return r;
}

/// A response head read running beside the request body write. One read and one write may be pending at
/// once on an Asio SSL stream, so the upstream can answer early (413, 100 Continue) while we still send.
/// Everything here runs on the worker's single thread: `done` is set before `wake` is cancelled, and
/// checked before every wait, so no wake-up is lost.
struct HeadWaiter {
  explicit HeadWaiter(const boost::asio::any_io_executor& ex) : wake(ex) {}
  boost::asio::steady_timer wake;
  bool done = false;
  bool final_or_failed = false;  ///< done with a final (>= 200) head or a failure: stop sending the body
  HeadRead result;
  /// Streams whose pending operations are cancelled when a final head arrives: an upstream that answers
  /// early may have stopped reading (our write would block) and the client need not finish its body.
  TlsSocketStream* cancel_upstream_on_final = nullptr;
  boost::beast::tcp_stream* cancel_downstream_on_final = nullptr;

  /// Starts reading one head from `stream` into `parser`. `timeout` bounds the read (pass a long one and
  /// enforce the real deadline with wait(): a pending read's deadline cannot be moved). The caller must
  /// not destroy `stream`, `buffer`, `parser` or this waiter before `done` (close the socket and wait()).
  template <class Stream, class Parser>
  void start(Stream& stream, boost::beast::flat_buffer& buffer, Parser& parser, std::size_t max_bytes,
             std::size_t max_fields, std::chrono::milliseconds timeout) {
    boost::asio::co_spawn(
        wake.get_executor(),
        [this, &stream, &buffer, &parser, max_bytes, max_fields, timeout]() -> boost::asio::awaitable<void> {
          result = co_await read_head(stream, buffer, parser, max_bytes, max_fields, timeout, timeout, false,
                                     kUpstreamReadBytes);
          final_or_failed = result.ec || result.parse_ec || result.status != HeadScan::Status::complete ||
                            parser.get().result_int() >= 200;
          done = true;
          if (final_or_failed) {
            if (cancel_upstream_on_final) cancel_upstream_on_final->cancel();
            if (cancel_downstream_on_final) cancel_downstream_on_final->cancel();
          }
          wake.cancel();
        },
        boost::asio::detached);
  }

  /// Waits until the read is done or `limit` passes; returns `done`.
  boost::asio::awaitable<bool> wait(std::chrono::steady_clock::duration limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      wake.expires_at(deadline);
      co_await wake.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    co_return done;
  }
};

}  // namespace orgproxy::daemon
