#include "net.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace orgproxy::config::detail {

bool is_ipv4_literal(std::string_view host) {
  if (host.empty() || host.size() > 15) return false;
  in_addr a{};
  return inet_pton(AF_INET, std::string(host).c_str(), &a) == 1;
}

bool is_ipv6_literal(std::string_view host) {
  if (host.empty() || host.size() > 45) return false;
  in6_addr a{};
  return inet_pton(AF_INET6, std::string(host).c_str(), &a) == 1;
}

bool is_loopback(std::string_view address) {
  if (address == "localhost") return true;
  const std::string a(address);
  in_addr v4{};
  if (inet_pton(AF_INET, a.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, a.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

bool is_dns_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  char prev = '.';
  for (char c : host) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

namespace {

struct Authority {
  std::string host;
  std::uint16_t port = 0;
};

// host[:port] with a bracketed IPv6 literal; the error has no "'url': " prefix.
Parsed<Authority> parse_authority(std::string_view authority, std::uint16_t default_port) {
  auto bad = [](const std::string& why) { return Parsed<Authority>{std::nullopt, why}; };
  if (authority.find('@') != std::string_view::npos)
    return bad("user information in the URL is not allowed (credentials never go in a URL)");
  Authority out{{}, default_port};
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("IPv6 literal without its closing ']'");
    out.host = std::string(authority.substr(1, close - 1));
    if (!is_ipv6_literal(out.host)) return bad("'" + out.host + "' is not an IPv6 address");
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after the IPv6 literal");
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    const auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
      if (port_text.find(':') != std::string_view::npos)
        return bad("an IPv6 address must be written in brackets: https://[::1]:8443/");
    }
    if (out.host.empty()) return bad("no host");
    if (!is_ipv4_literal(out.host) && !is_dns_name(out.host))
      return bad("'" + out.host + "' is not a valid host name or IPv4 address");
  }
  for (char& c : out.host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (has_port) {
    if (port_text.empty()) return bad("empty port after ':'");
    auto p = parse_decimal(port_text, 1, 65535);
    if (!p.value) return bad("port " + p.error);
    out.port = static_cast<std::uint16_t>(*p.value);
  }
  return {std::move(out), {}};
}

// Splits "scheme://rest"; returns the lower-cased scheme or "" when there is no "://".
std::string scheme_of(std::string_view url, std::string_view& rest) {
  const auto end = url.find("://");
  if (end == std::string_view::npos) return {};
  std::string scheme(url.substr(0, end));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  rest = url.substr(end + 3);
  return scheme;
}

}  // namespace

Parsed<HttpsUrl> parse_https_url(std::string_view url) {
  const std::string u(url);
  auto bad = [&](const std::string& why) { return Parsed<HttpsUrl>{std::nullopt, "'" + u + "': " + why}; };
  std::string_view rest;
  const std::string scheme = scheme_of(url, rest);
  if (scheme.empty()) return bad("not a URL: write https://host[:port]/path");
  if (scheme != "https") return bad("upstreams are reached over mutual TLS: the scheme must be https, not " + scheme);
  const auto auth_end = rest.find_first_of("/?#");
  std::string_view path = auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);
  auto authority = parse_authority(rest.substr(0, auth_end), 443);
  if (!authority.value) return bad(authority.error);
  HttpsUrl out;
  out.host = std::move(authority.value->host);
  out.port = authority.value->port;
  if (path.find_first_of("?#") != std::string_view::npos) return bad("a base URL has no query or fragment");
  if (path.find('%') != std::string_view::npos)
    return bad("%-escapes are not allowed in the base path (write the path plainly)");
  for (char c : path)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\')
      return bad("the base path contains a space, control character or backslash");
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  // Dot-segments would let "/a/../b" mean something else than written.
  for (std::size_t pos = 0; pos < path.size();) {
    const auto next = path.find('/', pos + 1);
    const std::string_view seg = path.substr(pos + 1, next == std::string_view::npos ? path.npos : next - pos - 1);
    if (seg == "." || seg == "..") return bad("dot-segments ('.' or '..') are not allowed in the base path");
    if (seg.empty()) return bad("empty path segment ('//') in the base path");
    if (next == std::string_view::npos) break;
    pos = next;
  }
  out.base_path = std::string(path);
  return {std::move(out), {}};
}

Parsed<IpNetwork> parse_cidr(std::string_view text) {
  const std::string t(text);
  auto bad = [&](const std::string& why) { return Parsed<IpNetwork>{std::nullopt, "'" + t + "': " + why}; };
  const auto slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  IpNetwork c;
  c.text = t;
  if (in_addr v4{}; inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
    std::memcpy(c.bytes.data(), &v4, 4);
    c.prefix_len = 32;
  } else if (in6_addr v6{}; inet_pton(AF_INET6, addr.c_str(), &v6) == 1) {
    std::memcpy(c.bytes.data(), &v6, 16);
    c.v6 = true;
    c.prefix_len = 128;
  } else {
    return bad("not an IPv4 or IPv6 address (write e.g. 10.1.0.0/16 or fd00::/8)");
  }
  if (slash != std::string_view::npos) {
    auto p = parse_decimal(text.substr(slash + 1), 0, c.v6 ? 128 : 32);
    if (!p.value) return bad("prefix length " + p.error);
    c.prefix_len = static_cast<unsigned>(*p.value);
  }
  const unsigned total = c.v6 ? 128 : 32;
  for (unsigned bit = c.prefix_len; bit < total; ++bit)
    if (c.bytes[bit / 8] & (0x80 >> (bit % 8)))
      return bad("address bits are set beyond the /" + std::to_string(c.prefix_len) +
                 " prefix (write the network address)");
  return {c, {}};
}

Parsed<HttpProxyUrl> parse_proxy_url(std::string_view url) {
  const std::string u(url);
  auto bad = [&](const std::string& why) { return Parsed<HttpProxyUrl>{std::nullopt, "'" + u + "': " + why}; };
  std::string_view rest;
  const std::string scheme = scheme_of(url, rest);
  if (scheme != "http") return bad("an egress proxy is written http://host:port (HTTP CONNECT)");
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) return bad("a proxy URL has no path, query or fragment");
  auto authority = parse_authority(rest, 80);
  if (!authority.value) return bad(authority.error);
  return {HttpProxyUrl{std::move(authority.value->host), authority.value->port}, {}};
}

Parsed<HostPort> parse_host_port(std::string_view text) {
  const std::string t(text);
  auto bad = [&](const std::string& why) { return Parsed<HostPort>{std::nullopt, "'" + t + "': " + why}; };
  if (t.find("://") != std::string::npos) return bad("an L4 address is host:port, without a scheme");
  if (t.find_first_of("/?#") != std::string::npos) return bad("an L4 address is host:port, without a path");
  auto authority = parse_authority(text, 0);
  if (!authority.value) return bad(authority.error);
  if (authority.value->port == 0) return bad("the port is required (host:port)");
  return {HostPort{std::move(authority.value->host), authority.value->port}, {}};
}

std::optional<std::string> normalise_sha256(std::string_view text) {
  std::string hex;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ':') {
      // Separators only between pairs: "AB:CD", never "A:BCD" or a trailing ':'.
      if (hex.size() % 2 != 0 || hex.empty() || i + 1 == text.size()) return std::nullopt;
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (hex.size() != 64) return std::nullopt;
  return hex;
}

}  // namespace orgproxy::config::detail
