// ConnectProxy: a small HTTP CONNECT proxy (RFC 9110 §9.3.6) as found on practice and hospital networks, for
// tests of the daemon's egress proxy support. Listens on 127.0.0.1 (ephemeral port), optionally requires
// `Proxy-Authorization: Basic` (407 otherwise), dials the requested host:port and relays bytes both ways.
// It records every CONNECT it receives (target, whether it was let through) so a test can assert tunnels.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace orgproxy::testkit {

struct ConnectProxyOptions {
  std::string credentials;  ///< "user:password" required in Proxy-Authorization Basic; "" = none required
};

/// One CONNECT request as the proxy saw it.
struct ConnectRecord {
  std::string target;         ///< request-target, e.g. "127.0.0.1:8443"
  std::string host_header;    ///< its Host header
  bool had_authorization = false;
  int status = 0;             ///< what the proxy answered (200, 407, 502, 400)
};

/// A running proxy; stops (every relay ended, every thread joined) on destruction. Each connection is
/// served by its own thread with 30 s socket timeouts, so a stuck peer cannot hang a test.
class ConnectProxy {
 public:
  explicit ConnectProxy(ConnectProxyOptions options = {});
  ~ConnectProxy();
  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  std::uint16_t port() const { return port_; }
  /// "http://127.0.0.1:<port>".
  std::string url() const;
  /// Every CONNECT received so far, in arrival order.
  std::vector<ConnectRecord> records() const;
  /// Tunnels opened (CONNECTs answered 200).
  unsigned tunnels() const;

 private:
  void accept_loop();
  void serve(int client);

  ConnectProxyOptions options_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  ///< self-pipe that wakes the accept loop and relays at stop
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<ConnectRecord> records_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace orgproxy::testkit
