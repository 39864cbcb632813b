// The client side of a TLS connection with OpenSSL working straight on the non-blocking socket (a BIO on
// the file descriptor), for upstream connections. Unlike Asio's SSL stream (OpenSSL over a BIO pair, with
// four 17 KB buffers per connection and every byte copied twice more), each operation calls OpenSSL first
// and waits for the socket's readiness only when OpenSSL asks for it (try first, wait second). Idle
// connections hold no record buffers (release_buffers()).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <openssl/ssl.h>

namespace orgproxy::daemon {

/// A TLS client stream over one TCP socket, usable by Beast's HTTP algorithms (AsyncReadStream,
/// AsyncWriteStream) with any completion token. Also its own lowest layer for beast::get_lowest_layer():
/// expires_after/expires_at/expires_never, cancel, close and socket() keep beast::tcp_stream's timeout
/// semantics (a deadline applies to the operations pending when it passes: they end with
/// beast::error::timeout and the socket is closed; no timer runs while no operation waits).
/// Errors reported as Asio's SSL stream reports them: the peer's close_notify → asio::error::eof; a TCP
/// FIN or unexpected EOF without close_notify → asio::ssl::error::stream_truncated; socket errors as
/// system errors (connection_reset, broken_pipe...); TLS failures as asio::error::get_ssl_category()
/// codes carrying OpenSSL's error (reason in message()). One read and one write may be pending at once
/// (full-duplex relay), on one thread.
class TlsSocketStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using socket_type = boost::asio::ip::tcp::socket;
  using clock_type = std::chrono::steady_clock;

  /// A stream whose SSL object comes from `ctx` (SSL_new: the caller sets identity, SNI, session...
  /// on native_handle() before the handshake), in client mode, not yet attached to a socket. Throws
  /// boost::system::system_error when OpenSSL cannot allocate the connection.
  TlsSocketStream(const executor_type& ex, boost::asio::ssl::context& ctx);
  ~TlsSocketStream();
  TlsSocketStream(const TlsSocketStream&) = delete;
  TlsSocketStream& operator=(const TlsSocketStream&) = delete;

  executor_type get_executor() noexcept;
  /// The OpenSSL connection (owned by the stream).
  SSL* native_handle() const noexcept;
  /// The TCP socket (open once attached, closed after close() or a timeout).
  socket_type& socket() noexcept;
  const socket_type& socket() const noexcept;

  /// Takes a connected socket (e.g. beast::tcp_stream::release_socket() after connect_upstream) and
  /// makes it the transport of the TLS connection (non-blocking). Never throws: when the socket cannot be
  /// set up, it is closed and the handshake fails with bad_descriptor.
  void attach(socket_type&& socket);

  /// Deadline of the operations pending now or started later, as beast::tcp_stream::expires_after.
  void expires_after(clock_type::duration d);
  void expires_at(clock_type::time_point t);
  void expires_never();
  /// Ends the pending operations (operation_aborted); the connection stays usable only if nothing was
  /// half-done, as with a socket.
  void cancel();
  /// Closes the socket (pending operations end with operation_aborted). No close_notify: see async_shutdown.
  void close();

  /// True when OpenSSL holds received bytes not yet given to the application: decrypted (SSL_pending)
  /// or still encrypted (read ahead, SSL_has_pending).
  bool has_buffered_input() const noexcept;
  /// Frees OpenSSL's record buffers (about 34 KB) while the connection is idle; they come back on the
  /// next read or write. No effect when bytes are buffered.
  void release_buffers() noexcept;

