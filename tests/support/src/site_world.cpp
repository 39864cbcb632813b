#include "orgproxy/testkit/site_world.hpp"

#include <stdexcept>

#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/site_ids.hpp"

namespace orgproxy::testkit {

const SiteIdentity& Site::identity(const std::string& purpose) const {
  for (const auto& i : identities)
    if (i.purpose == purpose) return i;
  throw std::out_of_range("site " + spec.id + " has no identity of purpose " + purpose);
}

ConfigTenant Site::tenant() const {
  ConfigTenant t{spec.id, spec.name, spec.sector, spec.departement, {}};
  for (const auto& i : identities) t.identities.push_back({i.purpose, i.cert_file, i.key_uri});
  return t;
}

SiteWorld::SiteWorld(const std::filesystem::path& dir, std::vector<SiteSpec> sites, SiteWorldOptions options) {
  std::filesystem::create_directories(dir);
  // The token first: SoftHSM reads SOFTHSM2_CONF when a module user first initialises it.
  token_ = std::make_unique<SoftHsmToken>(dir / "token", options.token_label, "orgproxy-test-pin-4711");
  pki_ = std::make_unique<TestPki>(dir / "pki");
  server_ = pki_->issue_server_cert("upstream", {"localhost"}, {"127.0.0.1", "::1"});
  unsigned key_number = 0;
  for (auto& spec : sites) {
    Site site{spec, {}};
    const bool extractable = options.extractable_sites.count(spec.id) != 0;
    for (const std::string purpose : {"dmp", "insi-auto"}) {
      TokenKeyOptions key_options;
      key_options.id = std::string(1, static_cast<char>(++key_number));
      key_options.label = spec.id + "-" + purpose;
      key_options.extractable = extractable;
      key_options.sensitive = !extractable;
      TokenKey key = token_->generate_key(key_options);
      OrgCertOptions cert;
      cert.subject = {spec.departement, spec.name, spec.id, purpose == "dmp" ? spec.name : "INSI-AUTO"};
      cert.file_stem = spec.id + "-" + purpose;
      const auto chain = pki_->issue_org_cert(key.public_key.get(), cert);
      site.identities.push_back(
          {purpose, chain.string(), key.uri, cert_subject_rfc2253(chain), cert_serial_hex(chain)});
    }
    sites_.push_back(std::move(site));
  }
}

const Site& SiteWorld::site(const std::string& id) const {
  for (const auto& s : sites_)
    if (s.spec.id == id) return s;
  throw std::out_of_range("no site " + id + " in this world");
}

OrgproxyConfig SiteWorld::base_config() const {
  OrgproxyConfig config;
  config.module_path = SoftHsmToken::module_path();
  config.pin_file = token_->pin_file().string();
  for (const auto& s : sites_) config.tenants.push_back(s.tenant());
  return config;
}

OrgproxyStart SiteWorld::daemon_start() const {
  OrgproxyStart start;
  start.env.emplace_back("SOFTHSM2_CONF", token_->conf_path().string());
  return start;
}

std::vector<SiteSpec> three_test_sites() {
  return {{std::string(kSiteA), "SA09", "Imagerie Medicale Alpha", "75"},
          {std::string(kSiteB), "SA08", "Cabinet Radiologie Beta", "69"},
          {site_c(), "SA07", "Cabinet Radiologie Gamma", "13"}};
}

std::vector<SiteSpec> three_demo_sites() {
  const std::string siren = std::string("73282932") + luhn_check_digit("73282932");
  return {{site_id_siret(siren + "0001"), "SA09", "Imagerie du Parc", "75"},
          {site_id_rpps_rang("1001234567", "001"), "SA07", "Cabinet Radiologie Lambert", "92"},
          {site_id_rpps_rang("1009876543", "002"), "SA08", "Cabinet Imagerie Moreau", "94"}};
}

}  // namespace orgproxy::testkit
