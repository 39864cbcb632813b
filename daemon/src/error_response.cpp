#include "orgproxy/daemon/error_response.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>

#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {

namespace http = boost::beast::http;

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::none: return "";
    case ErrorCode::bad_request: return "bad_request";
    case ErrorCode::tenant_missing: return "tenant_missing";
    case ErrorCode::unknown_tenant: return "unknown_tenant";
    case ErrorCode::tenant_ambiguous: return "tenant_ambiguous";
    case ErrorCode::client_not_allowed: return "client_not_allowed";
    case ErrorCode::vihf_mismatch: return "vihf_mismatch";
    case ErrorCode::identity_missing: return "identity_missing";
    case ErrorCode::no_route: return "no_route";
    case ErrorCode::request_too_large: return "request_too_large";
    case ErrorCode::headers_too_large: return "headers_too_large";
    case ErrorCode::rate_limited: return "rate_limited";
    case ErrorCode::upstream_connect: return "upstream_connect";
    case ErrorCode::upstream_tls: return "upstream_tls";
    case ErrorCode::upstream_protocol: return "upstream_protocol";
    case ErrorCode::identity_unavailable: return "identity_unavailable";
    case ErrorCode::upstream_timeout: return "upstream_timeout";
    case ErrorCode::header_timeout: return "header_timeout";
  }
  return "internal";
}

unsigned status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::none: return 200;
    case ErrorCode::bad_request:
    case ErrorCode::tenant_missing: return 400;
    case ErrorCode::unknown_tenant:
    case ErrorCode::tenant_ambiguous:
    case ErrorCode::client_not_allowed:
    case ErrorCode::vihf_mismatch:
    case ErrorCode::identity_missing: return 403;
    case ErrorCode::no_route: return 404;
    case ErrorCode::header_timeout: return 408;
    case ErrorCode::request_too_large: return 413;
    case ErrorCode::headers_too_large: return 431;
    case ErrorCode::rate_limited: return 429;
    case ErrorCode::upstream_connect:
    case ErrorCode::upstream_tls:
    case ErrorCode::upstream_protocol: return 502;
    case ErrorCode::identity_unavailable: return 503;
    case ErrorCode::upstream_timeout: return 504;
  }
  return 500;
}

namespace {

// The media type before any parameter, trimmed.
std::string_view media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  return trim_ows(content_type.substr(0, semi));
}

// Parameter value by name (case-insensitive name), unquoted; "" when absent. Hand-rolled rather than
// Beast's param_list, which stops at the first parameter it cannot read (e.g. `start="<root@x>"`).
std::string_view param_value(std::string_view content_type, std::string_view name) {
  std::size_t i = content_type.find(';');
  while (i != std::string_view::npos && i < content_type.size()) {
    ++i;  // past ';'
    std::size_t eq = content_type.find('=', i);
    if (eq == std::string_view::npos) return {};
    std::string_view pname = trim_ows(content_type.substr(i, eq - i));
    std::size_t v = eq + 1;
    while (v < content_type.size() && (content_type[v] == ' ' || content_type[v] == '\t')) ++v;
    std::string_view value;
    std::size_t next;
    if (v < content_type.size() && content_type[v] == '"') {
      std::size_t end = v + 1;
      while (end < content_type.size() && content_type[end] != '"') end += content_type[end] == '\\' ? 2 : 1;
      if (end >= content_type.size()) return {};
      value = content_type.substr(v + 1, end - v - 1);
      next = content_type.find(';', end);
    } else {
      next = content_type.find(';', v);
      value = trim_ows(content_type.substr(v, next == std::string_view::npos ? std::string_view::npos : next - v));
    }
    if (boost::beast::iequals(pname, name)) return value;
    i = next;
  }
  return {};
}

void append_xml_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') out += c;
    }
  }
}

}  // namespace

bool is_soap12(std::string_view content_type) {
  auto type = media_type(content_type);
  if (boost::beast::iequals(type, "application/soap+xml")) return true;
  if (!boost::beast::iequals(type, "multipart/related")) return false;
  if (!boost::beast::iequals(media_type(param_value(content_type, "type")), "application/xop+xml")) return false;
  return boost::beast::iequals(media_type(param_value(content_type, "start-info")), "application/soap+xml");
}

http::response<http::string_body> make_error_response(const ErrorAnswer& a) {
  unsigned status = status_of(a.code);
  bool sender = status < 500;
  if (a.soap12 && a.soap_binding_statuses) status = sender ? 400 : 500;

  http::response<http::string_body> res{static_cast<http::status>(status), a.http_version};
  res.set("X-Orgproxy-Error", to_string(a.code));
  res.set("X-Request-Id", a.request_id);
  res.set(http::field::cache_control, "no-store");
  std::string& body = res.body();
  if (a.soap12) {
    res.set(http::field::content_type, "application/soap+xml; charset=utf-8");
    body.reserve(512);
    body +=
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\">"
        "<env:Body><env:Fault><env:Code><env:Value>";
    body += sender ? "env:Sender" : "env:Receiver";
    body += "</env:Value></env:Code><env:Reason><env:Text xml:lang=\"en\">";
    append_xml_escaped(body, a.detail.empty() ? to_string(a.code) : a.detail);
    body += "</env:Text></env:Reason><env:Detail><orgproxy:error xmlns:orgproxy=\"urn:orgproxy:error\">";
    body += to_string(a.code);
    body += "</orgproxy:error><orgproxy:requestId xmlns:orgproxy=\"urn:orgproxy:error\">";
    append_xml_escaped(body, a.request_id);
    body += "</orgproxy:requestId></env:Detail></env:Fault></env:Body></env:Envelope>\n";
  } else {
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    body += to_string(a.code);
    if (!a.detail.empty()) {
      body += ": ";
      body += a.detail;
    }
    body += '\n';
  }
  res.keep_alive(a.keep_alive);
  res.prepare_payload();
  return res;
}

}  // namespace orgproxy::daemon
