// Address, host name and URL syntax used by listeners, upstreams and routes. Syntax only: nothing here
// resolves a name or opens a socket.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "orgproxy/config/config.hpp"
#include "scalars.hpp"

namespace orgproxy::config::detail {

/// True for a dotted-quad IPv4 address or an IPv6 address (without brackets), as inet_pton reads them.
bool is_ipv4_literal(std::string_view host);
bool is_ipv6_literal(std::string_view host);
inline bool is_ip_literal(std::string_view host) { return is_ipv4_literal(host) || is_ipv6_literal(host); }

/// 127.0.0.0/8, ::1, ::ffff:127.x.y.z and the name "localhost".
bool is_loopback(std::string_view address);

/// A DNS host name (RFC 1123 labels: letters, digits, '-', 1-63 characters each, 253 in all).
bool is_dns_name(std::string_view host);

/// Parts of an upstream base URL.
struct HttpsUrl {
  std::string host;  ///< lower-cased; IPv6 literal without brackets
  std::uint16_t port = 443;
  std::string base_path;  ///< "" or "/a/b" (never a trailing '/')
};

/// Parses `https://host[:port][/path]`; host is a DNS name, an IPv4 literal or a bracketed IPv6 literal.
/// Refuses other schemes, user info, query, fragment, %-escapes and dot-segments in the path.
Parsed<HttpsUrl> parse_https_url(std::string_view url);

/// Parses a CIDR ("10.1.0.0/16", "fd00::/8"; a bare address is a /32 or /128); host bits set beyond the
/// prefix are an error (a likely typo: 10.1.2.3/16).
Parsed<IpNetwork> parse_cidr(std::string_view text);

/// Parses `http://host[:port][/]` (an egress proxy: plain http, no path, no user info).
struct HttpProxyUrl {
  std::string host;
  std::uint16_t port = 80;
};
Parsed<HttpProxyUrl> parse_proxy_url(std::string_view url);

/// Parses an L4 upstream `host:port` (port required, 1–65535; IPv6 in brackets; host lower-cased).
struct HostPort {
  std::string host;  ///< IPv6 literals without brackets
  std::uint16_t port = 0;
};
Parsed<HostPort> parse_host_port(std::string_view text);

/// A SHA-256 written as 64 hex digits, optionally as ':'-separated pairs; returns lower-case hex without
/// ':' or nullopt.
std::optional<std::string> normalise_sha256(std::string_view text);

}  // namespace orgproxy::config::detail
