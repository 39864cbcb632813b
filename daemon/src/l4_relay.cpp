#include "l4_relay.hpp"

#include <memory>

#include <boost/asio/steady_timer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "l4_deadline.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::size_t kChunkBytes = 16 * 1024;  // one TLS record: a full read becomes one record upstream

struct Relay {
  ClientLink& client;
  TlsPipe& upstream;
  std::chrono::milliseconds idle;
  UpstreamFilter filter;
  StarttlsGuard* guard;
  L4Deadline& deadline;
  asio::steady_timer writer_done;  // wakes a direction waiting for the client link's writer
  RelayResult result;
  bool client_writing = false;  // both directions write to the client when a guard answers STARTTLS

  // One writer at a time on the client link, from the upstream bytes' parse to their write's end, so a
  // local answer taken by the client side cannot overtake upstream replies already parsed.
  asio::awaitable<void> begin_client_write() {
    while (client_writing) {
      writer_done.expires_at(asio::steady_timer::time_point::max());
      co_await writer_done.async_wait(nothrow);
    }
    client_writing = true;
  }
  void end_client_write() {
    client_writing = false;
    writer_done.cancel();
  }

  void fail(const error_code& ec, const char* where) {
    if (!result.error && !deadline.expired()) {
      result.error = ec;
      result.error_where = where;
    }
    client.abort();
    upstream.abort();
  }

  asio::awaitable<void> client_to_upstream() {
    auto buf = std::make_unique<char[]>(kChunkBytes);
    std::string guarded;
    for (;;) {
      auto [ec, n] = co_await client.read_some(asio::buffer(buf.get(), kChunkBytes));
      if (n > 0) {
        deadline.extend(idle);
        std::string_view up(buf.get(), n);
        if (guard) {
          guarded.clear();
          guard->from_client(up, guarded);
          up = guarded;
        }
        if (!up.empty()) {
          if (auto wec = co_await upstream.write(asio::buffer(up.data(), up.size())))
            co_return fail(wec, "writing upstream");
          result.to_upstream += up.size();
          deadline.extend(idle);
        }
        if (guard && guard->has_pending()) {
          co_await begin_client_write();
          const std::string answer = guard->take_due();
          const bool ok = co_await send_client(answer);
          end_client_write();
          if (!ok) co_return;
        }
      }
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
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
    if (auto wec = co_await client.write(asio::buffer(bytes.data(), bytes.size()))) {
      fail(wec, "writing the client");
      co_return false;
    }
    result.to_client += bytes.size();
    deadline.extend(idle);
    co_return true;
  }

  asio::awaitable<void> upstream_to_client() {
    auto buf = std::make_unique<char[]>(kChunkBytes);
    std::string filtered, guarded;
    for (;;) {
      auto [ec, n] = co_await upstream.read_some(asio::buffer(buf.get(), kChunkBytes));
      const bool end = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
      if (n > 0 || end) {
        deadline.extend(idle);
        std::string_view chunk(buf.get(), n);
        if (guard) co_await begin_client_write();
        if (filter) {
          filtered.clear();
          filter(chunk, end, filtered);
          chunk = filtered;
        }
        if (guard) {
          guarded.clear();
          guard->from_upstream(chunk, guarded);
          chunk = guarded;
        }
        const bool ok = co_await send_client(chunk);
        if (guard) end_client_write();
        if (!ok) co_return;
      }
      if (end) {
        result.upstream_truncated = ec == asio::ssl::error::stream_truncated;
        // C22: the upstream is done sending: (close_notify and) FIN to the client, whose bytes keep flowing up.
        co_await client.close_write();
        co_return;
      }
      if (ec) co_return fail(ec, "reading the upstream");
    }
  }
};

}  // namespace

asio::awaitable<std::pair<error_code, std::size_t>> ClientLink::read_some(asio::mutable_buffer b) {
  if (tls_) co_return co_await tls_->read_some(b);
  auto [ec, n] = co_await plain_.async_read_some(b, nothrow);
  co_return std::pair{ec, n};
}

asio::awaitable<error_code> ClientLink::write(asio::const_buffer b) {
  if (tls_) co_return co_await tls_->write(b);
  auto [ec, n] = co_await asio::async_write(plain_, b, nothrow);
  co_return ec;
}

asio::awaitable<error_code> ClientLink::close_write() {
  if (tls_) co_return co_await tls_->close_write();
  error_code ec;
  plain_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  co_return ec;
}

void ClientLink::abort() {
  if (tls_) return tls_->abort();
  error_code ignored;
  plain_.close(ignored);
}

asio::awaitable<RelayResult> relay_l4(ClientLink& client, TlsPipe& upstream, std::chrono::milliseconds idle,
                                      UpstreamFilter filter, StarttlsGuard* guard) {
  L4Deadline deadline(client.socket().get_executor(), idle, [&client, &upstream] {
    client.abort();
    upstream.abort();
  });
  Relay relay{client, upstream, idle, std::move(filter), guard, deadline, asio::steady_timer(client.socket().get_executor()), {}};
  co_await (relay.client_to_upstream() && relay.upstream_to_client());
  relay.result.idle_timeout = deadline.expired();
  client.abort();
  upstream.abort();
  co_return relay.result;
}

}  // namespace orgproxy::daemon
