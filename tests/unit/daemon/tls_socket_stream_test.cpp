// TlsSocketStream (OpenSSL on the upstream socket) against a real TLS 1.3 server on loopback: an OpenSSL
// server on its own thread whose script chooses each record, close_notify, FIN, RST, KeyUpdate and ticket.
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

namespace orgproxy::daemon {
namespace {

namespace asio = boost::asio;
namespace tk = orgproxy::testkit;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto tuple = asio::as_tuple(asio::use_awaitable);

// Byte `i` of a test body: a pattern that shows a lost, repeated or reordered byte.
char pattern(std::size_t i, unsigned seed) { return static_cast<char>((i * 131 + seed + i / 4093) % 251); }

bool ssl_read_exact(SSL* ssl, char* out, std::size_t n) {
  while (n > 0) {
    std::size_t got = 0;
    if (SSL_read_ex(ssl, out, n, &got) != 1) return false;
    out += got;
    n -= got;
  }
  return true;
}

bool ssl_write_all(SSL* ssl, const std::string& s) {
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

TEST_F(TlsSocketStreamTest, large_bodies_cross_both_ways_intact_with_partial_writes) {
  constexpr std::size_t kBody = 8 * 1024 * 1024;
  const std::string head = "PUT /x HTTP/1.1\r\n";
  std::atomic<bool> upload_intact{false};
  ScriptedServer server(server_cert_, [&](SSL* ssl, int&) {
    std::string got(head.size() + kBody, '\0');
    if (!ssl_read_exact(ssl, got.data(), got.size())) return;
    bool ok = got.compare(0, head.size(), head) == 0;
    for (std::size_t i = 0; ok && i < kBody; ++i) ok = got[head.size() + i] == pattern(i, 1);
    upload_intact = ok;
    std::string down(kBody, '\0');
    for (std::size_t i = 0; i < kBody; ++i) down[i] = pattern(i, 2);
    for (std::size_t off = 0; off < kBody; off += 100000)
      if (!ssl_write_all(ssl, down.substr(off, std::min<std::size_t>(100000, kBody - off)))) return;
    SSL_shutdown(ssl);
  });
  auto s = connected(server.port());
  std::vector<char> up(kBody);
  for (std::size_t i = 0; i < kBody; ++i) up[i] = pattern(i, 1);
  // Small head pieces first (gathered into one record), then the large body (a record per write_some).
  const std::array<asio::const_buffer, 4> pieces{asio::buffer(head.data(), 4), asio::buffer(head.data() + 4, 3),
                                                 asio::buffer(head.data() + 7, head.size() - 7),
                                                 asio::buffer(up)};
  auto [wec, written] = run<std::tuple<error_code, std::size_t>>(
      [&]() -> asio::awaitable<std::tuple<error_code, std::size_t>> {
        s->expires_after(60s);
        co_return co_await asio::async_write(*s, pieces, tuple);
      });
  ASSERT_FALSE(wec) << wec.message();
  EXPECT_EQ(written, head.size() + kBody);
  error_code rec;
  std::string down = read_some_bytes(*s, kBody + 1, rec);
  EXPECT_EQ(rec, asio::error::eof) << rec.message();  // the server's close_notify after the body
  ASSERT_EQ(down.size(), kBody);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < kBody; ++i) bad += down[i] != pattern(i, 2);
  EXPECT_EQ(bad, 0u);
  s->close();
  server.join();
  EXPECT_TRUE(upload_intact.load());
}


TEST_F(TlsSocketStreamTest, peer_close_notify_mid_read_reports_eof) {
  ScriptedServer server(server_cert_, [](SSL* ssl, int&) {
    ssl_write_all(ssl, "hello");
    SSL_shutdown(ssl);
  });
  auto s = connected(server.port());
  error_code ec;
  EXPECT_EQ(read_some_bytes(*s, 5, ec), "hello");  // positive control: the bytes before the end
  EXPECT_FALSE(ec);
  read_some_bytes(*s, 1, ec);
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
}

TEST_F(TlsSocketStreamTest, peer_fin_without_close_notify_reports_stream_truncated) {
  ScriptedServer server(server_cert_, [](SSL* ssl, int& fd) {
    ssl_write_all(ssl, "hello");
    ::shutdown(fd, SHUT_WR);
    char c;
    SSL_read(ssl, &c, 1);  // until the client closes
  });
  auto s = connected(server.port());
  error_code ec;
  EXPECT_EQ(read_some_bytes(*s, 5, ec), "hello");
  EXPECT_FALSE(ec);
  read_some_bytes(*s, 1, ec);
  EXPECT_EQ(ec, asio::ssl::error::stream_truncated) << ec.message();
  s->close();
}

TEST_F(TlsSocketStreamTest, peer_reset_mid_read_reports_connection_reset) {
  ScriptedServer server(server_cert_, [](SSL* ssl, int& fd) {
    ssl_write_all(ssl, "hello");
    char go[2];
    if (!ssl_read_exact(ssl, go, 2)) return;  // the client has read "hello"
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);  // RST
    fd = -1;
  });
  auto s = connected(server.port());
  error_code ec;
  EXPECT_EQ(read_some_bytes(*s, 5, ec), "hello");
  EXPECT_FALSE(ec);
  run<int>([&]() -> asio::awaitable<int> {
    co_await asio::async_write(*s, asio::buffer("go", 2), tuple);
    co_return 0;
  });
  read_some_bytes(*s, 1, ec);
  EXPECT_EQ(ec, asio::error::connection_reset) << ec.message();
}

TEST_F(TlsSocketStreamTest, stalled_peer_read_times_out_after_an_answer_in_time) {
  ScriptedServer server(server_cert_, [](SSL* ssl, int&) {
    std::this_thread::sleep_for(100ms);
    ssl_write_all(ssl, "late");
    char c;
    SSL_read(ssl, &c, 1);  // then silent until the client is gone
  });
  auto s = connected(server.port());
  error_code ec;
  s->expires_after(20s);
  EXPECT_EQ(read_some_bytes(*s, 4, ec), "late");  // positive control: the deadline was not reached
  EXPECT_FALSE(ec);
  s->expires_after(300ms);
  const auto started = std::chrono::steady_clock::now();
  read_some_bytes(*s, 1, ec);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 20s);
  EXPECT_FALSE(s->socket().is_open());  // as beast::tcp_stream: the expiry closes the socket
}

