#include "orgproxy/daemon/tls_socket_stream.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/system/system_error.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// A BIO on the socket's descriptor. Not BIO_s_socket (SSL_set_fd): that one writes with write(2), which
// raises SIGPIPE on a connection the peer reset; send(2) with MSG_NOSIGNAL returns EPIPE instead, as
// Asio's own sockets do. The descriptor is kept in the BIO's data; the socket object owns it.
int fd_of(BIO* b) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b))); }

bool transient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* written) {
  BIO_clear_retry_flags(b);
  const ssize_t r = ::send(fd_of(b), data, len, MSG_NOSIGNAL);
  if (r >= 0) {
    *written = static_cast<std::size_t>(r);
    return 1;
  }
  if (transient(errno)) BIO_set_retry_write(b);
  return 0;
}

int bio_read(BIO* b, char* data, std::size_t len, std::size_t* read) {
  BIO_clear_retry_flags(b);
  const ssize_t r = ::recv(fd_of(b), data, len, 0);
  if (r > 0) {
    *read = static_cast<std::size_t>(r);
    return 1;
  }
  if (r == 0) {
    BIO_set_flags(b, BIO_FLAGS_IN_EOF);  // OpenSSL tells an EOF from an error by BIO_eof()
  } else if (transient(errno)) {
    BIO_set_retry_read(b);
  }
  return 0;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // nothing is buffered here
    case BIO_CTRL_EOF:
      return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_data(b, reinterpret_cast<void*>(std::intptr_t{-1}));
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* fd_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "orgproxy socket");
    if (!m) return m;
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

}  // namespace

struct TlsSocketStream::Impl {
  Impl(const executor_type& ex, SSL* s) : ssl(s), socket(ex), timer(ex) {}
  ~Impl() { SSL_free(ssl); }

  SSL* ssl;
  socket_type socket;
  /// One timer per connection, armed only while an operation waits with a deadline set; a later deadline
  /// than the armed one is noticed when the timer fires (no re-arming per request).
  asio::steady_timer timer;
  clock_type::time_point deadline = clock_type::time_point::max();
  clock_type::time_point armed_at = clock_type::time_point::max();
  bool armed = false;
  bool timed_out = false;
  int waits = 0;  ///< readiness waits pending (a read and a write at most)
  std::unique_ptr<char[]> gather;

  void arm(const std::shared_ptr<Impl>& self) {
    armed = true;
    armed_at = deadline;
    timer.expires_at(deadline);
    timer.async_wait([weak = std::weak_ptr<Impl>(self)](const error_code& ec) {
      if (ec) return;  // re-armed or destroyed: a newer wait (or nobody) is in charge
      if (auto impl = weak.lock()) impl->on_timer(impl);
    });
  }

  void on_timer(const std::shared_ptr<Impl>& self) {
    armed = false;
    if (deadline == clock_type::time_point::max()) return;
    if (deadline > clock_type::now()) {
      if (waits > 0) arm(self);
      return;
    }
    if (waits == 0) return;  // nothing pending: the next operation to wait finds the deadline passed
    expire();
  }

  // As beast::tcp_stream: the operations pending at the deadline end with timeout and the socket closes.
  void expire() {
    timed_out = true;
    error_code ignored;
    socket.close(ignored);
  }
};

TlsSocketStream::TlsSocketStream(const executor_type& ex, asio::ssl::context& ctx) {
  SSL* ssl = SSL_new(ctx.native_handle());
  if (!ssl) {
    throw boost::system::system_error(error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category()),
                                      "SSL_new");
  }
  impl_ = std::make_shared<Impl>(ex, ssl);
  // Partial writes give async_write_some semantics (a record at a time); the buffer may move between a
  // WANT_WRITE and its retry (the gather buffer, the caller's next buffer); read ahead takes what the
  // socket holds in one recv instead of a header read and a body read per record.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_read_ahead(ssl, 1);
  SSL_set_connect_state(ssl);
}

// The timer goes with the Impl: its pending wait ends with operation_aborted, and a wait that fired
// meanwhile finds no Impl behind its weak pointer.
TlsSocketStream::~TlsSocketStream() = default;

TlsSocketStream::executor_type TlsSocketStream::get_executor() noexcept { return impl_->socket.get_executor(); }
SSL* TlsSocketStream::native_handle() const noexcept { return impl_->ssl; }
TlsSocketStream::socket_type& TlsSocketStream::socket() noexcept { return impl_->socket; }
const TlsSocketStream::socket_type& TlsSocketStream::socket() const noexcept { return impl_->socket; }

void TlsSocketStream::attach(socket_type&& socket) {
  impl_->socket = std::move(socket);
  // OpenSSL calls recv/send itself: they must never block the worker (a socket connected synchronously
  // is still in blocking mode).
  error_code ec;
  impl_->socket.non_blocking(true, ec);
  if (ec) impl_->socket.close(ec);  // the handshake then fails with bad_descriptor
  BIO* bio = BIO_new(fd_bio_method());
  if (!bio) {
    impl_->socket.close(ec);
    return;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(impl_->socket.native_handle())));
  SSL_set_bio(impl_->ssl, bio, bio);
}

