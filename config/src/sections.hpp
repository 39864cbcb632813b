// Readers of the configuration's sections, one YAML file at a time. Cross-file checks (references,
// duplicates across includes, listener rules) happen in the loader once every file is read.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "orgproxy/config/config.hpp"
#include "yaml_view.hpp"

namespace orgproxy::config::detail {

/// A name used before it may be defined (a route's upstream, a listener's fixed tenant), checked after
/// every file is read.
struct Reference {
  enum class Kind { upstream, tenant, group } kind;
  std::string name;
  SourceMark mark;
  std::string what;  ///< who refers, for the message
};

/// A tenant id as written, with where (for duplicate-id messages naming both places).
struct IdMark {
  std::string id;
  SourceMark mark;
};

/// Everything read so far, across files.
struct ParseState {
  Diagnostics diags;
  Config config;
  std::vector<Upstream> upstreams;  ///< in file order; merged into config.upstreams by the loader
  std::vector<Reference> references;
  std::vector<IdMark> tenant_ids;                 ///< parallel to config.tenants
  std::map<std::string, SourceMark> group_marks;  ///< where each tenant group was defined
};

/// Top-level keys allowed in the main file, and the subset allowed in included files.
std::span<const std::string_view> root_keys();
std::span<const std::string_view> include_keys();

void parse_settings(const MapView& top, ParseState& state);
void parse_pkcs11(const MapView& top, ParseState& state);
void parse_listeners(const MapView& top, ParseState& state);
void parse_upstreams(const MapView& top, ParseState& state);
void parse_routes(const MapView& top, ParseState& state);
/// tenant_groups, clients, admin, logging, crl_files (main file only).
void parse_tenant_groups(const MapView& top, ParseState& state);
void parse_clients(const MapView& top, ParseState& state);
void parse_admin(const MapView& top, ParseState& state);
void parse_logging(const MapView& top, ParseState& state);
void parse_crl_files(const MapView& top, ParseState& state);
/// directory (main file only): settings of `orgproxy sites discover`.
void parse_directory(const MapView& top, ParseState& state);

/// Needs state.config.pkcs11 already read (key reference rules depend on its allow_* settings).
void parse_tenants(const MapView& top, ParseState& state);

/// Sub-mapping of `parent` at `key` as a MapView (an absent key gives an empty, valid view).
MapView sub_map(const MapView& parent, std::string_view key, std::string what, std::span<const std::string_view> known);

/// Valid for names of listeners, upstreams and modules: letters, digits, '-', '_', '.'.
bool is_simple_name(std::string_view name);

}  // namespace orgproxy::config::detail