TEST_F(TlsSocketStreamTest, write_to_a_peer_that_stops_reading_times_out) {
  std::atomic<bool> done{false};
  ScriptedServer server(server_cert_, [&](SSL* ssl, int&) {
    char first[4];
    ssl_read_exact(ssl, first, 4);  // then reads nothing more
    while (!done) std::this_thread::sleep_for(10ms);
  });
  auto s = connected(server.port());
  std::vector<char> big(64 * 1024 * 1024, 'x');
  auto [ec, n] = run<std::tuple<error_code, std::size_t>>(
      [&]() -> asio::awaitable<std::tuple<error_code, std::size_t>> {
        s->expires_after(20s);
        auto [e1, n1] = co_await asio::async_write(*s, asio::buffer("ping", 4), tuple);
        if (e1) co_return std::tuple{e1, n1};  // positive control below: this one goes through
        s->expires_after(500ms);
        co_return co_await asio::async_write(*s, asio::buffer(big), tuple);
      });
  done = true;
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_GT(n, 0u);
  EXPECT_LT(n, big.size());
}

TEST_F(TlsSocketStreamTest, handshake_with_a_silent_server_times_out) {
  std::atomic<bool> done{false};
  ScriptedServer server(
      server_cert_, [&](SSL*, int&) { while (!done) std::this_thread::sleep_for(10ms); }, false);
  auto s = connect(server.port());
  error_code ec = run<error_code>([&]() -> asio::awaitable<error_code> {
    s->expires_after(300ms);
    auto [e] = co_await s->async_handshake(tuple);
    co_return e;
  });
  done = true;
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
}

