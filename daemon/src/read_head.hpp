// Internal: reads one strictly framed message head (request or response) into a Beast parser.
#pragma once

#include <chrono>
#include <cstddef>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>

#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {

struct HeadRead {
  boost::system::error_code ec;  ///< transport error or timeout (beast::error::timeout)
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
  bool head_deadline_set = false;
  if (buffer.size() == 0 && !whole_head_from_now) {
    tcp.expires_after(first_byte);
  } else {
    tcp.expires_after(whole_head);
    head_deadline_set = true;
  }
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
        co_return r;
      }
      if (scan.status != HeadScan::Status::incomplete) co_return r;
      if (!head_deadline_set) {
        tcp.expires_after(whole_head);
        head_deadline_set = true;
      }
    }
    auto [ec, n] = co_await stream.async_read_some(buffer.prepare(read_bytes), asio::as_tuple(asio::use_awaitable));
    buffer.commit(n);
    if (ec && n == 0) {
      r.ec = ec;
      r.got_bytes = buffer.size() > 0;
      co_return r;
    }
  }
}

}  // namespace orgproxy::daemon
