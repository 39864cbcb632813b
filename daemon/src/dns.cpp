#include "dns.hpp"

#include <algorithm>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <spdlog/spdlog.h>

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

asio::awaitable<ConnectOutcome> connect_in_turn(beast::tcp_stream& stream, const std::string& host,
                                                const std::string& port, std::chrono::milliseconds budget) {
  ConnectOutcome out;
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto [rec, results] = co_await resolver.async_resolve(host, port, asio::as_tuple(asio::use_awaitable));
  if (rec) {
    out.ec = rec;
    out.detail = "resolve " + host + ": " + rec.message();
    co_return out;
  }
  std::vector<tcp::endpoint> addresses;
  for (auto const& entry : results) addresses.push_back(entry.endpoint());
  if (addresses.empty()) {
    out.ec = asio::error::host_not_found;
    out.detail = "resolve " + host + ": no address";
    co_return out;
  }

  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds::zero()) {
      out.ec = beast::error::timeout;
      out.detail += (out.detail.empty() ? "" : "; ") + std::string("connect_timeout spent before ") +
                    addresses[i].address().to_string();
      break;
    }
    const auto share = std::max(std::chrono::milliseconds(1), left / static_cast<long>(addresses.size() - i));
    stream.expires_after(share);
    auto [ec] = co_await stream.async_connect(addresses[i], asio::as_tuple(asio::use_awaitable));
    if (!ec) {
      out.ec = {};
      out.detail.clear();
      out.endpoint = addresses[i];
      co_return out;
    }
    out.ec = ec;
    if (!out.detail.empty()) out.detail += "; ";
    out.detail += addresses[i].address().to_string() + " port " + port + ": " + ec.message();
    spdlog::debug("connect to {} ({}) failed: {}; {} address(es) left", host, addresses[i].address().to_string(),
                  ec.message(), addresses.size() - i - 1);
    boost::system::error_code ignored;
    stream.socket().close(ignored);
  }
  out.detail = "connect " + host + ": " + out.detail;
  co_return out;
}

asio::awaitable<ConnectOutcome> connect_upstream(beast::tcp_stream& stream, const std::string& host,
                                                 const std::string& port, std::chrono::milliseconds connect_timeout,
                                                 const EgressProxy* proxy) {
  ConnectOutcome out;
  if (proxy) {
    TunnelOutcome t = co_await open_tunnel(stream, *proxy);
    out.ec = t.ec;
    out.detail = std::move(t.detail);
    out.proxy_status = t.proxy_status;
  } else {
    out = co_await connect_in_turn(stream, host, port, connect_timeout);
  }
  stream.expires_never();
  if (out.ec) co_return out;
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  out.endpoint = stream.socket().remote_endpoint(ignored);
  co_return out;
}

}  // namespace orgproxy::daemon
