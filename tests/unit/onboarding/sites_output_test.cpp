// Renderings of discovered sites: the YAML stubs load as configuration; JSON and table carry the facts.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "orgproxy/config/load.hpp"
#include "orgproxy/onboarding/sites_output.hpp"
#include "orgproxy/testkit/site_ids.hpp"

namespace ob = orgproxy::onboarding;
namespace tk = orgproxy::testkit;

namespace {

ob::DiscoveryResult sample() {
  ob::DiscoveryResult r;
  r.rpps = "10023456782";
  r.source = "ldap://127.0.0.1:389 (base 'o=TEST,c=fr')";
  ob::DiscoveredSite cabinet = ob::classify_site(tk::site_id_rpps_rang("1002345678", "001"), "SA07");
  cabinet.name = "Cabinet \"Les Tilleuls\": radiologie # 1";
  cabinet.address_lines = {"12 rue des Tilleuls", "75011 Paris"};
  cabinet.departement = "75";
  ob::DiscoveredSite company = ob::classify_site(std::string(tk::kSiteA).substr(1), "SA09");
  company.name = "SELARL Imagerie Médicale";
  company.address_lines = {"06000 Nice"};
  company.departement = "06";
  ob::DiscoveredSite unknown = ob::classify_site("12345", "SA07");
  unknown.name = "Unknown";
  r.sites = {cabinet, company, unknown};
  return r;
}

}  // namespace

TEST(SitesOutput, yaml_stubs_load_as_a_configuration_with_ids_and_departements_as_text) {
  const ob::DiscoveryResult r = sample();
  const std::string stubs = ob::render_tenant_stubs_yaml(r);
  auto loaded = orgproxy::config::load_config_text("listeners: [{ name: ris, port: 0 }]\n" + stubs, "stubs.yaml");
  ASSERT_EQ(loaded.config->tenants.size(), 2u) << stubs;
  const auto& cabinet = loaded.config->tenants[0];
  EXPECT_EQ(cabinet.id, r.sites[0].structure_id);
  EXPECT_EQ(cabinet.name, r.sites[0].name);
  EXPECT_EQ(cabinet.sector, "SA07");
  EXPECT_EQ(cabinet.departement, "75");
  EXPECT_EQ(cabinet.responsible_rpps, "10023456782");
  const auto& company = loaded.config->tenants[1];
  EXPECT_EQ(company.id, std::string(tk::kSiteA));
  EXPECT_EQ(company.departement, "06");  // the leading zero survives: quoted text
  EXPECT_TRUE(company.responsible_rpps.empty());
  EXPECT_NE(stubs.find("bare SIRET in directory"), std::string::npos);
  EXPECT_NE(stubs.find("# not recognised, left out: directory id \"12345\""), std::string::npos) << stubs;
  EXPECT_NE(stubs.find("# identities:"), std::string::npos);
}

TEST(SitesOutput, configured_sites_are_not_stubbed_again) {
  ob::DiscoveryResult r = sample();
  r.sites[0].configured = true;
  const std::string stubs = ob::render_tenant_stubs_yaml(r);
  EXPECT_NE(stubs.find("# already configured: " + r.sites[0].structure_id), std::string::npos) << stubs;
  auto loaded = orgproxy::config::load_config_text("listeners: [{ name: ris, port: 0 }]\n" + stubs, "stubs.yaml");
  ASSERT_EQ(loaded.config->tenants.size(), 1u);
  EXPECT_EQ(loaded.config->tenants[0].id, std::string(tk::kSiteA));
}

TEST(SitesOutput, json_and_table_carry_types_notes_and_marks) {
  ob::DiscoveryResult r = sample();
  r.sites[1].configured = true;
  nlohmann::json j = ob::sites_to_json(r);
  ASSERT_EQ(j["sites"].size(), 3u);
  EXPECT_EQ(j["sites"][0]["id_type"], "rpps-rang");
  EXPECT_EQ(j["sites"][1]["structure_id"], std::string(tk::kSiteA));
  EXPECT_EQ(j["sites"][1]["directory_id"], std::string(tk::kSiteA).substr(1));
  EXPECT_EQ(j["sites"][1]["configured"], true);
  EXPECT_EQ(j["sites"][2]["structure_id"], "");
  EXPECT_EQ(j["sites"][0]["address"][1], "75011 Paris");
  const std::string table = ob::render_sites_table(r);
  EXPECT_NE(table.find("note: " + std::string(tk::kSiteA) + ": bare SIRET in directory"), std::string::npos) << table;
  EXPECT_NE(table.find("(12345)"), std::string::npos) << table;
  EXPECT_NE(table.find("warning: 12345"), std::string::npos) << table;
}
