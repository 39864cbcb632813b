// A TLS client (upstream) or server (the RIS side of an L4 listener with `tls`) over a connected TCP
// socket, driven through memory BIOs. Unlike asio::ssl::stream, each direction closes on its own (field
// case C22): close_write() sends close_notify and a TCP FIN while read_some() keeps returning the peer's
// data until its own close_notify or FIN. Used on both sides of the L4 tunnel and STARTTLS listeners;
// HTTP keeps Beast's ssl_stream (pooled connections, no half-close).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <openssl/ssl.h>

#include "orgproxy/daemon/tls_context_cache.hpp"

namespace orgproxy::daemon {

struct SslDeleter {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};

/// Which end of the handshake the pipe plays.
enum class TlsRole { client, server };

class TlsPipe {
 public:
  /// Takes the connected `socket`; `ctx` (the site identity's client context for the upstream, or the
  /// listener's server context for the RIS side) is kept alive as long as the pipe. Renegotiation is
  /// refused (SSL_OP_NO_RENEGOTIATION) so that a write never has to read. Throws std::bad_alloc only.
  TlsPipe(boost::asio::ip::tcp::socket socket, SslContextPtr ctx, TlsRole role = TlsRole::client);
  TlsPipe(const TlsPipe&) = delete;
  TlsPipe& operator=(const TlsPipe&) = delete;

  SSL* ssl() const { return ssl_.get(); }
  boost::asio::ip::tcp::socket& socket() { return socket_; }

  /// The handshake of the pipe's role (client: SNI, verification name and offered session are set on
  /// ssl() beforehand; server: the context's certificate, and client-certificate policy).
  /// Errors: the socket's (eof = closed during the handshake) or the SSL category (certificate, alert).
  boost::asio::awaitable<boost::system::error_code> handshake();

  /// Reads decrypted bytes into `buf` (n > 0). At the end: asio::error::eof after the peer's close_notify,
  /// ssl::error::stream_truncated after a TCP FIN without it; other errors as for handshake().
  boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(boost::asio::mutable_buffer buf);

  /// Encrypts and writes all of `buf` (returns once it is handed to the kernel: back-pressure).
  boost::asio::awaitable<boost::system::error_code> write(boost::asio::const_buffer buf);

  /// Ends our direction: close_notify, then TCP shutdown(SHUT_WR). Reading stays possible (TLS 1.3
  /// half-close, RFC 8446 §6.1; a TLS 1.2 peer may answer with its own close_notify and stop).
  boost::asio::awaitable<boost::system::error_code> close_write();

  /// Closes the socket at once (pending operations end with operation_aborted).
  void abort();

 private:
  boost::asio::awaitable<boost::system::error_code> flush();
  boost::asio::awaitable<boost::system::error_code> fill();
  boost::system::error_code ssl_error(int ssl_get_error_kind);

  boost::asio::ip::tcp::socket socket_;
  SslContextPtr ctx_;
  std::unique_ptr<SSL, SslDeleter> ssl_;
  BIO* in_ = nullptr;   // network → OpenSSL (owned by ssl_)
  BIO* out_ = nullptr;  // OpenSSL → network (owned by ssl_)
  std::vector<char> read_buf_;
  std::vector<char> write_buf_;
  bool writing_ = false;                   // one socket write at a time, shared by both directions
  boost::asio::steady_timer write_done_;   // wakes a direction waiting for the other's write
};

}  // namespace orgproxy::daemon
