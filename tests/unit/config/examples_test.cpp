// The shipped examples must stay valid as the schema evolves, and say what they claim to say.
#include "config_test_util.hpp"
#include "orgproxy/config/identifiers.hpp"

namespace orgproxy::config::test {
namespace {

const std::filesystem::path kExamples = std::filesystem::path(__FILE__).parent_path() / "../../../config/examples";

LoadResult load_example(const std::string& name) {
  try {
    return load_config(kExamples / name);
  } catch (const ConfigError& e) {
    ADD_FAILURE() << e.what();
    return {};
  }
}

void expect_no_warnings(const LoadResult& r) {
  for (const auto& w : r.warnings) ADD_FAILURE() << w.str();
}

// Every site id of an example passes its type's check and fits its sector (no warning either).
void expect_ids_valid_for_sector(const Config& c) {
  for (const Tenant& t : c.tenants) {
    const auto check = check_structure_id(t.id);
    EXPECT_TRUE(check.ok) << t.id << ": " << check.error;
    EXPECT_TRUE(check.warning.empty()) << t.id << ": " << check.warning;
    if (t.sector == "SA09") {
      EXPECT_EQ(check.type, StructureIdType::siret) << t.id;
    }
    if (t.sector == "SA07" || t.sector == "SA08") {
      EXPECT_EQ(check.type, StructureIdType::rpps_rang) << t.id;
    }
    if (check.type == StructureIdType::rpps_rang && !t.responsible_rpps.empty()) {
      EXPECT_EQ(t.id.substr(1, 11), t.responsible_rpps) << "a cabinet's RPPS rang id carries its responsible RPPS";
    }
  }
}

TEST(Examples, main_example_with_its_sites_loads_without_warnings) {
  LoadResult r = load_example("orgproxy.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tenants.size(), 2u);
  EXPECT_NE(r.config->find_tenant("499700270616011"), nullptr);
  EXPECT_NE(r.config->find_tenant("312345678200002"), nullptr);
  expect_no_warnings(r);
}

TEST(Examples, group_example_with_clients_loads_without_warnings) {
  LoadResult r = load_example("group.yaml");
  ASSERT_TRUE(r.config);
  ASSERT_EQ(r.config->clients.size(), 3u);
  EXPECT_TRUE(r.config->clients[0].allows_tenant("312345678200002"));
  EXPECT_FALSE(r.config->clients[1].allows_tenant("499700270616011"));
  // The certificate client (downstream TLS with client_ca on the listener): one site, by subject.
  EXPECT_EQ(r.config->clients[2].cert_subjects, std::vector<std::string>{"CN=ris.lyon,O=Groupe Exemple,C=FR"});
  EXPECT_FALSE(r.config->clients[2].allows_tenant("499700270616011"));
  ASSERT_TRUE(r.config->listeners[0].tls);
  EXPECT_FALSE(r.config->listeners[0].tls->client_ca_file.empty());
  expect_no_warnings(r);
}

TEST(Examples, single_sa09_site_is_a_siret_id_served_by_a_fixed_listener) {
  LoadResult r = load_example("single-site-sa09.yaml");
  ASSERT_TRUE(r.config);
  expect_no_warnings(r);
  const Config& c = *r.config;
  ASSERT_EQ(c.tenants.size(), 1u);
  const Tenant& site = c.tenants[0];
  EXPECT_EQ(site.id, "381234567600017");
  EXPECT_EQ(site.sector, "SA09");
  EXPECT_EQ(check_structure_id(site.id).type, StructureIdType::siret);
  expect_ids_valid_for_sector(c);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].fixed_tenant, site.id);
  EXPECT_TRUE(c.clients.empty()) << "loopback, no client rules: local clients only";
  for (Purpose p : {Purpose::dmp, Purpose::vihf_sign, Purpose::insi_auto}) EXPECT_EQ(site.identities.count(p), 1u);
  for (const auto& [name, u] : c.upstreams) EXPECT_EQ(u.environment, Environment::production) << name;
}

TEST(Examples, scm_of_four_cabinets_and_sel_of_two_siret_sites) {
  LoadResult r = load_example("group-scm-sel.yaml");
  ASSERT_TRUE(r.config);
  expect_no_warnings(r);
  const Config& c = *r.config;
  expect_ids_valid_for_sector(c);
  ASSERT_EQ(c.tenant_groups.count("scm-parc"), 1u);
  ASSERT_EQ(c.tenant_groups.count("selarl-rhone"), 1u);
  const auto& scm = c.tenant_groups.at("scm-parc");
  const auto& sel = c.tenant_groups.at("selarl-rhone");
  ASSERT_EQ(scm.size(), 4u);
  ASSERT_EQ(sel.size(), 2u);
  for (const auto& id : scm) {
    const Tenant* t = c.find_tenant(id);
    ASSERT_NE(t, nullptr) << id;
    EXPECT_TRUE(t->sector == "SA07" || t->sector == "SA08") << id;
  }
  // Two cabinets of one radiologist: same RPPS, two rangs.
  EXPECT_EQ(c.find_tenant(scm[0])->responsible_rpps, c.find_tenant(scm[1])->responsible_rpps);
  EXPECT_NE(scm[0], scm[1]);
  // The SEL's two sites: same SIREN, two establishments.
  EXPECT_EQ(sel[0].substr(1, 9), sel[1].substr(1, 9));
  EXPECT_NE(sel[0], sel[1]);
  for (const auto& id : sel) EXPECT_EQ(c.find_tenant(id)->sector, "SA09");
  // Each practice's RIS may act only for its own sites.
  ASSERT_EQ(c.clients.size(), 2u);
  for (const auto& id : scm) {
    EXPECT_TRUE(c.clients[0].allows_tenant(id));
    EXPECT_FALSE(c.clients[1].allows_tenant(id));
  }
  for (const auto& id : sel) {
    EXPECT_TRUE(c.clients[1].allows_tenant(id));
    EXPECT_FALSE(c.clients[0].allows_tenant(id));
  }
  // Every subnet of the source selector maps to an SCM cabinet.
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].source_tenants.size(), 4u);
  for (const auto& rule : c.listeners[0].source_tenants)
    EXPECT_NE(std::find(scm.begin(), scm.end(), rule.tenant), scm.end()) << rule.network.text;
}

