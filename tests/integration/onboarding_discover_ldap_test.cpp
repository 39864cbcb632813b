// `orgproxy sites discover` against a real slapd serving the test health directory: one professional with
// four activities (two SA07 cabinets, one SA08, one SA09 company recorded with a bare SIRET), one without any.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "onboarding_support.hpp"

namespace orgproxy::onboarding_it {
namespace {

constexpr const char* kProfessional = "10023456782";  // four activities
constexpr const char* kNoActivity = "10087654322";
constexpr const char* kUnknown = "99700270616";       // valid RPPS, absent from the directory

class DiscoverLdap : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new tk::TempDir("onboarding-ldap");
    try {
      slapd_ = new SlapdDirectory(tmp_->subdir("slapd"));
    } catch (const std::exception& e) {
      start_error_ = e.what();
    }
  }
  void SetUp() override {
    if (!slapd_) GTEST_FAIL() << "the test directory server did not start: " << start_error_;
  }
  static void TearDownTestSuite() {
    delete slapd_;
    delete tmp_;
    slapd_ = nullptr;
    tmp_ = nullptr;
  }
  CliRun discover(const std::string& rpps, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"sites", "discover", "--rpps", rpps, "--url", slapd_->url(),
                                     "--base-dn", "o=TEST,c=fr", "--timeout", "30"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_orgproxy(*tmp_, args);
  }
  static tk::TempDir* tmp_;
  static SlapdDirectory* slapd_;
  static std::string start_error_;
};
std::string DiscoverLdap::start_error_;
tk::TempDir* DiscoverLdap::tmp_ = nullptr;
SlapdDirectory* DiscoverLdap::slapd_ = nullptr;