void TlsSocketStream::expires_after(clock_type::duration d) { expires_at(clock_type::now() + d); }

void TlsSocketStream::expires_at(clock_type::time_point t) {
  Impl& i = *impl_;
  i.deadline = t;
  i.timed_out = false;
  // A pending wait must be covered at once when the new deadline comes before the armed one.
  if (i.waits > 0 && (!i.armed || i.armed_at > t)) i.arm(impl_);
}

void TlsSocketStream::expires_never() {
  Impl& i = *impl_;
  i.deadline = clock_type::time_point::max();
  i.timed_out = false;
  // No timer left behind on an idle (pooled) connection.
  if (i.armed) {
    i.timer.cancel();
    i.armed = false;
  }
}

void TlsSocketStream::cancel() {
  error_code ignored;
  impl_->socket.cancel(ignored);
}

void TlsSocketStream::close() {
  error_code ignored;
  impl_->socket.close(ignored);
  if (impl_->armed) {
    impl_->timer.cancel();
    impl_->armed = false;
  }
}

bool TlsSocketStream::has_buffered_input() const noexcept {
  return SSL_pending(impl_->ssl) > 0 || SSL_has_pending(impl_->ssl) == 1;
}

void TlsSocketStream::release_buffers() noexcept {
  if (!has_buffered_input()) SSL_free_buffers(impl_->ssl);
  impl_->gather.reset();
}

char* TlsSocketStream::gather_buffer() {
  if (!impl_->gather) impl_->gather = std::make_unique<char[]>(kRecordBytes);
  return impl_->gather.get();
}

TlsSocketStream::Step TlsSocketStream::perform(Kind kind, void* data, std::size_t size, std::size_t& n,
                                               error_code& ec) {
  Impl& i = *impl_;
  n = 0;
  if (!i.socket.is_open()) {
    // Never call OpenSSL on a closed socket: its descriptor number may already belong to another one.
    ec = i.timed_out ? error_code(boost::beast::error::timeout) : error_code(asio::error::bad_descriptor);
    return Step::done;
  }
  // SSL_get_error() reads the thread's error queue: it must hold nothing from an earlier call. Peeking
  // first spares the clearing loop in the usual case of an empty queue.
  if (ERR_peek_error() != 0) ERR_clear_error();
  errno = 0;
  int r = 0;
  switch (kind) {
    case Kind::read:
      r = SSL_read_ex(i.ssl, data, size, &n);
      break;
    case Kind::write:
      r = SSL_write_ex(i.ssl, data, size, &n);
      break;
    case Kind::handshake:
      r = SSL_do_handshake(i.ssl);
      break;
    case Kind::shutdown:
      r = SSL_shutdown(i.ssl);            // sends close_notify (0: the peer's not received yet)
      if (r == 0) r = SSL_shutdown(i.ssl);  // reads the peer's
      break;
  }
  const int sys_errno = errno;
  if (r == 1) {
    ec = {};
    return Step::done;
  }
  n = 0;
  switch (SSL_get_error(i.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return Step::want_read;
    case SSL_ERROR_WANT_WRITE:
      return Step::want_write;
    case SSL_ERROR_ZERO_RETURN:
      ec = asio::error::eof;
      return Step::done;
    case SSL_ERROR_SYSCALL: {
      if (unsigned long e = ERR_get_error(); e != 0) {
        ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      } else if (sys_errno != 0) {
        ec = error_code(sys_errno, asio::error::get_system_category());
      } else {
        ec = asio::ssl::error::stream_truncated;  // EOF in the middle of the TLS stream
      }
      ERR_clear_error();
      return Step::done;
    }
    case SSL_ERROR_SSL: {
      const unsigned long e = ERR_get_error();
      if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        ec = asio::ssl::error::stream_truncated;  // the peer's FIN without close_notify (OpenSSL 3)
      else
        ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      ERR_clear_error();
      return Step::done;
    }
    default:
      ec = asio::ssl::error::unspecified_system_error;
      ERR_clear_error();
      return Step::done;
  }
}

bool TlsSocketStream::begin_wait(error_code& ec) {
  Impl& i = *impl_;
  if (i.deadline != clock_type::time_point::max()) {
    if (i.deadline <= clock_type::now()) {
      i.expire();
      ec = boost::beast::error::timeout;
      return false;
    }
    if (!i.armed || i.armed_at > i.deadline) {
      ++i.waits;
      i.arm(impl_);
      return true;
    }
  }
  ++i.waits;
  return true;
}

error_code TlsSocketStream::end_wait(const error_code& wait_ec) {
  Impl& i = *impl_;
  --i.waits;
  if (!wait_ec) return {};
  if (i.timed_out) return boost::beast::error::timeout;
  return wait_ec;
}

}  // namespace orgproxy::daemon
