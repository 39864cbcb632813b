// Client authorization (DESIGN.md "Client", config/SCHEMA.md `clients`): who may act for which tenants and
// upstreams. Runs after tenant selection, so a forged selector only reaches what its client may reach.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/fields.hpp>

#include "orgproxy/daemon/head_fields.hpp"

#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/downstream_tls.hpp"

namespace orgproxy::daemon {

/// A peer address in the byte form config::IpNetwork::contains expects (4 bytes IPv4, 16 bytes IPv6).
struct PeerAddress {
  std::array<std::uint8_t, 16> bytes{};
  std::size_t size = 0;
  std::span<const std::uint8_t> view() const { return {bytes.data(), size}; }
  static PeerAddress from(const boost::asio::ip::address& a);
};

/// Longest-prefix match of `peer` over a listener's `source` selector rules; "" when none matches.
std::string_view source_tenant(const std::vector<config::SourceTenantRule>& rules, const PeerAddress& peer);

/// The outcome of authorizing one request.
struct ClientDecision {
  bool allowed = false;
  const config::Client* client = nullptr;  ///< the matched rule (nullptr under the loopback rule)
  bool used_bearer = false;                ///< the match relied on `Authorization: Bearer` (not forwarded)
  const char* reason = "";                 ///< static text when refused
};

/// Applies `clients` (first rule, in file order, whose every criterion matches; default deny). With no
/// rules, allows everything: the config only accepts that on loopback listeners (the loopback rule).
/// `cert` is the connection's verified downstream client certificate (nullptr: plain listener or none
/// presented); `cert_sha256` and `cert_subject` criteria match only against it (fingerprint equal,
/// subject equal as RFC 4514 text). Never throws.
ClientDecision authorize_client(const std::vector<config::Client>& clients, const PeerAddress& peer,
                                const boost::beast::http::fields& fields, std::string_view tenant,
                                std::string_view upstream, const PeerCertificate* cert = nullptr);
/// The same, for a head parsed into a HeadArena (the data path).
ClientDecision authorize_client(const std::vector<config::Client>& clients, const PeerAddress& peer,
                                const HeadFields& fields, std::string_view tenant, std::string_view upstream,
                                const PeerCertificate* cert = nullptr);

/// Lower-case hex SHA-256 of `token` (what `bearer_sha256` holds).
std::string sha256_hex(std::string_view token);

}  // namespace orgproxy::daemon

namespace orgproxy::daemon {

/// Per-client limits of one Runtime snapshot (`rate`/`burst`, `max_connections`), shared by all workers
/// without a lock: the request rate is a GCRA (generic cell rate algorithm, ITU-T I.371) on one atomic
/// "theoretical arrival time" per client, connections a counter per client. The counters belong to the
/// client's *name*, not to one snapshot: a reload hands them to the new limiter (`previous`), which applies
/// the new limits to them, so a reload neither frees a client's connection slots nor refills its bucket.
class ClientLimiter {
 public:
  /// `clients` must outlive the limiter (both belong to the Runtime). Counters of clients of the same name
  /// in `previous` (the snapshot being replaced, may be nullptr) are shared, not copied.
  explicit ClientLimiter(const std::vector<config::Client>& clients, const ClientLimiter* previous = nullptr);

  /// Whether one more request of `client` fits its rate at `now_ns` (steady clock, nanoseconds). Always
  /// true without a `rate`.
  bool admit_request(const config::Client& client, std::int64_t now_ns);
  /// Counts a downstream connection for `client`; false (and not counted) when at `max_connections`.
  bool open_connection(const config::Client& client);
  /// Releases a connection counted by open_connection().
  void close_connection(const config::Client& client);
  /// Connections currently counted for `client` (all snapshots sharing its counters).
  unsigned connections(const config::Client& client) const;

 private:
  struct State {
    std::atomic<std::int64_t> tat_ns{0};
    std::atomic<unsigned> connections{0};
  };
  std::size_t index_of(const config::Client& c) const {
    return static_cast<std::size_t>(&c - clients_.data());
  }
  const std::vector<config::Client>& clients_;
  std::vector<std::shared_ptr<State>> state_;  ///< parallel to clients_
};

}  // namespace orgproxy::daemon
