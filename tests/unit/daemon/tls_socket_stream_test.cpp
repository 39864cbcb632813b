// TlsSocketStream (OpenSSL on the upstream socket) against a real TLS 1.3 server on loopback: an OpenSSL
// server on its own thread whose script chooses each record, close_notify, FIN, RST, KeyUpdate and ticket.
// Data and errors: bodies both ways, close_notify / FIN / RST, tickets and KeyUpdate, buffer release.
#include "tls_socket_stream_fixture.hpp"

#include <gtest/gtest.h>

namespace orgproxy::daemon {
namespace {

using namespace tls_stream_testing;

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
