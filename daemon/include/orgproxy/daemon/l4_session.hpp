// L4 listeners (config `mode: tunnel | smtp-starttls | imap-starttls`): each connection is relayed to the
// listener's one upstream, as its one site, with TLS originated from the site's identity (MS Santé
// IMAPS/SMTPS-style endpoints, or SMTP/IMAP upgraded with STARTTLS first). A connection, not a request:
// nothing is pooled; one access-log line per connection (bytes each way, duration, tenant).
#pragma once

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace orgproxy::daemon {

class Worker;
struct ListenerSlot;

/// Open connections per L4 listener name, shared by every worker (SO_REUSEPORT spreads one listener's
/// connections over all their acceptors) and kept across reloads, for the listener's max_connections.
class ListenerConnectionCounts {
 public:
  /// The counter of `listener` (created at first use). Thread-safe; called when listeners are bound.
  std::shared_ptr<std::atomic<std::size_t>> counter(const std::string& listener) {
    std::lock_guard lock(mutex_);
    auto& c = counts_[listener];
    if (!c) c = std::make_shared<std::atomic<std::size_t>>(0);
    return c;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::atomic<std::size_t>>> counts_;
};

/// Serves one connection of an L4 listener until both directions ended, an error, or the listener's
/// idle_timeout without a byte. Refusals (over max_connections, client not allowed, identity missing or
/// unavailable, upstream failures) close the connection, after a protocol-level answer for SMTP (`421`)
/// and IMAP (`* BYE`), with a log line and a metric. Never throws.
boost::asio::awaitable<void> run_l4_session(Worker& worker, ListenerSlot& slot, boost::asio::ip::tcp::socket socket);

}  // namespace orgproxy::daemon
