// The Runtime: one immutable snapshot of everything a request needs — the config, the loaded identities
// per tenant and purpose, per-route upstream data, and the shared TLS context cache. Built beside the old
// one on reload and swapped atomically; in-flight requests keep the snapshot they started with.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "orgproxy/config/config.hpp"
#include "orgproxy/daemon/authorization.hpp"
#include "orgproxy/daemon/downstream_tls.hpp"
#include "orgproxy/daemon/egress_proxy.hpp"
#include "orgproxy/daemon/error_response.hpp"
#include "orgproxy/daemon/selection.hpp"
#include "orgproxy/daemon/tls_context_cache.hpp"
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::daemon {

/// One configured identity of a tenant: loaded, or unavailable with the reason.
struct IdentitySlot {
  keystore::IdentityPtr identity;  ///< nullptr when unavailable
  std::string error;               ///< why unavailable (names tenant and purpose, never a PIN)
};

inline constexpr std::size_t kPurposeCount = 5;
inline std::size_t purpose_index(config::Purpose p) { return static_cast<std::size_t>(p); }

struct TenantState {
  const config::Tenant* tenant = nullptr;
  std::array<std::vector<IdentitySlot>, kPurposeCount> identities;  ///< by purpose_index()
};

/// What forwarding to one upstream needs, precomputed once per snapshot.
struct UpstreamState {
  const config::Upstream* upstream = nullptr;
  std::string authority;    ///< Host sent upstream (C16): sni or host, IPv6 bracketed, port unless 443
  std::string sni;          ///< SNI sent ("" for IP literals: RFC 6066 §3 forbids them)
  std::string verify_name;  ///< name or IP the server certificate must match
  bool verify_is_ip = false;
  std::string port_text;    ///< for the resolver
  std::optional<EgressProxy> proxy;  ///< CONNECT through this proxy (credentials read at snapshot build)
};

/// Result of picking the identity for one request.
struct IdentityPick {
  ErrorCode error = ErrorCode::none;  ///< identity_missing, identity_unavailable, or none
  const keystore::Identity* identity = nullptr;
};

/// The newest (latest notBefore) identity of `slots` that is loaded, usable and valid at `now`.
/// No slot configured → identity_missing; slots but none usable → identity_unavailable.
IdentityPick pick_identity(const std::vector<IdentitySlot>& slots, std::chrono::system_clock::time_point now);

/// Start-up or reload failure that must stop the start / reject the reload (require_all_identities).
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Runtime {
 public:
  /// Builds a snapshot: loads every identity of every tenant through `keystore` (one load_identities
  /// call), verifies each loaded chain against the CA bundle of every upstream of its purpose
  /// (keystore::verify_identity_chain); failures make that identity unavailable and are appended to
  /// `problems` ("tenant <id> purpose <p>: <why>"). With settings.require_all_identities, any problem
  /// throws RuntimeError. `keystore` may be nullptr (every identity is then unavailable: offline checks
  /// and unit tests). Builds the server TLS context of every listener with `tls`, its key from a PEM file
  /// or from the token (`keystore` then required); a failure throws RuntimeError naming the listener and
  /// file. `previous` (the snapshot a reload replaces, or nullptr)
  /// hands its per-client limit counters over (ClientLimiter).
  static std::shared_ptr<const Runtime> build(config::ConfigPtr config, std::shared_ptr<keystore::Keystore> keystore,
                                              std::uint64_t generation, std::vector<std::string>& problems,
                                              const Runtime* previous = nullptr);

  const config::Config& config() const { return *config_; }
  const config::ConfigPtr& config_ptr() const { return config_; }
  std::uint64_t generation() const { return generation_; }

  /// Tenant state by exact id, or nullptr. O(1).
  const TenantState* find_tenant(std::string_view id) const;
  /// Upstream data of a route of this snapshot's config (pointer from Config::match_route).
  const UpstreamState* route_upstream(const config::Route* route) const;
  /// Index of the listener named `name` in config().listeners, or -1.
  int listener_index(std::string_view name) const;
  /// The tenant selector of config().listeners[index].
  const TenantSelector& selector(std::size_t index) const { return selectors_[index]; }
  /// The server TLS context of config().listeners[index], or nullptr for a plain listener. Sessions hold
  /// the shared_ptr for their connection's lifetime (a reload may drop the snapshot meanwhile).
  const std::shared_ptr<boost::asio::ssl::context>& listener_tls(std::size_t index) const {
    return listener_tls_[index];
  }
  /// Per-client rate and connection limits of this snapshot (shared by all workers, lock-free).
  ClientLimiter& client_limits() const { return *client_limits_; }
  /// Shared TLS client contexts of this snapshot.
  TlsContextCache& tls_contexts() const { return *tls_contexts_; }
  /// Count of identities loaded and usable, and unavailable, at build time.
  std::size_t identities_loaded() const { return loaded_; }
  std::size_t identities_unavailable() const { return unavailable_; }

 private:
  config::ConfigPtr config_;
  std::uint64_t generation_ = 0;
  std::unordered_map<std::string_view, TenantState> tenants_;
  std::vector<UpstreamState> upstreams_;                 ///< parallel to config_->routes
  std::vector<TenantSelector> selectors_;                ///< parallel to config_->listeners
  std::vector<std::shared_ptr<boost::asio::ssl::context>> listener_tls_;  ///< parallel to config_->listeners
  std::unique_ptr<TlsContextCache> tls_contexts_;
  std::unique_ptr<ClientLimiter> client_limits_;
  std::size_t loaded_ = 0;
  std::size_t unavailable_ = 0;
};

using RuntimePtr = std::shared_ptr<const Runtime>;

/// Builds the UpstreamState of `u` (authority, SNI, verification name, egress proxy). Reads the proxy
/// credentials file when one is set: throws RuntimeError naming the upstream and file (never the
/// contents) when it is unreadable or malformed. Exposed for unit tests.
UpstreamState make_upstream_state(const config::Upstream& u);

}  // namespace orgproxy::daemon
