#include "l4_relay.hpp"

#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "l4_deadline.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kChunkBytes = 16 * 1024;  // one TLS record: a full read becomes one record upstream

struct Relay {
  asio::ip::tcp::socket& client;
  TlsPipe& upstream;
  std::chrono::milliseconds idle;
  UpstreamFilter filter;
  L4Deadline& deadline;
  RelayResult result;

  void fail(const error_code& ec, const char* where) {
    if (!result.error && !deadline.expired()) {
      result.error = ec;
      result.error_where = where;
    }
    error_code ignored;
    client.close(ignored);
    upstream.abort();
  }

  asio::awaitable<void> client_to_upstream() {
    auto buf = std::make_unique<char[]>(kChunkBytes);
    for (;;) {
      auto [ec, n] = co_await client.async_read_some(asio::buffer(buf.get(), kChunkBytes), nothrow);
      if (n > 0) {
        deadline.extend(idle);
        if (auto wec = co_await upstream.write(asio::buffer(buf.get(), n))) co_return fail(wec, "writing upstream");
        result.to_upstream += n;
        deadline.extend(idle);
      }
      if (ec == asio::error::eof) {
        // C22: the client is done sending, not done reading: close_notify + FIN upstream, keep relaying back.
        if (auto sec = co_await upstream.close_write(); sec && sec != asio::error::not_connected)
          fail(sec, "closing the upstream's write side");
        co_return;
      }
      if (ec) co_return fail(ec, "reading the client");
    }
  }

  asio::awaitable<bool> send_client(std::string_view bytes) {
    if (bytes.empty()) co_return true;
    auto [wec, wn] = co_await asio::async_write(client, asio::buffer(bytes.data(), bytes.size()), nothrow);
    if (wec) {
      fail(wec, "writing the client");
      co_return false;
    }
    result.to_client += wn;
    deadline.extend(idle);
    co_return true;
  }

  asio::awaitable<void> upstream_to_client() {
    auto buf = std::make_unique<char[]>(kChunkBytes);
    std::string filtered;
    for (;;) {
      auto [ec, n] = co_await upstream.read_some(asio::buffer(buf.get(), kChunkBytes));
      const bool end = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
      if (n > 0 || end) {
        deadline.extend(idle);
        std::string_view chunk(buf.get(), n);
        if (filter) {
          filtered.clear();
          filter(chunk, end, filtered);
          chunk = filtered;
        }
        if (!co_await send_client(chunk)) co_return;
      }
      if (end) {
        result.upstream_truncated = ec == asio::ssl::error::stream_truncated;
        // C22: the upstream is done sending: FIN to the client, whose bytes keep flowing up.
        error_code ignored;
        client.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        co_return;
      }
      if (ec) co_return fail(ec, "reading the upstream");
    }
  }
};

}  // namespace

asio::awaitable<RelayResult> relay_l4(asio::ip::tcp::socket& client, TlsPipe& upstream, std::chrono::milliseconds idle,
                                      UpstreamFilter filter) {
  L4Deadline deadline(client.get_executor(), idle, [&client, &upstream] {
    error_code ignored;
    client.close(ignored);
    upstream.abort();
  });
  Relay relay{client, upstream, idle, std::move(filter), deadline, {}};
  co_await (relay.client_to_upstream() && relay.upstream_to_client());
  relay.result.idle_timeout = deadline.expired();
  error_code ignored;
  client.close(ignored);
  upstream.abort();
  co_return relay.result;
}

}  // namespace orgproxy::daemon
