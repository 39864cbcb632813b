// orgproxy's own error answers (DESIGN.md "Failures answer a status, X-Orgproxy-Error and X-Request-Id").
#pragma once

#include <cstdint>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace orgproxy::daemon {

/// The error codes of DESIGN.md's table; each maps to one HTTP status.
enum class ErrorCode : std::uint8_t {
  none,
  bad_request,
  tenant_missing,
  unknown_tenant,
  tenant_ambiguous,
  client_not_allowed,
  vihf_mismatch,
  identity_missing,
  no_route,
  request_too_large,
  headers_too_large,
  rate_limited,
  upstream_connect,
  upstream_tls,
  upstream_protocol,
  identity_unavailable,
  upstream_timeout,
  header_timeout,  ///< 408: a request head started but did not complete within the listener's header_timeout
};

/// The code's spelling in `X-Orgproxy-Error` and logs ("" for none).
std::string_view to_string(ErrorCode code);
/// The status of DESIGN.md's table (e.g. 431 for headers_too_large); 200 for none.
unsigned status_of(ErrorCode code);

/// True when the request is SOAP 1.2 (DESIGN.md): `Content-Type: application/soap+xml`, or MTOM/XOP
/// `multipart/related` whose `type` is application/xop+xml and whose `start-info` is application/soap+xml.
/// `content_type` is the raw header value (media type compared case-insensitively).
bool is_soap12(std::string_view content_type);

/// What to answer for one failure.
struct ErrorAnswer {
  ErrorCode code = ErrorCode::bad_request;
  std::string_view request_id;   ///< echoed in X-Request-Id
  std::string_view detail;       ///< short human text (never a key, PIN, body or certificate)
  bool soap12 = false;           ///< answer with a SOAP 1.2 Fault body
  bool soap_binding_statuses = false;  ///< SOAP 1.2 HTTP binding statuses: 400 Sender / 500 Receiver
  bool keep_alive = false;       ///< false adds `Connection: close`
  unsigned http_version = 11;    ///< 10 or 11, the downstream request's version
};

/// Builds the response: the table's status, `X-Orgproxy-Error: <code>`, `X-Request-Id`, and a body that is
/// either a SOAP 1.2 Fault (env:Sender for 4xx, env:Receiver for 5xx, the code in env:Detail; W3C SOAP 1.2
/// Part 1 §5.4) or one line of text. Never throws except std::bad_alloc.
boost::beast::http::response<boost::beast::http::string_body> make_error_response(const ErrorAnswer& answer);

}  // namespace orgproxy::daemon
