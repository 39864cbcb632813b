// directory section: where `orgproxy sites discover` finds the health directory (LDAP and FHIR).
#include <array>

#include "sections.hpp"

namespace orgproxy::config::detail {

using namespace std::chrono_literals;

void parse_directory(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 6> kKeys{"ldap_url", "base_dn", "fhir_url", "api_key_file",
                                                         "source", "timeout"};
  MapView m = sub_map(top, "directory", "directory", kKeys);
  if (!m.valid()) return;
  DirectorySettings& d = state.config.directory;
  if (auto v = m.string("ldap_url")) {
    if (!v->starts_with("ldap://") && !v->starts_with("ldaps://"))
      m.error_at("ldap_url", "'" + *v + "' must start with ldap:// or ldaps://");
    d.ldap_url = *v;
  }
  if (auto v = m.string("base_dn")) d.base_dn = *v;
  if (auto v = m.string("fhir_url")) {
    if (!v->starts_with("https://") && !v->starts_with("http://"))
      m.error_at("fhir_url", "'" + *v + "' must start with https:// (or http:// for a local test server)");
    d.fhir_url = *v;
  }
  if (auto v = m.path("api_key_file")) d.api_key_file = *v;
  if (auto v = m.string("source")) {
    if (*v != "ldap" && *v != "fhir") m.error_at("source", "'" + *v + "' is not a directory source (ldap or fhir)");
    d.source = *v;
  }
  if (auto v = m.duration("timeout", 1s, 10min)) d.timeout = *v;
}

}  // namespace orgproxy::config::detail
