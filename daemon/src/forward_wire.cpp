// The one-write path's pieces (forward.cpp): message heads serialized into a session-owned string, so that
// a small message leaves as one buffer (one TLS record, one sendmsg), and the acceptance of response heads.
#include <limits>
#include <tuple>
#include <utility>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>

#include "forward_parts.hpp"

namespace orgproxy::daemon {

namespace beast = boost::beast;
namespace http = beast::http;

ErrorCode upstream_io_error(const boost::system::error_code& ec) {
  return ec == beast::error::timeout ? ErrorCode::upstream_timeout : ErrorCode::upstream_protocol;
}

// Refusal of a response head: transport error / timeout, malformed framing, or 101.
bool head_failed(const HeadRead& hr, const ResponseParser& res, ForwardOutcome& out) {
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

void new_response_parser(std::optional<ResponseParser>& res, bool is_head, HeadArena& arena) {
  res.reset();
  arena.reset();
  res.emplace(std::piecewise_construct, std::tuple<>{}, std::make_tuple(arena.allocator()));
  res->header_limit(static_cast<std::uint32_t>(kMaxResponseHeadBytes));
  res->body_limit(std::numeric_limits<std::uint64_t>::max());
  if (is_head) res->skip(true);
}

namespace {

// Fields in order, then the empty line, exactly as Beast's serializer writes them (RFC 9112 §2.1).
void append_fields(std::string& out, const HeadFields& f) {
  for (const auto& field : f) {
    out.append(field.name_string());
    out.append(": ");
    out.append(field.value());
    out.append("\r\n");
  }
  out.append("\r\n");
}

}  // namespace

// The request head as Beast's serializer writes it: "<method> <target> HTTP/1.1\r\n" and the fields.
void append_request_head(std::string& out, const http::request<http::buffer_body, HeadFields>& m) {
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
void append_response_head(std::string& out, const http::response<http::buffer_body, HeadFields>& m) {
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

}  // namespace orgproxy::daemon