TEST_F(TlsSocketStreamTest, an_expired_deadline_with_nothing_pending_leaves_the_connection_open) {
  ScriptedServer server(server_cert_, [](SSL* ssl, int&) {
    ssl_write_all(ssl, "one");
    std::this_thread::sleep_for(700ms);
    ssl_write_all(ssl, "two");
    char c;
    SSL_read(ssl, &c, 1);
  });
  auto s = connected(server.port());
  error_code ec;
  s->expires_after(300ms);  // covers the first read only, as a relay sets a deadline per read
  EXPECT_EQ(read_some_bytes(*s, 3, ec), "one");
  EXPECT_FALSE(ec);
  run<int>([&]() -> asio::awaitable<int> {  // busy elsewhere past that deadline
    asio::steady_timer t(co_await asio::this_coro::executor, 500ms);
    co_await t.async_wait(tuple);
    co_return 0;
  });
  EXPECT_TRUE(s->socket().is_open());
  s->expires_after(20s);
  EXPECT_EQ(read_some_bytes(*s, 3, ec), "two");
  EXPECT_FALSE(ec) << ec.message();
  // Control: the same expired deadline does end an operation that has to wait.
  s->expires_after(1ms);
  std::this_thread::sleep_for(5ms);
  read_some_bytes(*s, 1, ec);
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
}

TEST_F(TlsSocketStreamTest, tls13_ticket_and_key_update_between_requests_are_absorbed) {
  std::atomic<bool> server_ok{false};
  ScriptedServer server(
      server_cert_,
      [&](SSL* ssl, int&) {
        char req[5];
        if (!ssl_read_exact(ssl, req, 5) || !ssl_write_all(ssl, "resp1")) return;
        // Between two requests: a new ticket and a KeyUpdate asking the client to update its keys too.
        if (SSL_new_session_ticket(ssl) != 1 || SSL_do_handshake(ssl) != 1) return;
        if (SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) != 1 || SSL_do_handshake(ssl) != 1) return;
        if (!ssl_read_exact(ssl, req, 5) || !ssl_write_all(ssl, "resp2")) return;
        // Read under the client's updated keys: the client answered the KeyUpdate.
        if (!ssl_read_exact(ssl, req, 5) || std::string(req, 5) != "req-3" || !ssl_write_all(ssl, "resp3")) return;
        server_ok = true;
        SSL_shutdown(ssl);
      },
      true, 0);
  auto s = connected(server.port());
  EXPECT_FALSE(SSL_SESSION_is_resumable(SSL_get0_session(s->native_handle())));  // no ticket yet
  error_code ec;
  for (int i = 1; i <= 3; ++i) {
    const std::string req = "req-" + std::to_string(i);
    run<int>([&]() -> asio::awaitable<int> {
      s->expires_after(20s);
      auto [e, n] = co_await asio::async_write(*s, asio::buffer(req), tuple);
      ec = e;
      co_return 0;
    });
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(read_some_bytes(*s, 5, ec), "resp" + std::to_string(i));
    ASSERT_FALSE(ec) << ec.message();
    // Nothing left inside OpenSSL between requests (after the last one the server's close_notify may be).
    if (i < 3) EXPECT_FALSE(s->has_buffered_input());
  }
  EXPECT_TRUE(SSL_SESSION_is_resumable(SSL_get0_session(s->native_handle())));  // the ticket was taken
  read_some_bytes(*s, 1, ec);
  EXPECT_EQ(ec, asio::error::eof);
  server.join();
  EXPECT_TRUE(server_ok.load());
}

TEST_F(TlsSocketStreamTest, release_buffers_frees_record_buffers_of_an_idle_connection) {
  ScriptedServer server(server_cert_, [](SSL* ssl, int&) {
    if (!ssl_write_all(ssl, std::string(16000, 'r'))) return;
    char c;
    SSL_read(ssl, &c, 1);
  });
  auto s = connected(server.port());
  error_code ec;
  EXPECT_EQ(read_some_bytes(*s, 16000, ec).size(), 16000u);
  run<int>([&]() -> asio::awaitable<int> {
    co_await asio::async_write(*s, asio::buffer(std::string(100, 'w')), tuple);
    co_return 0;
  });
  const auto before = mallinfo2().uordblks;
  s->release_buffers();
  const auto after = mallinfo2().uordblks;
  EXPECT_GE(before - after, 30000u) << "record buffers in use after an exchange: " << before << " -> " << after;
  s->close();
}

}  // namespace
}  // namespace orgproxy::daemon
