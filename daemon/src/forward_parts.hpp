// Internal: the pieces of forward() (forward.cpp): message heads on the wire for the one-write path
// (forward_wire.cpp) and the full-duplex streaming path of a request body still in transit (forward_stream.cpp).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>

#include "exchange.hpp"
#include "read_head.hpp"
#include "relay.hpp"

namespace orgproxy::daemon {

/// An upstream response's parser: its fields live in the session's response HeadArena.
using ResponseParser = boost::beast::http::response_parser<boost::beast::http::buffer_body, HeadAllocator>;
using RequestSerializer = boost::beast::http::serializer<true, boost::beast::http::buffer_body, HeadFields>;
using ResponseSerializer = boost::beast::http::serializer<false, boost::beast::http::buffer_body, HeadFields>;

inline constexpr std::size_t kMaxResponseHeadBytes = 64 * 1024;
inline constexpr std::size_t kMaxResponseFields = 200;

/// upstream_timeout for a timeout, else upstream_protocol (a transport failure on the upstream side).
ErrorCode upstream_io_error(const boost::system::error_code& ec);

/// Classifies a failure reading the client's request body into `out` (body limit → 413, bad chunk framing
/// → 400, the client gone or stalled → no answer); the upstream request is then left incomplete.
void client_body_failure(ForwardOutcome& out, const boost::system::error_code& ec);

/// Whether a response head read failed (transport error or timeout, malformed framing, or a 101 we never
/// asked for); sets `out` when it did.
bool head_failed(const HeadRead& hr, const ResponseParser& res, ForwardOutcome& out);

/// A fresh response parser: head limit kMaxResponseHeadBytes, no body limit (bodies are streamed), no
/// body expected when answering HEAD. Its fields are drawn from `arena`, reset first (the previous
/// parser in `res`, if any, is destroyed before): each head (1xx interim ones included) starts from an
/// empty arena, so a stream of interim answers cannot grow it.
void new_response_parser(std::optional<ResponseParser>& res, bool is_head, HeadArena& arena);

/// The request head exactly as Beast's serializer writes it ("<method> <target> HTTP/1.1", fields, empty
/// line; RFC 9112 §2.1, §3), appended to `out`.
void append_request_head(std::string& out,
                         const boost::beast::http::request<boost::beast::http::buffer_body, HeadFields>& m);

/// The response head exactly as Beast's serializer writes it ("HTTP/X.Y ### <reason>": the upstream's
/// reason, else the standard one; fields; empty line), appended to `out`.
void append_response_head(std::string& out,
                          const boost::beast::http::response<boost::beast::http::buffer_body, HeadFields>& m);

/// Parses a length-delimited body wholly present in `buffer` into `relay` (kRelayBufferBytes). Returns the
/// bytes parsed when the message is then complete, 0 otherwise (nothing consumed: the streaming path
/// applies). A chunked body never qualifies: its framing is rewritten on the way.
template <bool isRequest>
inline std::size_t take_buffered_body(boost::beast::http::parser<isRequest, boost::beast::http::buffer_body, HeadAllocator>& p,
                                      boost::beast::flat_buffer& buffer,
                                      char* relay, boost::system::error_code& ec) {
  if (p.is_done() || p.get().chunked()) return 0;
  const auto length = p.content_length_remaining();
  if (!length || *length > kRelayBufferBytes || buffer.size() < *length) return 0;
  auto& body = p.get().body();
  body.data = relay;
  body.size = kRelayBufferBytes;
  buffer.consume(p.put(buffer.data(), ec));
  if (ec == boost::beast::http::error::need_buffer) ec = {};
  return kRelayBufferBytes - body.size;
}

/// The full-duplex path of a request whose body is still in transit (or chunked, or behind Expect:
/// 100-continue): the head is written, the response head is awaited concurrently while the body streams
/// (an early final answer ends the upload, C04), 100 Continue is given when the upstream stays silent for
/// a second. On success `res` holds a complete response head and `request_complete` says whether the whole
/// request reached the upstream; returns false with `out` set otherwise (the concurrent read is ended).
boost::asio::awaitable<bool> stream_request(Exchange& x, UpstreamConnection& conn, RequestSerializer& sr,
                                            std::optional<ResponseParser>& res, const BodyPace& pace,
                                            ForwardOutcome& out, bool& request_complete);

}  // namespace orgproxy::daemon
