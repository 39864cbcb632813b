// The admin listener (config `admin:`): GET /metrics (Prometheus text format 0.0.4), /healthz, /readyz and
// /sites (JSON) on its own thread and io_context, away from the workers. Loopback by default; on any other
// address it refuses to start without bearer tokens (config `admin.bearer_sha256`), and when tokens are
// configured every endpoint requires `Authorization: Bearer <token>`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/worker.hpp"
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::daemon {

/// One admin answer.
struct AdminResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

/// Answers one admin request: `method` and `target` (path, query ignored) as received, `authorization`
/// the raw header value ("" when absent). `rt` is the running snapshot (null before the first load),
/// `keystore` may be null. Tokens are the snapshot's admin.bearer_sha256 (lower-case hex SHA-256),
/// compared in constant time. Statuses: 200; 401 (token missing or wrong, with WWW-Authenticate added by
/// the server); 404 unknown path; 405 not GET/HEAD; 503 /readyz not ready. Never throws but std::bad_alloc.
AdminResponse handle_admin_request(std::string_view method, std::string_view target, std::string_view authorization,
                                   const Runtime* rt, const keystore::Keystore* keystore);

/// The /readyz body (JSON): {"ready", "generation", "identities": {"usable", "unavailable"},
/// "unavailable": [{"tenant","purpose","reason","token_present"}]}.
std::string readyz_json(const Runtime& rt, bool& ready);

/// The /sites body (JSON): every tenant with its identities (purpose, usable, subject, serial, not_after,
/// days_to_expiry, reason) and, per upstream it has an identity for, the last success/failure seen.
std::string sites_json(const Runtime& rt);

/// Whether an admin listener on `address` may run with `bearer_sha256` (loopback, or tokens given);
/// throws std::invalid_argument naming the address otherwise or when it is not an IP literal/localhost.
void check_admin_exposure(const std::string& address, const std::vector<std::string>& bearer_sha256);

class AdminServer {
 public:
  /// Binds `settings.address:settings.port` (port 0 = ephemeral) after check_admin_exposure. Throws
  /// std::invalid_argument (exposure) or boost::system::system_error (bind). Serves nothing until start().
  AdminServer(const config::AdminListener& settings, RuntimeSlot& runtime, std::shared_ptr<keystore::Keystore> keystore);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// The bound port.
  std::uint16_t port() const { return port_; }
  /// Starts the admin thread.
  void start();
  /// Stops accepting, closes the admin connections and joins the thread. Idempotent.
  void stop();

 private:
  void accept_loop();

  RuntimeSlot& runtime_;
  std::shared_ptr<keystore::Keystore> keystore_;
  boost::asio::io_context io_{1};
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace orgproxy::daemon
