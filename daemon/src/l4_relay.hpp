// The byte relay of an L4 session (tunnel, or SMTP/IMAP once STARTTLS is up): client socket ↔ TLS pipe,
// both directions at once, each closing on its own (field case C22).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "tls_pipe.hpp"

namespace orgproxy::daemon {

/// Rewrites upstream → client bytes on the way (the SMTP reply filter that hides STARTTLS). Gets each
/// chunk read, appends what to send to `out`; `at_end` is set once, after the last chunk.
using UpstreamFilter = std::function<void(std::string_view chunk, bool at_end, std::string& out)>;

struct RelayResult {
  std::uint64_t to_upstream = 0;  ///< client bytes relayed upstream
  std::uint64_t to_client = 0;    ///< upstream bytes relayed to the client (after any filter)
  bool idle_timeout = false;      ///< nothing moved either way for the idle timeout
  bool upstream_truncated = false;  ///< the upstream ended with a TCP FIN but no close_notify
  boost::system::error_code error;  ///< first failure that aborted both directions (none: both ended cleanly)
  std::string error_where;          ///< "reading the client", "writing upstream", ...
};

/// Relays until both directions ended: the client's FIN becomes close_notify + FIN upstream (and the
/// upstream's data keeps flowing back); the upstream's close_notify (or bare FIN) becomes shutdown(SHUT_WR)
/// towards the client (and the client's data keeps flowing up). Any error, or `idle` without a byte either
/// way, closes both at once. Never throws.
boost::asio::awaitable<RelayResult> relay_l4(boost::asio::ip::tcp::socket& client, TlsPipe& upstream,
                                             std::chrono::milliseconds idle, UpstreamFilter filter = {});

}  // namespace orgproxy::daemon
