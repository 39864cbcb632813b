// Internal: reaching a host name's addresses. Names are resolved at every new connection (no cache of our
// own), and every address the resolver returns is tried in turn before a dial fails.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace orgproxy::daemon {

/// Outcome of connect_in_turn().
struct ConnectOutcome {
  boost::system::error_code ec;  ///< none on success; beast::error::timeout when the budget ran out
  std::string detail;            ///< on failure: "resolve NAME: why" or every address tried with its error
  boost::asio::ip::tcp::endpoint endpoint;  ///< the address connected to
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

}  // namespace orgproxy::daemon
