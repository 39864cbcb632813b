// `orgproxy sites discover --source fhir` against a local server shaped like the Annuaire Santé FHIR API:
// PractitionerRole pages with included Organizations, a next link, an Organization left to fetch alone, the
// API key header checked on every request.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "onboarding_support.hpp"

namespace orgproxy::onboarding_it {
namespace {

constexpr const char* kApiKey = "test-key-0b7e3c";

class DiscoverFhir : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string python = system_program("python3");
    ASSERT_FALSE(python.empty()) << "python3 is needed for the FHIR test server";
    tk::write_file(tmp_.file("api-key"), std::string(kApiKey) + "\n", 0600);
    tk::write_file(tmp_.file("wrong-key"), "not-the-key\n", 0600);
    tk::ProcessSpec spec;
    spec.argv = {python, data_file("fhir_directory_server.py"), "--data", data_file("fhir-directory.json"),
                 "--api-key", kApiKey, "--port-file", tmp_.file("port"), "--log", tmp_.file("requests.log")};
    spec.log_file = tmp_.file("server.log");
    server_ = std::make_unique<tk::ChildProcess>(spec);
    for (int i = 0; i < 600 && !std::filesystem::exists(tmp_.file("port")); ++i) {
      ASSERT_TRUE(server_->running()) << server_->log();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(std::filesystem::exists(tmp_.file("port"))) << server_->log();
    base_ = "http://127.0.0.1:" + tk::read_file(tmp_.file("port")) + "/fhir/v2";
  }

  CliRun discover(const std::string& rpps, const std::string& key_file, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"sites", "discover", "--source", "fhir", "--rpps", rpps,
                                     "--fhir-url", base_, "--api-key-file", key_file, "--timeout", "30"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_orgproxy(tmp_, args);
  }
  std::string requests() const {
    return std::filesystem::exists(tmp_.file("requests.log")) ? tk::read_file(tmp_.file("requests.log")) : "";
  }

  tk::TempDir tmp_{"onboarding-fhir"};
  std::unique_ptr<tk::ChildProcess> server_;
  std::string base_;
};

TEST_F(DiscoverFhir, organizations_of_the_practitioner_roles_become_four_typed_sites) {
  CliRun r = discover("10023456782", tmp_.file("api-key"), {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << "\nrequests:\n" << requests();
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["sites"].size(), 4u) << r.out;
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& s : j["sites"]) by_id[s["structure_id"].get<std::string>()] = s;
  EXPECT_EQ(by_id["410023456782001"]["id_type"], "rpps-rang");
  EXPECT_EQ(by_id["410023456782001"]["sector"], "SA07");
  EXPECT_EQ(by_id["410023456782001"]["address"],
            (nlohmann::json{"12 rue des Tilleuls", "Bâtiment B", "75011 Paris"}));
  EXPECT_EQ(by_id["410023456782002"]["sector"], "SA07");
  EXPECT_EQ(by_id["410023456782003"]["sector"], "SA08");
  EXPECT_EQ(by_id["410023456782003"]["departement"], "06");
  // The SELARL only has a SIRET identifier (TRE-G07 code 3): written in the full form, and said so.
  const nlohmann::json& sel = by_id["381234567600017"];
  EXPECT_EQ(sel["id_type"], "siret");
  EXPECT_EQ(sel["sector"], "SA09");
  EXPECT_NE(sel["id_note"].get<std::string>().find("SIRET identifier"), std::string::npos) << sel.dump();

  const std::string log = requests();
  EXPECT_EQ(log.find("key-bad"), std::string::npos) << log;
  EXPECT_NE(log.find("PractitionerRole?practitioner.identifier=urn%3Aoid%3A1.2.250.1.71.4.2.1%7C810023456782"),
            std::string::npos) << log;
  EXPECT_NE(log.find("_page=2"), std::string::npos) << "the next link was not followed:\n" << log;
  EXPECT_NE(log.find("/fhir/v2/Organization/org-sel"), std::string::npos) << log;
  EXPECT_EQ(log.find("/fhir/v2/Organization/org-cab1"), std::string::npos) << "an included Organization was fetched again";
}

TEST_F(DiscoverFhir, a_refused_api_key_is_reported_as_such) {
  CliRun r = discover("10023456782", tmp_.file("wrong-key"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("HTTP 401"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("API key"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("not-the-key"), std::string::npos) << "the key must never be printed";
  EXPECT_NE(requests().find("key-bad"), std::string::npos);
}

TEST_F(DiscoverFhir, no_activity_and_unknown_professional_get_clear_messages) {
  CliRun none = discover("10087654322", tmp_.file("api-key"));
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("has no activity"), std::string::npos) << none.err;
  CliRun unknown = discover("99700270616", tmp_.file("api-key"));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no professional with RPPS 99700270616"), std::string::npos) << unknown.err;
}

TEST_F(DiscoverFhir, a_missing_api_key_file_and_a_malformed_rpps_stop_before_any_request) {
  CliRun no_file = discover("10023456782", tmp_.file("absent-key"));
  EXPECT_NE(no_file.exit_code, 0);
  EXPECT_NE(no_file.err.find("cannot read the API key file"), std::string::npos) << no_file.err;
  CliRun bad = discover("10023456783", tmp_.file("api-key"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("wrong check digit"), std::string::npos) << bad.err;
  EXPECT_EQ(requests(), "");
  // Positive control: the same command with a good key and RPPS does reach the server.
  EXPECT_EQ(discover("10023456782", tmp_.file("api-key")).exit_code, 0);
  EXPECT_NE(requests(), "");
}

}  // namespace
}  // namespace orgproxy::onboarding_it