TEST(Examples, group_insi_uses_test_environment_and_separate_insi_purposes) {
  LoadResult r = load_example("group-insi.yaml");
  ASSERT_TRUE(r.config);
  expect_no_warnings(r);
  const Config& c = *r.config;
  expect_ids_valid_for_sector(c);
  for (const auto& [name, u] : c.upstreams) EXPECT_EQ(u.environment, Environment::test) << name;
  const Upstream* auto_up = c.find_upstream("insi-auto-test");
  const Upstream* manu_up = c.find_upstream("insi-manu-test");
  ASSERT_TRUE(auto_up && manu_up);
  EXPECT_EQ(auto_up->host, "qualiflps-services-ps-tlsm.ameli.fr");
  EXPECT_EQ(auto_up->base_path, "/lps");
  EXPECT_EQ(auto_up->purpose, Purpose::insi_auto);
  EXPECT_EQ(manu_up->purpose, Purpose::insi_manu);
  const Upstream* dmp = c.find_upstream("dmp-test");
  ASSERT_TRUE(dmp);
  EXPECT_TRUE(dmp->host.ends_with(".lps2.dmp.gouv.fr")) << dmp->host;
  ASSERT_NE(c.match_route("/insi-manu/x", "h"), nullptr);
  EXPECT_EQ(c.match_route("/insi-manu/x", "h")->upstream, "insi-manu-test");
  EXPECT_EQ(c.match_route("/insi/x", "h")->upstream, "insi-auto-test");
  bool some_auto = false, some_manu = false;
  for (const Tenant& t : c.tenants) {
    some_auto |= t.identities.count(Purpose::insi_auto) > 0;
    some_manu |= t.identities.count(Purpose::insi_manu) > 0;
  }
  EXPECT_TRUE(some_auto && some_manu);
  // The batch client reaches INSi in batch mode only.
  const Client* batch = nullptr;
  for (const Client& cl : c.clients)
    if (cl.name == "batch-insi") batch = &cl;
  ASSERT_NE(batch, nullptr);
  EXPECT_TRUE(batch->allows_upstream("insi-auto-test"));
  EXPECT_FALSE(batch->allows_upstream("insi-manu-test"));
  EXPECT_FALSE(batch->allows_upstream("dmp-test"));
}

}  // namespace
}  // namespace orgproxy::config::test
