// Offline inventory of the sites' identities: configuration + token, no network.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "orgproxy/config/config.hpp"

namespace orgproxy::onboarding {

/// Where a (site, purpose) stands in the order → key → certificate → renewal cycle.
enum class IdentityStatus { missing, key_only, ready, expiring, expired, mismatch };
/// "missing", "key-only", "ready", "expiring", "expired", "mismatch".
std::string_view to_string(IdentityStatus s);

/// One site and purpose.
struct InventoryEntry {
  std::string tenant_id;
  std::string tenant_name;
  std::string purpose;  ///< config spelling ("dmp", "insi-auto"...)
  IdentityStatus status = IdentityStatus::missing;
  std::string detail;       ///< what was found (why not ready)
  std::string next_action;  ///< what the administrator does next; "" when ready
  std::optional<std::chrono::system_clock::time_point> not_after;  ///< of the certificate reported
  std::optional<long> days_left;                                   ///< whole days until not_after
};

struct InventoryOptions {
  std::chrono::days expiring{60};  ///< a certificate with fewer days left is `expiring`
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

struct Inventory {
  std::vector<InventoryEntry> entries;  ///< tenants in configuration order, purposes in enum order
  /// True when every entry is ready.
  bool all_ready() const;
};

/// For every tenant and every purpose it has an identity for or that an upstream needs: the status of the
/// best of its identities (renewal overlap: one ready certificate is enough), from the certificate files and
/// a key probe on the token (keystore::probe_keys with the configuration's modules and PIN file).
/// Status rules: no key on the token (or no identity configured) → missing; key but no certificate file →
/// key-only; certificate whose public key or OU is not the key's / the site's → mismatch; not_after passed →
/// expired; fewer than `options.expiring` days left → expiring; else ready.
/// Throws keystore::KeystoreError when the token cannot be used at all (module, PIN).
Inventory take_inventory(const config::Config& config, const InventoryOptions& options = {});

/// Human table: SITE PURPOSE STATUS DAYS NEXT ACTION, then details of what is not ready.
std::string render_inventory_table(const Inventory& inventory);
/// {"all_ready":bool,"entries":[{tenant,name,purpose,status,detail,next_action,not_after,days_left}]}.
nlohmann::json inventory_to_json(const Inventory& inventory);

}  // namespace orgproxy::onboarding
