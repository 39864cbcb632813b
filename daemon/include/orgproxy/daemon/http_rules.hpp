// HTTP/1.1 rules orgproxy enforces at the edges of the data path: strict header framing (RFC 9112 §2.2,
// §5, §6), hop-by-hop header removal (RFC 9110 §7.6.1), Host parsing (RFC 9110 §7.2, RFC 3986 §3.2.2) and
// the target mapping of DESIGN.md "Route". Pure functions: no I/O, unit-tested in tests/unit/daemon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/fields.hpp>

#include "orgproxy/daemon/head_fields.hpp"

namespace orgproxy::daemon {

/// `s` without leading/trailing SP and HTAB (RFC 9110 §5.6.3 OWS).
std::string_view trim_ows(std::string_view s);

/// Outcome of scanning the raw bytes of a message head (start line + fields + empty line).
struct HeadScan {
  enum class Status { incomplete, complete, malformed, too_large };
  Status status = Status::incomplete;
  std::size_t head_bytes = 0;  ///< bytes up to and including the final CRLF CRLF (when complete)
  const char* reason = "";     ///< why malformed / too large (static text, for logs)
};

/// Scans `bytes` (what has arrived so far) for a complete, strictly framed message head.
/// Refused as malformed (never normalised, field case C03): a bare LF or bare CR anywhere, obs-fold
/// (a field line starting with SP/HTAB), NUL, whitespace before a field's colon, a line without a colon.
/// `max_bytes` bounds the head size in bytes, `max_fields` the number of field lines; over → too_large.
/// `incomplete` means more bytes are needed (and the limits are not yet exceeded).
HeadScan scan_head(std::string_view bytes, std::size_t max_bytes, std::size_t max_fields);

/// Framing checks on a parsed request head beyond what Beast's parser enforces (field case C01):
/// Transfer-Encoding, when present, must be exactly `chunked` (a single coding; `identity`,
/// `chunked, chunked`, `gzip, chunked` are refused); exactly one Host field on HTTP/1.1, none empty.
/// Returns "" when acceptable, else the reason (static text).
const char* check_request_framing(const boost::beast::http::fields& fields, unsigned version);
/// The same, for a head parsed into a HeadArena (the data path).
const char* check_request_framing(const HeadFields& fields, unsigned version);

/// Removes the hop-by-hop fields of RFC 9110 §7.6.1: Connection and every field it names
/// (case-insensitive), Keep-Alive, TE, Trailer, Transfer-Encoding (the serializer re-frames), Upgrade,
/// Proxy-Authorization, Proxy-Connection. Also removes `also_remove` when non-empty (the tenant
/// selection header).
void remove_hop_by_hop(boost::beast::http::fields& fields, std::string_view also_remove = {});
/// The same, for a head parsed into a HeadArena (the data path).
void remove_hop_by_hop(HeadFields& fields, std::string_view also_remove = {});

/// Host and optional port of a Host header value; IPv6 literals without their brackets.
struct HostPort {
  std::string_view host;
  std::optional<std::uint16_t> port;
};
/// Parses a Host value: `name`, `name:port`, `[v6]`, `[v6]:port`. nullopt for anything else
/// (`[::1`, `a:b:c`, empty, port not 1..65535 digits).
std::optional<HostPort> parse_host(std::string_view value);

/// The request target split for routing.
struct TargetParts {
  std::string_view path;   ///< starts with '/'
  std::string_view query;  ///< without '?', may be empty
  bool has_query = false;
};

/// Checks an origin-form request target (RFC 9112 §3.2.1) for routing. Refused (nullopt): anything not
/// starting with '/', a '#', any byte outside visible ASCII (0x21-0x7E, RFC 9112 §3.2), a backslash,
/// dot-segments (a segment whose part before its first ';' is `.` or `..`, since servlet containers drop
/// path parameters before resolving them), empty segments (`//`), and the percent-encoded `/`, `\`, `.` (%2F %5C %2E, any case), so nothing escapes the upstream
/// base path (DESIGN.md "Route"). `reason` receives a static explanation on refusal.
std::optional<TargetParts> check_target(std::string_view target, const char** reason = nullptr);

/// Strips a path selector prefix `/sites/<id>` from `path`: returns the id and sets `rest` to what follows
/// ("/" when nothing follows). nullopt when `path` does not start with `/sites/<non-empty id>` followed by
/// '/' or end.
std::optional<std::string_view> split_site_prefix(std::string_view path, std::string_view& rest);

/// The upstream target: `base_path` + the part of `path` after the route prefix + `?query` when the
/// request had one. `prefix` "/" leaves the path whole. An empty result becomes "/".
std::string map_target(std::string_view base_path, std::string_view prefix, std::string_view path,
                       const TargetParts& parts);
/// Same, into `out` (cleared first): a session reuses one string, so no allocation per request.
void map_target_into(std::string& out, std::string_view base_path, std::string_view prefix,
                     std::string_view path, const TargetParts& parts);

/// The Host value sent upstream (C16): `name` (sni, else host), IPv6 literals bracketed, `:port` when the
/// port is not 443.
std::string upstream_authority(std::string_view name, std::uint16_t port);

}  // namespace orgproxy::daemon