TEST_F(DiscoverLdap, the_four_activities_come_back_with_the_right_identifier_types) {
  CliRun r = discover(kProfessional, {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rpps"], kProfessional);
  ASSERT_EQ(j["sites"].size(), 4u) << r.out;
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& s : j["sites"]) by_id[s["structure_id"].get<std::string>()] = s;
  for (const char* id : {"410023456782001", "410023456782002"}) {
    ASSERT_TRUE(by_id.count(id)) << r.out;
    EXPECT_EQ(by_id[id]["id_type"], "rpps-rang");
    EXPECT_EQ(by_id[id]["sector"], "SA07");
  }
  EXPECT_EQ(by_id["410023456782003"]["id_type"], "rpps-rang");
  EXPECT_EQ(by_id["410023456782003"]["sector"], "SA08");
  EXPECT_EQ(by_id["410023456782003"]["departement"], "06");
  const nlohmann::json& sel = by_id["381234567600017"];
  EXPECT_EQ(sel["id_type"], "siret");
  EXPECT_EQ(sel["sector"], "SA09");
  EXPECT_EQ(sel["directory_id"], "81234567600017");
  EXPECT_NE(sel["id_note"].get<std::string>().find("bare SIRET in directory"), std::string::npos);
  EXPECT_EQ(sel["name"], "SELARL Imagerie Médicale des Trois Vallées");
  EXPECT_EQ(sel["address"], (nlohmann::json{"Zone d'activité des Prés", "7 allée des Cèdres", "38000 Grenoble"}));
  for (const auto& s : j["sites"]) EXPECT_EQ(s["configured"], false);
}

TEST_F(DiscoverLdap, the_table_names_every_site_and_says_which_siret_was_bare) {
  CliRun r = discover(kProfessional);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* id : {"410023456782001", "410023456782002", "410023456782003", "381234567600017"})
    EXPECT_NE(r.out.find(id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("note: 381234567600017: bare SIRET in directory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("12 rue des Tilleuls, Bâtiment B, 75011 Paris"), std::string::npos) << r.out;
}

TEST_F(DiscoverLdap, yaml_stubs_pass_check_config_and_the_sites_are_then_marked_configured) {
  CliRun stubs = discover(kProfessional, {"--yaml"});
  ASSERT_EQ(stubs.exit_code, 0) << stubs.err;
  const std::filesystem::path dir = tmp_->subdir("group");
  std::filesystem::create_directories(dir / "conf.d");
  tk::write_file(dir / "conf.d" / "discovered.yaml", stubs.out);
  const std::string main = (dir / "orgproxy.yaml").string();
  tk::write_file(main, "listeners: [{ name: ris, port: 0 }]\ninclude: [conf.d/*.yaml]\n");
  CliRun check = run_orgproxy(*tmp_, {"check-config", "--offline", "--config", main});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << "\n--- stubs:\n" << stubs.out;

  CliRun again = discover(kProfessional, {"--json", "--config", main});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  nlohmann::json j = nlohmann::json::parse(again.out);
  ASSERT_EQ(j["sites"].size(), 4u);
  for (const auto& s : j["sites"]) EXPECT_EQ(s["configured"], true) << s.dump();

  CliRun restub = discover(kProfessional, {"--yaml", "--config", main});
  ASSERT_EQ(restub.exit_code, 0) << restub.err;
  EXPECT_EQ(restub.out.find("tenants:"), std::string::npos) << restub.out;
  EXPECT_NE(restub.out.find("# already configured: 381234567600017"), std::string::npos) << restub.out;
}

TEST_F(DiscoverLdap, url_and_base_dn_come_from_the_configuration_directory_section) {
  const std::string config = tmp_->file("with-directory.yaml");
  tk::write_file(config, "listeners: [{ name: ris, port: 0 }]\ndirectory:\n  ldap_url: \"" + slapd_->url() +
                             "\"\n  base_dn: \"o=TEST,c=fr\"\n  timeout: 30s\n");
  CliRun r = run_orgproxy(*tmp_, {"sites", "discover", "--rpps", kProfessional, "--config", config, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["sites"].size(), 4u);
  // A flag wins over the setting: the wrong base given on the command line is the one used.
  CliRun flag = run_orgproxy(*tmp_, {"sites", "discover", "--rpps", kProfessional, "--config", config,
                                     "--base-dn", "o=PROD,c=fr"});
  EXPECT_NE(flag.exit_code, 0);
  EXPECT_NE(flag.err.find("o=PROD,c=fr"), std::string::npos) << flag.err;
}

TEST_F(DiscoverLdap, a_professional_without_activity_gets_a_clear_message) {
  CliRun r = discover(kNoActivity);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("professional 810087654322"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("has no activity"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(DiscoverLdap, an_unknown_professional_gets_a_clear_message) {
  CliRun r = discover(kUnknown);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no professional with RPPS 99700270616"), std::string::npos) << r.err;
}

TEST_F(DiscoverLdap, a_wrong_base_dn_is_named) {
  CliRun r = run_orgproxy(*tmp_, {"sites", "discover", "--rpps", kProfessional, "--url", slapd_->url(), "--base-dn",
                                  "o=PROD,c=fr"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("base DN does not exist"), std::string::npos) << r.err;
}

TEST_F(DiscoverLdap, a_malformed_rpps_is_refused_before_any_query) {
  // Positive control: a valid RPPS does reach the directory.
  const std::size_t before = slapd_->searches();
  ASSERT_EQ(discover(kProfessional).exit_code, 0);
  for (int i = 0; i < 100 && slapd_->searches() == before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::size_t after_valid = slapd_->searches();
  EXPECT_EQ(after_valid, before + 1);

  CliRun short_rpps = discover("1002345678");
  EXPECT_NE(short_rpps.exit_code, 0);
  EXPECT_NE(short_rpps.err.find("must be 11 digits, not 10"), std::string::npos) << short_rpps.err;
  CliRun bad_key = discover("10023456783");
  EXPECT_NE(bad_key.exit_code, 0);
  EXPECT_NE(bad_key.err.find("wrong check digit"), std::string::npos) << bad_key.err;
  CliRun injection = discover("1002345678*");
  EXPECT_NE(injection.exit_code, 0);
  EXPECT_NE(injection.err.find("non-digit"), std::string::npos) << injection.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(slapd_->searches(), after_valid) << "a malformed RPPS reached the directory";
}

TEST(DiscoverLdapUnreachable, a_directory_that_does_not_answer_is_reported_with_a_non_zero_exit) {
  tk::TempDir tmp("onboarding-ldap-down");
  const std::uint16_t closed = tk::free_loopback_port();  // nothing listens there
  CliRun r = run_orgproxy(tmp, {"sites", "discover", "--rpps", kProfessional, "--url",
                                "ldap://127.0.0.1:" + std::to_string(closed), "--base-dn", "o=TEST,c=fr"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is unreachable"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("127.0.0.1:" + std::to_string(closed)), std::string::npos) << r.err;

  // A server that accepts but never answers: the timeout ends the wait.
  tk::SilentTcpServer silent;
  const auto start = std::chrono::steady_clock::now();
  CliRun hung = run_orgproxy(tmp, {"sites", "discover", "--rpps", kProfessional, "--url",
                                   "ldap://127.0.0.1:" + std::to_string(silent.port()), "--base-dn", "o=TEST,c=fr",
                                   "--timeout", "2"});
  EXPECT_NE(hung.exit_code, 0);
  EXPECT_NE(hung.err.find("unreachable"), std::string::npos) << hung.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

}  // namespace
}  // namespace orgproxy::onboarding_it
