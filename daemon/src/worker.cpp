#include "orgproxy/daemon/worker.hpp"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include "orgproxy/daemon/downstream_session.hpp"
#include "orgproxy/daemon/metrics.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Worker::Worker(unsigned index, RuntimeSlot& runtime)
    : index_(index), runtime_(runtime), rng_(std::random_device{}() ^ (std::uint64_t{index} << 32)) {}

std::uint16_t Worker::bind(const config::Listener& listener, const tcp::endpoint& endpoint) {
  auto& slot = listeners_.emplace_back(io_, listener);
  slot.l4_open = runtime_.l4_connections.counter(listener.name);
  auto& a = slot.acceptor;
  a.open(endpoint.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  int one = 1;
  if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    throw boost::system::system_error(errno, boost::system::system_category(), "SO_REUSEPORT");
  a.bind(endpoint);
  a.listen(asio::socket_base::max_listen_connections);
  return a.local_endpoint().port();
}

void Worker::start() {
  for (auto& slot : listeners_) accept_loop(slot);
  schedule_sweep();
}

void Worker::run() {
  io_.run();
}

void Worker::accept_loop(ListenerSlot& slot) {
  slot.acceptor.async_accept([this, &slot](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !slot.acceptor.is_open()) return;
      // EMFILE and friends: log, keep accepting (a transient fd shortage must not kill the listener).
      spdlog::warn("listener {}: accept failed: {}", slot.listener.name, ec.message());
    } else if (!stopping()) {
      socket.set_option(tcp::no_delay(true), ec);
      active_.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(io_,
                     slot.listener.mode == config::ListenerMode::http
                         ? run_downstream_session(*this, slot, std::move(socket))
                         : run_l4_session(*this, slot, std::move(socket)),
                     [this](std::exception_ptr e) {
                       active_.fetch_sub(1, std::memory_order_relaxed);
                       if (e) {
                         try {
                           std::rethrow_exception(e);
                         } catch (const std::exception& ex) {
                           spdlog::error("session ended by an exception: {}", ex.what());
                         } catch (...) {
                           spdlog::error("session ended by an unknown exception");
                         }
                       }
                     });
    }
    if (!stopping()) accept_loop(slot);
  });
}

void Worker::schedule_sweep() {
  sweep_timer_.expires_after(std::chrono::seconds(1));
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping()) return;
    pool_.sweep(UpstreamPool::Clock::now());
    metrics().set_idle_connections(index_, pool_.idle_total());
    schedule_sweep();
  });
}

void Worker::begin_shutdown() {
  asio::post(io_, [this] {
    stopping_.store(true, std::memory_order_relaxed);
    boost::system::error_code ec;
    for (auto& slot : listeners_) slot.acceptor.close(ec);
    sweep_timer_.cancel();
    for (auto& s : sessions_)
      if (s.idle) s.stream->cancel();
    pool_.clear();
  });
}

void Worker::post_heartbeat() {
  asio::post(io_, [this] { heartbeats_.fetch_add(1, std::memory_order_relaxed); });
}

UpstreamPool& Worker::pool_for(const std::shared_ptr<const Runtime>& rt) {
  if (pool_runtime_ != rt) {
    if (pool_runtime_ && rt->generation() > pool_runtime_->generation()) {
      // A reload: identities or CA bundles may have changed; nothing made under the old snapshot is reused.
      pool_.clear();
      pool_runtime_ = rt;
      pool_.set_max_idle_total(rt->config().settings.max_idle_connections);
    } else if (!pool_runtime_) {
      pool_runtime_ = rt;
      pool_.set_max_idle_total(rt->config().settings.max_idle_connections);
    }
  }
  return pool_;
}

RequestId Worker::next_request_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t v = rng_() ^ (++counter_ * 0x9e3779b97f4a7c15ull);
  RequestId id;
  for (int i = 15; i >= 0; --i) {
    id.text[static_cast<std::size_t>(i)] = kHex[v & 0xf];
    v >>= 4;
  }
  return id;
}

std::list<Worker::SessionEntry>::iterator Worker::register_session(boost::beast::tcp_stream& stream) {
  return sessions_.insert(sessions_.end(), SessionEntry{&stream, false});
}

void Worker::unregister_session(std::list<SessionEntry>::iterator it) { sessions_.erase(it); }

}  // namespace orgproxy::daemon
