#include "tls_pipe.hpp"
#include "async_util.hpp"

#include <new>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/err.h>

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::size_t kNetworkReadBytes = 16 * 1024 + 512;  // one TLS record and its overhead
}  // namespace

TlsPipe::TlsPipe(asio::ip::tcp::socket socket, SslContextPtr ctx, TlsRole role)
    : socket_(std::move(socket)),
      ctx_(std::move(ctx)),
      ssl_(SSL_new(ctx_->native_handle())),
      read_buf_(kNetworkReadBytes),
      write_done_(socket_.get_executor()) {
  if (!ssl_) throw std::bad_alloc();
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (!in_ || !out_) {
    BIO_free(in_);
    BIO_free(out_);
    throw std::bad_alloc();
  }
  BIO_set_mem_eof_return(in_, -1);  // empty input means "want more", not end of stream
  SSL_set_bio(ssl_.get(), in_, out_);
  SSL_set_options(ssl_.get(), SSL_OP_NO_RENEGOTIATION);
  if (role == TlsRole::server)
    SSL_set_accept_state(ssl_.get());
  else
    SSL_set_connect_state(ssl_.get());
}

error_code TlsPipe::ssl_error(int kind) {
  if (unsigned long e = ERR_get_error(); e != 0)
    return error_code(static_cast<int>(e), asio::error::get_ssl_category());
  if (kind == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  return asio::error::connection_reset;  // SSL_ERROR_SYSCALL without a queued error: the stream broke
}

asio::awaitable<error_code> TlsPipe::flush() {
  for (;;) {
    if (writing_) {
      // The other direction is writing; it drains out_ completely before clearing the flag.
      write_done_.expires_at(asio::steady_timer::time_point::max());
      co_await write_done_.async_wait(nothrow);
      if (!socket_.is_open()) co_return asio::error::operation_aborted;
      continue;
    }
    const std::size_t pending = BIO_ctrl_pending(out_);
    if (pending == 0) co_return error_code{};
    write_buf_.resize(pending);
    BIO_read(out_, write_buf_.data(), static_cast<int>(pending));
    writing_ = true;
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(write_buf_), nothrow);
    writing_ = false;
    write_done_.cancel();
    if (ec) co_return ec;
  }
}

asio::awaitable<error_code> TlsPipe::fill() {
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(read_buf_), nothrow);
  if (n > 0) BIO_write(in_, read_buf_.data(), static_cast<int>(n));
  co_return n > 0 ? error_code{} : ec;
}

asio::awaitable<error_code> TlsPipe::handshake() {
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_.get());
    const int kind = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
    const bool want_read = kind == SSL_ERROR_WANT_READ;
    const error_code ec = r == 1 || want_read ? error_code{} : ssl_error(kind);
    // Our flight (or the alert explaining a failure) goes out before we wait for the peer.
    if (auto fec = co_await flush(); fec && (r == 1 || want_read)) co_return fec;
    if (r == 1) co_return error_code{};
    if (!want_read) co_return ec;
    if (auto rec = co_await fill()) co_return rec;
  }
}

asio::awaitable<std::pair<error_code, std::size_t>> TlsPipe::read_some(asio::mutable_buffer buf) {
  for (;;) {
    std::size_t n = 0;
    ERR_clear_error();
    const int r = SSL_read_ex(ssl_.get(), buf.data(), buf.size(), &n);
    const int kind = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
    const error_code ec = r == 1 || kind == SSL_ERROR_WANT_READ ? error_code{} : ssl_error(kind);
    // Reading can produce records of ours (a TLS 1.3 KeyUpdate answer, an alert).
    if (BIO_ctrl_pending(out_) > 0)
      if (auto fec = co_await flush(); fec && r == 1) co_return std::pair{fec, std::size_t{0}};
    if (r == 1) co_return std::pair{error_code{}, n};
    if (kind == SSL_ERROR_ZERO_RETURN) co_return std::pair{error_code(asio::error::eof), std::size_t{0}};
    if (kind != SSL_ERROR_WANT_READ) co_return std::pair{ec, std::size_t{0}};
    if (auto rec = co_await fill()) {
      if (rec == asio::error::eof) rec = asio::ssl::error::stream_truncated;
      co_return std::pair{rec, std::size_t{0}};
    }
  }
}

asio::awaitable<error_code> TlsPipe::write(asio::const_buffer buf) {
  std::size_t written = 0;
  ERR_clear_error();
  if (const int r = SSL_write_ex(ssl_.get(), buf.data(), buf.size(), &written); r != 1)
    co_return ssl_error(SSL_get_error(ssl_.get(), r));
  co_return co_await flush();
}

asio::awaitable<error_code> TlsPipe::close_write() {
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // queues close_notify; 0 = the peer's is still to come, which is the point
  ERR_clear_error();
  error_code ec = co_await flush();
  error_code sec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, sec);
  co_return ec ? ec : sec;
}

void TlsPipe::abort() {
  error_code ignored;
  socket_.close(ignored);
  write_done_.cancel();
}

}  // namespace orgproxy::daemon
