// Internal: the downstream (RIS-side) byte stream of a session, plain TCP or TLS over it. A tagged pair, not
// an interface: each read or write branches once on whether TLS is on (a predictable branch, no virtual
// call, no allocation), so the plain path costs what a bare beast::tcp_stream costs.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

#include <optional>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/downstream_tls.hpp"

namespace orgproxy::daemon {

/// A Beast AsyncReadStream/AsyncWriteStream over a downstream connection. `tcp()` (also reached through
/// beast::get_lowest_layer) carries the deadlines (`expires_after`) for both modes.
class DownstreamStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using tls_type = boost::asio::ssl::stream<boost::beast::tcp_stream&>;

  /// Plain HTTP over `socket`.
  explicit DownstreamStream(boost::asio::ip::tcp::socket socket) : tcp_(std::move(socket)) {}
  /// TLS over `socket` with the server context `*ctx` (which must outlive the stream), or plain when `ctx`
  /// is nullptr. The handshake is the caller's (accept_tls).
  DownstreamStream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context* ctx)
      : tcp_(std::move(socket)), tls_(ctx ? std::make_unique<tls_type>(tcp_, *ctx) : nullptr) {}
  DownstreamStream(const DownstreamStream&) = delete;
  DownstreamStream& operator=(const DownstreamStream&) = delete;

  executor_type get_executor() noexcept { return tcp_.get_executor(); }
  boost::beast::tcp_stream& tcp() noexcept { return tcp_; }
  /// For beast::get_lowest_layer.
  boost::beast::tcp_stream& next_layer() noexcept { return tcp_; }
  /// The TLS layer, or nullptr on a plain connection.
  tls_type* tls() noexcept { return tls_.get(); }
  boost::asio::ip::tcp::socket& socket() noexcept { return tcp_.socket(); }

  template <class Duration>
  void expires_after(Duration d) {
    tcp_.expires_after(d);
  }
  void expires_never() { tcp_.expires_never(); }
  void close() { tcp_.close(); }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (tls_)
            tls_->async_read_some(b, std::move(handler));
          else
            tcp_.async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (tls_)
            tls_->async_write_some(b, std::move(handler));
          else
            tcp_.async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

 private:
  boost::beast::tcp_stream tcp_;
  std::unique_ptr<tls_type> tls_;  ///< declared after tcp_: destroyed first
};

/// Outcome of a downstream TLS handshake.
struct TlsAccept {
  bool ok = false;
  std::optional<PeerCertificate> cert;  ///< the verified client certificate, when one was presented
};

/// Runs the server handshake of `down` (which must have TLS) within `listener.header_timeout`; a failure
/// (no or untrusted client certificate where required, TLS below 1.2, no common suite, no http/1.1 in
/// ALPN, timeout) is logged at info with the peer address and OpenSSL's reason. Never throws.
boost::asio::awaitable<TlsAccept> accept_tls(DownstreamStream& down, const config::Listener& listener);

}  // namespace orgproxy::daemon
