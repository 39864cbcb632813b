// Renderings of discovered sites: a table for people, JSON for scripts, YAML tenant stubs for conf.d.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "orgproxy/onboarding/discovery.hpp"

namespace orgproxy::onboarding {

/// Table: ID, TYPE, SECTOR, NAME, ADDRESS (lines joined by ", "), CONFIGURED, then notes and warnings.
std::string render_sites_table(const DiscoveryResult& result);

/// {"rpps","source","sites":[{directory_id,structure_id,id_type,id_note,sector,name,address,departement,
/// configured,warnings}]}.
nlohmann::json sites_to_json(const DiscoveryResult& result);

/// YAML tenant stubs ready for conf.d: one `tenants:` list of the sites not yet configured (ids and
/// départements as quoted strings; `responsible_rpps` = the queried RPPS for RPPS-rang sites; SA09 sites get a
/// `legal_representative` to fill in), identities left as comments for the administrator. Sites already
/// configured, or whose id was not recognised, are listed in comments only. The output loads with
/// config::load_config once placed in conf.d (YAML-safe quoting of every directory string).
std::string render_tenant_stubs_yaml(const DiscoveryResult& result);

}  // namespace orgproxy::onboarding
