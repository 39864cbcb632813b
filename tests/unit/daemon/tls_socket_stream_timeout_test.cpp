// TlsSocketStream deadlines (beast::tcp_stream semantics) against the scripted TLS 1.3 server of
// tls_socket_stream_fixture.hpp: read, write and handshake timeouts, each with an in-time control.
#include "tls_socket_stream_fixture.hpp"

#include <gtest/gtest.h>

namespace orgproxy::daemon {
namespace {

using namespace tls_stream_testing;

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

}  // namespace
}  // namespace orgproxy::daemon
