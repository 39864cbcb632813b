// Directory discovery: the practice sites of one health professional, from the ANS health directory
// (historically LDAP, today also the Annuaire Santé FHIR API), turned into tenant candidates.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "orgproxy/config/config.hpp"

namespace orgproxy::onboarding {

/// A discovery that could not run or found nothing usable: bad RPPS, directory unreachable, professional
/// unknown or without activity. The message is meant for the administrator as is (it names the RPPS and
/// the directory; never an API key).
class DiscoveryError : public std::runtime_error {
 public:
  enum class Kind { bad_input, unreachable, protocol, not_found, no_activity };
  DiscoveryError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

/// One activity of the professional: a practice site as the directory describes it.
struct DiscoveredSite {
  std::string directory_id;  ///< the structure identifier exactly as the directory gave it (`ou`)
  std::string structure_id;  ///< full national structure id (type digit + identifier); "" when unrecognised
  std::string id_type;       ///< "rpps-rang", "siret", "finess", "siren", "adeli" or "" (unrecognised)
  std::string id_note;       ///< how the id was read, e.g. "bare SIRET in directory, written 3+SIRET"
  std::string sector;        ///< RPPS activity sector (sectActRPPS), e.g. "SA07"
  std::string name;          ///< raisonSociale
  std::vector<std::string> address_lines;  ///< postalAddress, one element per line
  std::string departement;   ///< derived from the postal code when unambiguous, else ""
  bool configured = false;   ///< a tenant with exactly `structure_id` is already in the configuration
  std::vector<std::string> warnings;  ///< data that needs a human look (bad key, sector/type disagreement)
};

/// The professional's sites.
struct DiscoveryResult {
  std::string rpps;    ///< 11 digits
  std::string source;  ///< where they came from: LDAP URL + base DN, or the FHIR base URL
  std::vector<DiscoveredSite> sites;
};

/// LDAP directory settings (RFC 4516 URL, base DN, timeout).
struct LdapSource {
  std::string url = "ldap://annuaire.sante.fr";  ///< ldap:// or ldaps://
  std::string base_dn;                           ///< e.g. "o=TEST,c=fr" for the test directory
  std::chrono::milliseconds timeout{10000};      ///< network and search time limit
};

/// Annuaire Santé FHIR API settings.
struct FhirSource {
  std::string base_url = "https://gateway.api.esante.gouv.fr/fhir/v2";  ///< http:// or https://
  std::string api_key_file;  ///< file holding the ESANTE-API-KEY value (one trailing newline stripped)
  std::string api_key_header = "ESANTE-API-KEY";
  std::chrono::milliseconds timeout{10000};  ///< per HTTP exchange
  unsigned max_pages = 20;                   ///< Bundle "next" links followed at most
};

/// Checks an RPPS given on the command line: exactly 11 digits with a valid Luhn key. Throws DiscoveryError
/// (bad_input) naming what is wrong; a person id (`8` + RPPS, 12 digits) gets the RPPS to write instead.
void check_rpps_argument(std::string_view rpps);

/// Escapes a value for an LDAP search filter (RFC 4515 §3: `*`, `(`, `)`, `\` and NUL as `\XX`).
std::string ldap_filter_escape(std::string_view value);

/// Splits an LDAP postal address (RFC 4517 §3.3.28: lines separated by `$`, `\24` and `\5C` escapes) into
/// trimmed, non-empty lines.
std::vector<std::string> split_postal_address(std::string_view value);

/// The département of a French postal code found in `lines` (the first 5-digit token): "75", "2A"/"2B"
/// (Corsica, 200xx–201xx / 202xx–206xx), "971"… (overseas). "" when none is found.
std::string departement_from_address(const std::vector<std::string>& lines);

/// Recognises a directory structure identifier for an activity of `sector`: the full form (type digit +
/// identifier, checked as the configuration checks it), or a bare 14-digit SIRET (converted to `3`+SIRET and
/// said so in `id_note`). Fills directory_id, structure_id, id_type, id_note, sector and warnings.
DiscoveredSite classify_site(std::string_view directory_id, std::string_view sector);

/// Marks the sites whose structure id is a configured tenant (exact text compare).
void mark_configured(DiscoveryResult& result, const config::Config& config);

/// Searches the LDAP directory for `(cn=8<rpps>)` under `source.base_dn` (subtree), reading `ou`,
/// `raisonSociale`, `postalAddress` and `sectActRPPS`. Entries carrying `ou` are activities; a match without
/// any is the professional alone. Throws DiscoveryError: bad_input (RPPS, URL), unreachable (connect,
/// timeout), protocol (other LDAP errors), not_found (no entry), no_activity (professional without site).
DiscoveryResult discover_ldap(std::string_view rpps, const LdapSource& source);

/// Asks the FHIR API for `PractitionerRole?practitioner.identifier=urn:oid:1.2.250.1.71.4.2.1|8<rpps>
/// &_include=PractitionerRole:organization` (following `next` links), then reads each Organization's
/// identifiers (TRE-G07 type code or system: idNatSt, FINESS, SIRET, RPPS rang), sector (type coding from
/// the TRE-R02 SecteurActivite code system), name and address. Organizations referenced but not included are
/// fetched one by one. Throws DiscoveryError as discover_ldap (HTTP 401/403 → protocol, saying the key was
/// refused).
DiscoveryResult discover_fhir(std::string_view rpps, const FhirSource& source);

}  // namespace orgproxy::onboarding
