// Opening a tunnel to an upstream through an egress HTTP proxy (HTTP CONNECT, RFC 9110 §9.3.6),
// as practice and hospital networks require. The TLS handshake with the site's identity then runs inside
// the tunnel, end to end with the upstream: the proxy sees only the CONNECT line and ciphertext.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace orgproxy::daemon {

/// An upstream's egress proxy as the dial needs it, prepared once per snapshot.
struct EgressProxy {
  std::string url;         ///< as configured (for logs; it carries no credentials)
  std::string host;        ///< proxy host, IPv6 without brackets
  std::string port_text;   ///< proxy port, for the resolver
  std::string target;      ///< CONNECT request-target and Host: upstream host:port, IPv6 bracketed
  std::string authorization;  ///< "Basic <base64>" or "" — never logged
  std::chrono::milliseconds connect_timeout{5000};  ///< TCP connect to the proxy + its CONNECT answer
};

/// Reads the proxy credentials file: its first line `user:password` (a trailing CR/LF is dropped)
/// → "Basic " + base64(user:password) (RFC 7617). Throws std::runtime_error naming the file (never its
/// contents) when it cannot be read, is empty or has no ':'.
std::string read_proxy_authorization(const std::string& credentials_file);

/// Outcome of open_tunnel().
struct TunnelOutcome {
  boost::system::error_code ec;  ///< none: `stream` is now a byte pipe to the upstream
  bool timed_out = false;        ///< connect_timeout passed (ec is then beast::error::timeout)
  int proxy_status = 0;          ///< the proxy's status code when it answered (407, 502, ...), else 0
  std::string detail;            ///< for the log line: proxy URL, target, status line or error; no credentials
};

/// Connects `stream` to `proxy` (every proxy address in turn) and asks it for a tunnel to proxy.target:
/// `CONNECT target HTTP/1.1`, `Host: target`, `Proxy-Authorization` when configured. Success is a 2xx
/// answer (RFC 9110 §9.3.6) whose head ends the bytes received. Any other status, a malformed or oversized
/// (> 16 KiB) answer, or bytes after a 2xx head fail the tunnel. All of it within proxy.connect_timeout.
/// Never throws.
boost::asio::awaitable<TunnelOutcome> open_tunnel(boost::beast::tcp_stream& stream, const EgressProxy& proxy);

}  // namespace orgproxy::daemon
