// Test fixture for TlsSocketStream: a real TLS 1.3 OpenSSL server on loopback, on its own thread, whose
// script chooses each record, close_notify, FIN, RST, KeyUpdate and ticket; a client context trusting
// its test PKI; helpers to run coroutines on the test's io_context.
#pragma once
#include <gtest/gtest.h>

#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "orgproxy/daemon/tls_socket_stream.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace orgproxy::daemon::tls_stream_testing {

namespace asio = boost::asio;
namespace tk = orgproxy::testkit;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto tuple = asio::as_tuple(asio::use_awaitable);

// Byte `i` of a test body: a pattern that shows a lost, repeated or reordered byte.
inline char pattern(std::size_t i, unsigned seed) { return static_cast<char>((i * 131 + seed + i / 4093) % 251); }

inline bool ssl_read_exact(SSL* ssl, char* out, std::size_t n) {
  while (n > 0) {
    std::size_t got = 0;
    if (SSL_read_ex(ssl, out, n, &got) != 1) return false;
    out += got;
    n -= got;
  }
  return true;
}

inline bool ssl_write_all(SSL* ssl, const std::string& s) {
  std::size_t done = 0;
  return SSL_write_ex(ssl, s.data(), s.size(), &done) == 1 && done == s.size();
}

// One-connection TLS 1.3 server on 127.0.0.1 (ephemeral port). The script runs on the server's thread with
// blocking OpenSSL calls (30 s socket timeouts so a broken test cannot hang); `fd` may be closed by the
// script (set it to -1). The destructor waits for the script.
class ScriptedServer {
 public:
  using Script = std::function<void(SSL*, int& fd)>;
  ScriptedServer(const tk::IssuedFiles& cert, Script script, bool handshake = true, int num_tickets = 2)
      : ctx_(SSL_CTX_new(TLS_server_method())) {
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(ctx_, num_tickets);
    if (SSL_CTX_use_certificate_chain_file(ctx_, cert.chain.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, cert.key.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("server certificate does not load");
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot listen on loopback");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, script = std::move(script), handshake] {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 30000) != 1) return;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      timeval tv{30, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (!handshake || SSL_accept(ssl) == 1) script(ssl, fd);
      else handshake_failed_ = true;
      SSL_free(ssl);
      if (fd >= 0) ::close(fd);
    });
  }
  ~ScriptedServer() {
    join();
    ::close(listen_fd_);
    SSL_CTX_free(ctx_);
  }
  /// Waits for the script to return.
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return port_; }
  bool handshake_failed() const { return handshake_failed_; }

 private:
  SSL_CTX* ctx_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> handshake_failed_{false};
  std::thread thread_;
};

class TlsSocketStreamTest : public ::testing::Test {
 protected:
  TlsSocketStreamTest() : pki_(tmp_.path() / "pki") {
    server_cert_ = pki_.issue_server_cert("server", {"localhost"}, {"127.0.0.1"});
    client_ctx_.load_verify_file(pki_.ca_bundle_pem().string());
    client_ctx_.set_verify_mode(asio::ssl::verify_peer);
  }

  // A stream connected (not yet handshaken) to `port`, verifying the name "localhost".
  std::unique_ptr<TlsSocketStream> connect(std::uint16_t port) {
    tcp::socket sock(ioc_);
    sock.connect({asio::ip::address_v4::loopback(), port});
    auto s = std::make_unique<TlsSocketStream>(ioc_.get_executor(), client_ctx_);
    s->attach(std::move(sock));
    SSL_set1_host(s->native_handle(), "localhost");
    return s;
  }

  // Runs `body` as a coroutine on the test's io_context until it returns.
  template <class T>
  T run(std::function<asio::awaitable<T>()> body) {
    auto f = asio::co_spawn(ioc_, body(), asio::use_future);
    ioc_.restart();
    // Until the coroutine is done, not until no work is left: a deadline's timer may still be armed.
    while (f.wait_for(0s) != std::future_status::ready) ioc_.run_one();
    return f.get();
  }

  std::unique_ptr<TlsSocketStream> connected(std::uint16_t port) {
    auto s = connect(port);
    error_code ec = run<error_code>([&]() -> asio::awaitable<error_code> {
      s->expires_after(30s);
      auto [e] = co_await s->async_handshake(tuple);
      co_return e;
    });
    EXPECT_FALSE(ec) << ec.message();
    return s;
  }

  // Reads until `n` bytes or an error; returns the bytes and sets `ec`.
  std::string read_some_bytes(TlsSocketStream& s, std::size_t n, error_code& ec) {
    return run<std::string>([&]() -> asio::awaitable<std::string> {
      std::string out(n, '\0');
      auto [e, got] = co_await asio::async_read(s, asio::buffer(out), tuple);
      ec = e;
      out.resize(got);
      co_return out;
    });
  }

  tk::TempDir tmp_{"tls-socket-stream"};
  tk::TestPki pki_;
  tk::IssuedFiles server_cert_;
  asio::io_context ioc_;
  asio::ssl::context client_ctx_{asio::ssl::context::tls_client};
};

}  // namespace orgproxy::daemon::tls_stream_testing
