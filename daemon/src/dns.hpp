// Internal: reaching a host name's addresses. Names are resolved at every new connection (no cache of our
// own), and every address the resolver returns is tried in turn before a dial fails.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "orgproxy/daemon/egress_proxy.hpp"

namespace orgproxy::daemon {

/// Outcome of connect_in_turn().
struct ConnectOutcome {
  boost::system::error_code ec;  ///< none on success; beast::error::timeout when the budget ran out
  std::string detail;            ///< on failure: "resolve NAME: why" or every address tried with its error
  boost::asio::ip::tcp::endpoint endpoint;  ///< the address connected to (the proxy's when tunnelled)
  int proxy_status = 0;  ///< through an egress proxy: its answer's status (407, 502, ...) when it answered
};

/// Resolves `host` (a DNS name or an IP literal, IPv6 without brackets) and `port` with getaddrinfo (via
/// the Asio resolver), then connects `stream` to each returned address in the resolver's order (RFC 6724
/// ordering) until one accepts. `budget` bounds the connects together: each address gets an equal share of
/// what is left, so an address that drops SYNs cannot use up the time of the live ones after it.
/// getaddrinfo gives no record TTLs: resolving at every new connection follows the system resolver,
/// which keeps its cache per TTL (nscd, systemd-resolved), so a changed record reaches the next dial.
/// Never throws; a resolver failure sets ec and detail "resolve HOST: why".
boost::asio::awaitable<ConnectOutcome> connect_in_turn(boost::beast::tcp_stream& stream, const std::string& host,
                                                       const std::string& port,
                                                       std::chrono::milliseconds budget);

/// The one dial of every upstream connection, HTTP forwarding and L4 listeners alike: through `proxy`
/// when the upstream has an egress proxy (open_tunnel: every proxy address in turn, then CONNECT
/// host:port, all within the proxy's connect_timeout), else straight to `host`:`port` with
/// connect_in_turn() within `connect_timeout`. On success `stream` is a TCP byte pipe to the upstream
/// (TCP_NODELAY set, no expiry left on it). Errors: ec = beast::error::timeout when the budget ran out
/// (→ upstream_timeout), any other ec → upstream_connect; detail names the addresses or the proxy and its
/// status line, never the proxy credentials. Never throws.
boost::asio::awaitable<ConnectOutcome> connect_upstream(boost::beast::tcp_stream& stream, const std::string& host,
                                                        const std::string& port,
                                                        std::chrono::milliseconds connect_timeout,
                                                        const EgressProxy* proxy);

}  // namespace orgproxy::daemon
