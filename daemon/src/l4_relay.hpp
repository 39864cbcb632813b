// The byte relay of an L4 session (tunnel, or SMTP/IMAP once STARTTLS is up): the RIS side (plaintext, or
// TLS with the listener's certificate) ↔ the upstream TLS pipe, both directions at once, each closing on
// its own (field case C22).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "orgproxy/daemon/starttls_guard.hpp"
#include "tls_pipe.hpp"

namespace orgproxy::daemon {

/// The RIS side of an L4 connection: the accepted TCP socket, in plaintext until start_tls() hands it to a
/// server TlsPipe (implicit TLS on a tunnel listener, or after the client's STARTTLS). The socket passed
/// in must outlive the link; after start_tls() it is left closed (moved from).
class ClientLink {
 public:
  explicit ClientLink(boost::asio::ip::tcp::socket& socket) : plain_(socket) {}
  ClientLink(const ClientLink&) = delete;
  ClientLink& operator=(const ClientLink&) = delete;

  /// Moves the socket into a TLS server with the listener context `ctx`; the caller runs handshake().
  /// Throws std::bad_alloc only.
  TlsPipe& start_tls(SslContextPtr ctx) {
    tls_ = std::make_unique<TlsPipe>(std::move(plain_), std::move(ctx), TlsRole::server);
    return *tls_;
  }
  /// The TLS layer, or nullptr while plaintext.
  TlsPipe* tls() const { return tls_.get(); }
  boost::asio::ip::tcp::socket& socket() { return tls_ ? tls_->socket() : plain_; }
  bool is_open() { return socket().is_open(); }

  /// Reads bytes (n > 0). The client's end: eof (FIN, or TLS close_notify); ssl::error::stream_truncated
  /// for a FIN without close_notify on TLS.
  boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(boost::asio::mutable_buffer b);
  /// Writes all of `b` (encrypted when TLS is on).
  boost::asio::awaitable<boost::system::error_code> write(boost::asio::const_buffer b);
  /// Ends our direction: FIN (plaintext), or close_notify then FIN (TLS); reading stays possible.
  boost::asio::awaitable<boost::system::error_code> close_write();
  /// Closes at once; pending operations end with operation_aborted.
  void abort();

 private:
  boost::asio::ip::tcp::socket& plain_;
  std::unique_ptr<TlsPipe> tls_;
};

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

/// Relays until both directions ended: the client's FIN (or close_notify) becomes close_notify + FIN upstream (and the
/// upstream's data keeps flowing back); the upstream's close_notify (or bare FIN) becomes shutdown(SHUT_WR)
/// (after close_notify when the client link is TLS) towards the client (and the client's data keeps flowing up). Any error, or `idle` without a byte either
/// way, closes both at once. `guard`, when given (mail modes), sees both directions: a STARTTLS command is
/// kept from the upstream and answered by orgproxy in its place in the reply order. Never throws.
boost::asio::awaitable<RelayResult> relay_l4(ClientLink& client, TlsPipe& upstream,
                                             std::chrono::milliseconds idle, UpstreamFilter filter = {},
                                             StarttlsGuard* guard = nullptr);

}  // namespace orgproxy::daemon
