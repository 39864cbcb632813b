// A ready world of practice sites for integration tests and the demo: one test PKI, one SoftHSM token, and
// for each site a `dmp` identity (CN = site name) and an `insi-auto` identity (CN = INSI-AUTO), their keys
// generated inside the token (non-extractable unless asked otherwise), their ORG certificates issued.
#pragma once

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/softhsm_token.hpp"

namespace orgproxy::testkit {

/// Who a site is (DOMAIN.md: structure identifier = OU of its certificates).
struct SiteSpec {
  std::string id;           ///< full structure identifier, e.g. "312345678200002"
  std::string sector;       ///< "SA09" (3 + SIRET) or "SA07"/"SA08" (4 + RPPS + rang)
  std::string name;         ///< raison sociale; also the CN of its dmp certificate
  std::string departement = "75";
};

/// One identity of a site, as written in the daemon's configuration and as an upstream should see it.
struct SiteIdentity {
  std::string purpose;      ///< "dmp" or "insi-auto"
  std::string cert_file;    ///< chain file: leaf then intermediate
  std::string key_uri;      ///< pkcs11: URI of the key in the token
  std::string subject_dn;   ///< RFC 2253, what nginx's $ssl_client_s_dn shows for it
  std::string serial_hex;   ///< what nginx's $ssl_client_serial shows for it
};

struct Site {
  SiteSpec spec;
  std::vector<SiteIdentity> identities;
  /// The identity of `purpose`; throws std::out_of_range when the site has none.
  const SiteIdentity& identity(const std::string& purpose) const;
  /// The tenant entry of the daemon's configuration.
  ConfigTenant tenant() const;
};

struct SiteWorldOptions {
  std::string token_label = "orgproxy-sites";
  /// Sites (by id) whose keys are generated extractable and non-sensitive (negative tests only).
  std::set<std::string> extractable_sites;
};

/// The world. Construction generates 2 RSA-2048 keys per site in the token and issues their certificates;
/// sets SOFTHSM2_CONF for this process (children inherit it). Throws std::runtime_error on any failure.
class SiteWorld {
 public:
  SiteWorld(const std::filesystem::path& dir, std::vector<SiteSpec> sites, SiteWorldOptions options = {});

  TestPki& pki() { return *pki_; }
  SoftHsmToken& token() { return *token_; }
  const std::vector<Site>& sites() const { return sites_; }
  const Site& site(const std::string& id) const;
  /// Server certificate and key for upstream mocks (SANs localhost, 127.0.0.1, ::1), issued once.
  const IssuedFiles& upstream_server_cert() const { return server_; }
  /// A daemon configuration with the token, PIN file and every site as a tenant (no upstreams or routes).
  OrgproxyConfig base_config() const;
  /// Start options for the daemon with this world's SOFTHSM2_CONF in its environment.
  OrgproxyStart daemon_start() const;

 private:
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<SoftHsmToken> token_;
  IssuedFiles server_;
  std::vector<Site> sites_;
};

/// The three sites of the main-slice tests: A = 312345678200002 (SA09, 3 + SIRET), B = 498765432103017
/// (SA08, 4 + RPPS + rang 017), C = site_c() (SA07, 4 + RPPS + rang 001). Invented names.
std::vector<SiteSpec> three_test_sites();

/// The three sites of the demo (one SA09, one SA07, one SA08; valid Luhn keys; invented names).
std::vector<SiteSpec> three_demo_sites();

}  // namespace orgproxy::testkit