  /// Reads some decrypted bytes into the first non-empty buffer of `buffers`. Completion:
  /// void(error_code, std::size_t).
  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b(*it);
      if (b.size() > 0) return start_io(Kind::read, b.data(), b.size(), std::forward<Token>(token));
    }
    return start_io(Kind::read, nullptr, 0, std::forward<Token>(token));
  }

  /// Writes some bytes of `buffers`: the first buffer, or up to one TLS record gathered from several
  /// small ones (one record instead of one per buffer, as beast::flat_stream does for Beast's SSL
  /// stream). Completion: void(error_code, std::size_t).
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    auto it = boost::asio::buffer_sequence_begin(buffers);
    const auto end = boost::asio::buffer_sequence_end(buffers);
    while (it != end && boost::asio::const_buffer(*it).size() == 0) ++it;
    if (it == end) return start_io(Kind::write, nullptr, 0, std::forward<Token>(token));
    boost::asio::const_buffer first(*it);
    auto next = it;
    ++next;
    if (first.size() < kRecordBytes && next != end) {
      const std::size_t n = boost::asio::buffer_copy(boost::asio::buffer(gather_buffer(), kRecordBytes), buffers);
      return start_io(Kind::write, gather_buffer(), n, std::forward<Token>(token));
    }
    return start_io(Kind::write, const_cast<void*>(first.data()), first.size(), std::forward<Token>(token));
  }

  /// The client handshake (SSL_do_handshake). Completion: void(error_code).
  template <class Token>
  auto async_handshake(Token&& token) {
    return start_simple(Kind::handshake, std::forward<Token>(token));
  }

  /// Sends close_notify and waits for the peer's (RFC 8446 §6.1). Completion: void(error_code).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return start_simple(Kind::shutdown, std::forward<Token>(token));
  }

 private:
  /// Plaintext of one TLS record: the most gathered into one write.
  static constexpr std::size_t kRecordBytes = 16 * 1024;
  enum class Kind { read, write, handshake, shutdown };
  enum class Step { done, want_read, want_write };
  struct Impl;

  char* gather_buffer();
  /// One OpenSSL call for `kind`; sets `ec` and `n` when done.
  Step perform(Kind kind, void* data, std::size_t size, std::size_t& n, boost::system::error_code& ec);
  /// Before waiting for readiness: false (with ec = timeout, socket closed) when the deadline has passed;
  /// otherwise counts the wait and makes sure the timer covers the deadline.
  bool begin_wait(boost::system::error_code& ec);
  /// After a wait ended with `wait_ec`: the error the operation reports (timeout when the deadline ended it).
  boost::system::error_code end_wait(const boost::system::error_code& wait_ec);

  /// State machine of one operation: try, wait for readiness when OpenSSL asks, try again. A result
  /// available at once is posted, never delivered from inside the initiating call. `WithSize`: the
  /// completion carries the byte count (read, write) or only the error (handshake, shutdown).
  template <bool WithSize>
  struct Op {
    TlsSocketStream* s;
    Kind kind;
    void* data = nullptr;
    std::size_t size = 0;
    enum class State { starting, waiting, posted } state = State::starting;
    boost::system::error_code ec{};
    std::size_t n = 0;

    template <class Self>
    void finish(Self& self) {
      if constexpr (WithSize) {
        self.complete(ec, n);
      } else {
        self.complete(ec);
      }
    }

    template <class Self>
    void operator()(Self& self, boost::system::error_code wait_ec = {}) {
      if (state == State::posted) return finish(self);
      if (state == State::waiting) {
        ec = s->end_wait(wait_ec);
        if (ec) {
          n = 0;
          return finish(self);
        }
      }
      // A read or write of nothing completes at once without touching OpenSSL.
      const bool no_bytes = (kind == Kind::read || kind == Kind::write) && size == 0;
      Step step = no_bytes ? Step::done : s->perform(kind, data, size, n, ec);
      if (step != Step::done && !s->begin_wait(ec)) step = Step::done;
      if (step == Step::done) {
        if (state == State::starting) {
          state = State::posted;
          boost::asio::post(std::move(self));
        } else {
          finish(self);
        }
        return;
      }
      state = State::waiting;
      s->socket().async_wait(step == Step::want_read ? socket_type::wait_read : socket_type::wait_write,
                             std::move(self));
    }
  };

  template <class Token>
  auto start_io(Kind kind, void* data, std::size_t size, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<true>{this, kind, data, size}, token, socket());
  }

  template <class Token>
  auto start_simple(Kind kind, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(Op<false>{this, kind}, token,
                                                                              socket());
  }

  std::shared_ptr<Impl> impl_;
};

}  // namespace orgproxy::daemon
