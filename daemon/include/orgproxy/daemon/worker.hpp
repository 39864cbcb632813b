// One worker thread: its own io_context, its own acceptor per listener (SO_REUSEPORT: the kernel spreads
// connections, no shared accept lock), its own upstream pool and TLS session cache. Nothing on the hot path
// is shared with other workers except the atomically swapped Runtime pointer.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <random>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/l4_session.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "orgproxy/daemon/selection.hpp"
#include "orgproxy/daemon/upstream_connection.hpp"

namespace orgproxy::daemon {

/// The Runtime slot shared by the control thread (writer, on reload) and the workers (readers).
/// Readers check `generation` (a plain atomic read of a line written once per reload) and only load the
/// pointer when it moved: loading an atomic shared_ptr per request would bounce its lock bit and the
/// Runtime's reference count between cores.
struct RuntimeSlot {
  std::atomic<std::shared_ptr<const Runtime>> current;
  std::atomic<std::uint64_t> generation{0};
  /// Open connections of the L4 listeners (max_connections counts all workers together).
  ListenerConnectionCounts l4_connections;

  void publish(std::shared_ptr<const Runtime> rt) {
    auto g = rt->generation();
    current.store(std::move(rt), std::memory_order_release);
    generation.store(g, std::memory_order_release);
  }
  std::shared_ptr<const Runtime> load() const { return current.load(std::memory_order_acquire); }
};

/// A listener as bound at start: its settings as they were then (used when a reload removes it).
struct ListenerSlot {
  explicit ListenerSlot(boost::asio::io_context& io, const config::Listener& l)
      : listener(l), selector(listener), acceptor(io) {}
  config::Listener listener;
  TenantSelector selector;
  boost::asio::ip::tcp::acceptor acceptor;
  std::shared_ptr<std::atomic<std::size_t>> l4_open;  ///< L4 listeners: open connections, all workers
};

/// 16 lower-case hex characters, unique per process run with overwhelming probability.
struct RequestId {
  std::array<char, 16> text{};
  std::string_view view() const { return {text.data(), text.size()}; }
};

class Worker {
 public:
  Worker(unsigned index, RuntimeSlot& runtime);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  boost::asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }

  /// Opens, binds (SO_REUSEADDR + SO_REUSEPORT) and listens on `endpoint` for `listener`. Throws
  /// boost::system::system_error naming nothing (the caller adds the listener name). Returns the port.
  std::uint16_t bind(const config::Listener& listener, const boost::asio::ip::tcp::endpoint& endpoint);
  /// Starts the accept loops and the pool sweeper. Call before run().
  void start();
  /// Runs the io_context until stop(); on the worker's own thread.
  void run();
  /// Thread-safe: stop accepting, close idle keep-alive sessions; in-flight requests finish.
  void begin_shutdown();
  /// Thread-safe: stops the io_context (after the grace period).
  void stop() { io_.stop(); }
  /// Sessions currently open (thread-safe read).
  std::size_t active_sessions() const { return active_.load(std::memory_order_relaxed); }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  /// Thread-safe: asks the worker's event loop to count a heartbeat (the watchdog checks it advances).
  void post_heartbeat();
  std::uint64_t heartbeats() const { return heartbeats_.load(std::memory_order_relaxed); }

  /// The current Runtime snapshot.
  std::shared_ptr<const Runtime> runtime() const { return runtime_.load(); }
  /// Generation of the current snapshot (cheap: compare with a held snapshot's before calling runtime()).
  std::uint64_t runtime_generation() const { return runtime_.generation.load(std::memory_order_acquire); }
  /// This worker's pool, flushed first if `rt` is a newer snapshot than the pool was filled under.
  UpstreamPool& pool_for(const std::shared_ptr<const Runtime>& rt);
  /// Whether connections made under `rt` may go back to the pool (false for a snapshot older than the
  /// pool's: an in-flight request finishing after a reload drops its connection).
  bool pool_accepts(const std::shared_ptr<const Runtime>& rt) const { return pool_runtime_ == rt; }
  RequestId next_request_id();

  /// Session registry, so that shutdown can wake sessions idle between requests. Worker thread only.
  struct SessionEntry {
    boost::beast::tcp_stream* stream = nullptr;
    bool idle = false;
  };
  std::list<SessionEntry>::iterator register_session(boost::beast::tcp_stream& stream);
  void unregister_session(std::list<SessionEntry>::iterator it);

 private:
  void accept_loop(ListenerSlot& slot);
  void schedule_sweep();

  unsigned index_;
  RuntimeSlot& runtime_;
  // Declared before io_ so that it outlives it: coroutine frames still pending when the io_context is
  // destroyed unregister their sessions from it as they are destroyed.
  std::list<SessionEntry> sessions_;
  boost::asio::io_context io_{1};  // concurrency hint 1: one thread runs it, Asio can skip locking
  std::list<ListenerSlot> listeners_;
  std::atomic<std::size_t> active_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> heartbeats_{0};
  UpstreamPool pool_;
  std::shared_ptr<const Runtime> pool_runtime_;  // keeps the snapshot whose pointers key pool_
  boost::asio::steady_timer sweep_timer_{io_};
  std::mt19937_64 rng_;
  std::uint64_t counter_ = 0;
};

}  // namespace orgproxy::daemon
