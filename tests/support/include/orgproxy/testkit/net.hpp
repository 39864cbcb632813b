// Loopback networking helpers for tests: free ports, waiting for a listener, a server that never answers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace orgproxy::testkit {

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, released).
/// There is a small window in which another process may take it; tests that start a server on it detect
/// that through the server failing to start. Throws std::system_error if no socket can be bound.
std::uint16_t free_loopback_port();

/// Polls (every 50 ms) until a TCP connect to host:port succeeds or `timeout` passes. `keep_waiting`, when
/// given, is asked before each attempt and stops the wait early when it returns false (e.g. the server's
/// process died). Returns whether the port accepted a connection. `host` is an IPv4 or IPv6 literal.
bool wait_for_port(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
                   const std::function<bool()>& keep_waiting = {});

/// A TCP server on 127.0.0.1 that accepts connections and never sends a byte nor closes them (until it is
/// destroyed): the upstream that makes a proxy wait for a handshake or a first byte that never comes.
/// Runs on its own thread. Throws std::system_error if it cannot listen.
class SilentTcpServer {
 public:
  SilentTcpServer();
  ~SilentTcpServer();
  SilentTcpServer(const SilentTcpServer&) = delete;
  SilentTcpServer& operator=(const SilentTcpServer&) = delete;

  std::uint16_t port() const { return port_; }
  /// Connections accepted so far.
  unsigned accepted() const { return accepted_.load(); }

 private:
  void run();
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<unsigned> accepted_{0};
  std::vector<int> held_;
  std::thread thread_;
};

}  // namespace orgproxy::testkit
