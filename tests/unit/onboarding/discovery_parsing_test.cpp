// Reading directory data: RPPS argument, RFC 4515 escaping, RFC 4517 postal addresses, départements,
// structure identifiers (full or bare SIRET) and sectors.
#include <gtest/gtest.h>

#include "orgproxy/config/load.hpp"
#include "orgproxy/onboarding/discovery.hpp"
#include "orgproxy/testkit/site_ids.hpp"

namespace ob = orgproxy::onboarding;
namespace tk = orgproxy::testkit;

namespace {

ob::DiscoveryError::Kind rpps_error_kind(std::string_view rpps, std::string* message = nullptr) {
  try {
    ob::check_rpps_argument(rpps);
  } catch (const ob::DiscoveryError& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "'" << rpps << "' was accepted";
  return ob::DiscoveryError::Kind::protocol;
}

}  // namespace

TEST(OnboardingRpps, valid_rpps_is_accepted) {
  EXPECT_NO_THROW(ob::check_rpps_argument("99700270616"));
  EXPECT_NO_THROW(ob::check_rpps_argument("10023456782"));
}

TEST(OnboardingRpps, wrong_length_wrong_key_and_person_id_are_refused_with_the_reason) {
  std::string m;
  EXPECT_EQ(rpps_error_kind("9970027061", &m), ob::DiscoveryError::Kind::bad_input);
  EXPECT_NE(m.find("must be 11 digits, not 10"), std::string::npos) << m;
  EXPECT_EQ(rpps_error_kind("99700270617", &m), ob::DiscoveryError::Kind::bad_input);
  EXPECT_NE(m.find("check digit"), std::string::npos) << m;
  EXPECT_EQ(rpps_error_kind("899700270616", &m), ob::DiscoveryError::Kind::bad_input);
  EXPECT_NE(m.find("give the RPPS itself: 99700270616"), std::string::npos) << m;
  EXPECT_EQ(rpps_error_kind("9970027061*", &m), ob::DiscoveryError::Kind::bad_input);
  EXPECT_NE(m.find("non-digit"), std::string::npos) << m;
  EXPECT_EQ(rpps_error_kind(""), ob::DiscoveryError::Kind::bad_input);
}

TEST(OnboardingLdap, filter_values_are_escaped_per_rfc4515) {
  EXPECT_EQ(ob::ldap_filter_escape("99700270616"), "99700270616");
  EXPECT_EQ(ob::ldap_filter_escape("a*b(c)d\\e"), "a\\2ab\\28c\\29d\\5ce");
  EXPECT_EQ(ob::ldap_filter_escape(std::string("x\0y", 3)), "x\\00y");
}

TEST(OnboardingLdap, postal_address_dollar_separates_lines_and_escapes_are_decoded) {
  EXPECT_EQ(ob::split_postal_address("12 rue des Tilleuls$Bâtiment B$75011 Paris"),
            (std::vector<std::string>{"12 rue des Tilleuls", "Bâtiment B", "75011 Paris"}));
  EXPECT_EQ(ob::split_postal_address(" 1 place du Marché $ $13002 Marseille "),
            (std::vector<std::string>{"1 place du Marché", "13002 Marseille"}));
  EXPECT_EQ(ob::split_postal_address("Prix \\24 fixe\\5Cbis$75001 Paris"),
            (std::vector<std::string>{"Prix $ fixe\\bis", "75001 Paris"}));
  EXPECT_TRUE(ob::split_postal_address("").empty());
}

TEST(OnboardingLdap, departement_comes_from_the_postal_code) {
  EXPECT_EQ(ob::departement_from_address({"12 rue X", "75011 Paris"}), "75");
  EXPECT_EQ(ob::departement_from_address({"06000 Nice"}), "06");
  EXPECT_EQ(ob::departement_from_address({"20090 Ajaccio"}), "2A");
  EXPECT_EQ(ob::departement_from_address({"20200 Bastia"}), "2B");
  EXPECT_EQ(ob::departement_from_address({"97110 Pointe-à-Pitre"}), "971");
  EXPECT_EQ(ob::departement_from_address({"98000 Monaco"}), "");  // not a French département
  EXPECT_EQ(ob::departement_from_address({"00123 Nowhere"}), "");
  // A street number or a SIRET-length number is not a postal code.
  EXPECT_EQ(ob::departement_from_address({"1234 route", "SIRET 81234567600017"}), "");
}

TEST(OnboardingClassify, rpps_rang_ids_are_recognised_for_cabinets) {
  const std::string id(tk::kSiteB);
  ob::DiscoveredSite s = ob::classify_site(id, "SA07");
  EXPECT_EQ(s.structure_id, id);
  EXPECT_EQ(s.id_type, "rpps-rang");
  EXPECT_TRUE(s.warnings.empty());
}

TEST(OnboardingClassify, bare_siret_is_written_in_full_form_and_said) {
  const std::string full(tk::kSiteA);
  ob::DiscoveredSite s = ob::classify_site(full.substr(1), "SA09");
  EXPECT_EQ(s.structure_id, full);
  EXPECT_EQ(s.directory_id, full.substr(1));
  EXPECT_EQ(s.id_type, "siret");
  EXPECT_NE(s.id_note.find("bare SIRET in directory"), std::string::npos);
  EXPECT_TRUE(s.warnings.empty());
}

TEST(OnboardingClassify, prefixed_siret_is_kept_as_written_and_said) {
  const std::string full(tk::kSiteA);
  ob::DiscoveredSite s = ob::classify_site(full, "SA09");
  EXPECT_EQ(s.structure_id, full);
  EXPECT_EQ(s.id_type, "siret");
  EXPECT_NE(s.id_note.find("prefixed identifier"), std::string::npos);
}

TEST(OnboardingClassify, bad_keys_and_sector_disagreements_are_warnings_not_sites) {
  std::string bad_siret(tk::kSiteA);
  bad_siret.back() = bad_siret.back() == '9' ? '0' : static_cast<char>(bad_siret.back() + 1);
  ob::DiscoveredSite s = ob::classify_site(bad_siret.substr(1), "SA09");
  EXPECT_TRUE(s.structure_id.empty());
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_NE(s.warnings.front().find("bare SIRET"), std::string::npos) << s.warnings.front();

  ob::DiscoveredSite junk = ob::classify_site("hello", "SA07");
  EXPECT_TRUE(junk.structure_id.empty());
  EXPECT_FALSE(junk.warnings.empty());

  ob::DiscoveredSite disagree = ob::classify_site(std::string(tk::kSiteA), "SA07");
  EXPECT_EQ(disagree.structure_id, std::string(tk::kSiteA));
  ASSERT_EQ(disagree.warnings.size(), 1u);
  EXPECT_NE(disagree.warnings.front().find("RPPS rang"), std::string::npos);
}

TEST(OnboardingClassify, configured_sites_are_marked_by_exact_id) {
  const std::string yaml = "listeners: [{ name: ris, port: 0 }]\n"
                           "tenants:\n  - { id: \"" + std::string(tk::kSiteB) + "\", name: B, sector: SA07 }\n";
  orgproxy::config::LoadResult loaded = orgproxy::config::load_config_text(yaml, "mark.yaml");
  ob::DiscoveryResult r;
  r.sites.push_back(ob::classify_site(std::string(tk::kSiteB), "SA07"));
  r.sites.push_back(ob::classify_site(std::string(tk::kSiteA).substr(1), "SA09"));
  ob::mark_configured(r, *loaded.config);
  EXPECT_TRUE(r.sites[0].configured);
  EXPECT_FALSE(r.sites[1].configured);
}
