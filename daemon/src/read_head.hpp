// Internal: reads one strictly framed message head (request or response) into a Beast parser.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>

#include "l4_deadline.hpp"
#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {

struct HeadRead {
  /// Transport error or timeout (beast::error::timeout). A timeout with got_bytes leaves the socket open
  /// (the head's deadline cancels the read instead of closing), so a 408 can still be answered.
  boost::system::error_code ec;
  HeadScan::Status status = HeadScan::Status::incomplete;  ///< complete on success
  const char* reason = "";
  bool got_bytes = false;  ///< any byte of this head arrived (false: clean EOF/idle timeout between messages)
  boost::system::error_code parse_ec;  ///< Beast parser refusal (framing) after a clean scan
};

/// Waits up to `first_byte` for the first byte, then gives the whole head `whole_head` from there (from now
/// when `whole_head_from_now`: a connection's first request, which has no idle period before it); scans
/// it with scan_head (bare CR/LF, obs-fold... refused) and hands exactly the head bytes to `parser`.
/// Body bytes already received stay in `buffer` for the parser's body reads. `read_bytes` is the size of
/// each read: 4 KB suits a request head; an upstream answer is read a whole TLS record (16 KB) at a time,
/// so that a small response arrives head and body in one read and leaves downstream in one write.
template <class Stream, class Parser>
boost::asio::awaitable<HeadRead> read_head(Stream& stream, boost::beast::flat_buffer& buffer, Parser& parser,
                                           std::size_t max_bytes, std::size_t max_fields,
                                           std::chrono::milliseconds first_byte,
                                           std::chrono::milliseconds whole_head,
                                           bool whole_head_from_now = false, std::size_t read_bytes = 4096) {
  namespace asio = boost::asio;
  HeadRead r;
  auto& tcp = boost::beast::get_lowest_layer(stream);
  // Once the head has started, its deadline cancels the read rather than closing the socket (as a
  // tcp_stream expiry does): a client whose request line has started is owed a 408 (RFC 9110 §15.5.9).
  std::optional<L4Deadline> head_deadline;
  std::chrono::steady_clock::time_point head_deadline_at;
  auto arm_head_deadline = [&] {
    tcp.expires_never();
    head_deadline_at = std::chrono::steady_clock::now() + whole_head;
    head_deadline.emplace(tcp.get_executor(), whole_head, [&tcp] {
      boost::system::error_code ignored;
      tcp.socket().cancel(ignored);
    });
  };
  if (buffer.size() == 0 && !whole_head_from_now)
    tcp.expires_after(first_byte);
  else
    arm_head_deadline();
  // What follows the head (body reads, error answers) stays bounded by the head's deadline, as before.
  auto keep_deadline = [&] {
    if (head_deadline) tcp.expires_at(head_deadline_at);
  };
  for (;;) {
    if (buffer.size() > 0) {
      r.got_bytes = true;
      auto data = buffer.data();
      std::string_view bytes(static_cast<const char*>(data.data()), data.size());
      HeadScan scan = scan_head(bytes, max_bytes, max_fields);
      r.status = scan.status;
      r.reason = scan.reason;
      if (scan.status == HeadScan::Status::complete) {
        parser.put(asio::buffer(data.data(), scan.head_bytes), r.parse_ec);
        if (!r.parse_ec && !parser.is_header_done()) r.parse_ec = boost::beast::http::error::partial_message;
        buffer.consume(scan.head_bytes);
        keep_deadline();
        co_return r;
      }
      if (scan.status != HeadScan::Status::incomplete) {
        keep_deadline();
        co_return r;
      }
      if (!head_deadline) arm_head_deadline();
    }
    if (head_deadline && head_deadline->expired()) {  // fired while a read was completing with bytes
      r.ec = boost::beast::error::timeout;
      co_return r;
    }
    auto [ec, n] = co_await stream.async_read_some(buffer.prepare(read_bytes), asio::as_tuple(asio::use_awaitable));
    buffer.commit(n);
    if (ec && n == 0) {
      r.ec = head_deadline && head_deadline->expired() ? boost::system::error_code(boost::beast::error::timeout) : ec;
      r.got_bytes = buffer.size() > 0;
      if (r.ec != boost::beast::error::timeout) keep_deadline();
      co_return r;
    }
  }
}

}  // namespace orgproxy::daemon
