// `orgproxy sites inventory` against a real SoftHSM token: one site per status (missing, key-only, ready,
// expiring, expired, mismatch), the next action of each, and the exit code.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "onboarding_support.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/site_ids.hpp"
#include "orgproxy/testkit/softhsm_token.hpp"

namespace orgproxy::onboarding_it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

struct Site {
  std::string id;
  std::string cert;  ///< path (may not exist)
  std::string key;   ///< pkcs11: URI
};

class Inventory : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<tk::SoftHsmToken>(tmp_.subdir("token"), "onboarding", "inv-pin-4321");
    pki_ = std::make_unique<tk::TestPki>(tmp_.subdir("pki"));
    certs_ = tmp_.subdir("certs");
    ready_ = site_with_cert("001", Clock::now() - 1h, Clock::now() + 24h * 365);
    expiring_ = site_with_cert("002", Clock::now() - 1h, Clock::now() + 24h * 10);
    expired_ = site_with_cert("003", Clock::now() - 24h * 30, Clock::now() - 24h);
    key_only_ = site_with_key("004");
    key_only_.cert = (certs_ / "key-only-not-issued-yet.pem").string();
    missing_ = {tk::site_id_rpps_rang("1002345678", "005"), (certs_ / "missing.pem").string(),
                token_->uri_for(std::string(1, '\x63'))};
    // A certificate with the right OU, issued for another (software) key.
    mismatch_ = site_with_key("006");
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet mismatch", mismatch_.id, "mismatch"};
    o.file_stem = "mismatch";
    mismatch_.cert = pki_->issue_org_cert_with_key(o).chain.string();
  }

  Site site_with_key(const std::string& rang) {
    tk::TokenKeyOptions k;
    k.id = std::string(1, static_cast<char>(++key_counter_));
    k.label = "site-" + rang;
    last_key_ = token_->generate_key(k);
    return {tk::site_id_rpps_rang("1002345678", rang), "", last_key_.uri};
  }

  Site site_with_cert(const std::string& rang, Clock::time_point not_before, Clock::time_point not_after) {
    Site s = site_with_key(rang);
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet " + rang, s.id, "auth"};
    o.not_before = not_before;
    o.not_after = not_after;
    o.file_stem = "site-" + rang;
    s.cert = pki_->issue_org_cert(last_key_.public_key.get(), o).string();
    return s;
  }

  /// Writes a configuration with the given sites (dmp identity each) and upstream purposes.
  std::string write_config(const std::string& name, const std::vector<Site>& sites,
                           const std::vector<std::string>& upstream_purposes) {
    std::string y = "pkcs11:\n  modules: [{ name: softhsm, path: \"" + tk::SoftHsmToken::module_path() +
                    "\" }]\n  pin_file: \"" + token_->pin_file().string() + "\"\n"
                    "listeners: [{ name: ris, port: 0 }]\n";
    if (!upstream_purposes.empty()) {
      y += "upstreams:\n";
      for (const std::string& p : upstream_purposes)
        y += "  up-" + p + ": { url: \"https://127.0.0.1:1/" + p + "\", ca_file: \"" +
             pki_->ca_bundle_pem().string() + "\", environment: test, purpose: " + p + " }\n";
    }
    y += "tenants:\n";
    for (const Site& s : sites)
      y += "  - id: \"" + s.id + "\"\n    name: \"Cabinet " + s.id + "\"\n    sector: SA07\n"
           "    identities:\n      dmp: [{ cert: \"" + s.cert + "\", key: \"" + s.key + "\" }]\n";
    const std::string path = tmp_.file(name);
    tk::write_file(path, y);
    return path;
  }

  CliRun inventory(const std::string& config, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"sites", "inventory", "--config", config};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_orgproxy(tmp_, args, {{"SOFTHSM2_CONF", token_->conf_path().string()}});
  }

  static std::map<std::string, nlohmann::json> by_site(const nlohmann::json& j) {
    std::map<std::string, nlohmann::json> out;
    for (const auto& e : j["entries"]) out[e["tenant"].get<std::string>() + "/" + e["purpose"].get<std::string>()] = e;
    return out;
  }

  tk::TempDir tmp_{"onboarding-inventory"};
  std::unique_ptr<tk::SoftHsmToken> token_;
  std::unique_ptr<tk::TestPki> pki_;
  std::filesystem::path certs_;
  tk::TokenKey last_key_;
  int key_counter_ = 0;
  Site ready_, expiring_, expired_, key_only_, missing_, mismatch_;
};

TEST_F(Inventory, every_status_is_recognised_with_its_next_action_and_the_exit_code_says_not_ready) {
  const std::string config =
      write_config("all.yaml", {ready_, expiring_, expired_, key_only_, missing_, mismatch_}, {"dmp"});
  CliRun r = inventory(config, {"--json"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["all_ready"], false);
  auto e = by_site(j);
  ASSERT_EQ(e.size(), 6u) << r.out;
  EXPECT_EQ(e[ready_.id + "/dmp"]["status"], "ready") << e[ready_.id + "/dmp"].dump();
  EXPECT_EQ(e[ready_.id + "/dmp"]["next_action"], "");
  EXPECT_GE(e[ready_.id + "/dmp"]["days_left"].get<long>(), 363);

  EXPECT_EQ(e[expiring_.id + "/dmp"]["status"], "expiring") << e[expiring_.id + "/dmp"].dump();
  EXPECT_NE(e[expiring_.id + "/dmp"]["next_action"].get<std::string>().find("renew"), std::string::npos);
  EXPECT_LE(e[expiring_.id + "/dmp"]["days_left"].get<long>(), 10);

  EXPECT_EQ(e[expired_.id + "/dmp"]["status"], "expired") << e[expired_.id + "/dmp"].dump();
  EXPECT_NE(e[expired_.id + "/dmp"]["next_action"].get<std::string>().find("renew"), std::string::npos);

  EXPECT_EQ(e[key_only_.id + "/dmp"]["status"], "key-only") << e[key_only_.id + "/dmp"].dump();
  EXPECT_NE(e[key_only_.id + "/dmp"]["next_action"].get<std::string>().find("install the certificate"),
            std::string::npos);

  EXPECT_EQ(e[missing_.id + "/dmp"]["status"], "missing") << e[missing_.id + "/dmp"].dump();
  EXPECT_NE(e[missing_.id + "/dmp"]["next_action"].get<std::string>().find(
                "orgproxy keys generate --tenant " + missing_.id + " --purpose dmp"),
            std::string::npos);

  EXPECT_EQ(e[mismatch_.id + "/dmp"]["status"], "mismatch") << e[mismatch_.id + "/dmp"].dump();
  EXPECT_NE(e[mismatch_.id + "/dmp"]["detail"].get<std::string>().find("does not belong to the key"),
            std::string::npos);

  EXPECT_EQ(r.err.find("inv-pin-4321"), std::string::npos);
  EXPECT_EQ(r.out.find("inv-pin-4321"), std::string::npos);
}

TEST_F(Inventory, a_site_with_every_identity_ready_exits_zero_and_the_threshold_is_a_setting) {
  // Positive control for the exit code.
  CliRun ok = inventory(write_config("ready.yaml", {ready_}, {"dmp"}));
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find(ready_.id), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("ready"), std::string::npos) << ok.out;

  // Ten days left: expiring under the default 60 days, ready with a 5-day threshold.
  const std::string config = write_config("expiring.yaml", {expiring_}, {"dmp"});
  EXPECT_EQ(inventory(config).exit_code, 3);
  CliRun relaxed = inventory(config, {"--expiring-days", "5", "--json"});
  EXPECT_EQ(relaxed.exit_code, 0) << relaxed.out << relaxed.err;
  EXPECT_EQ(by_site(nlohmann::json::parse(relaxed.out))[expiring_.id + "/dmp"]["status"], "ready");
}

TEST_F(Inventory, a_purpose_an_upstream_needs_but_the_site_lacks_is_missing) {
  CliRun r = inventory(write_config("insi.yaml", {ready_}, {"dmp", "insi-auto"}), {"--json"});
  EXPECT_NE(r.exit_code, 0);
  auto e = by_site(nlohmann::json::parse(r.out));
  EXPECT_EQ(e[ready_.id + "/dmp"]["status"], "ready");
  EXPECT_EQ(e[ready_.id + "/insi-auto"]["status"], "missing");
  EXPECT_NE(e[ready_.id + "/insi-auto"]["detail"].get<std::string>().find("upstream up-insi-auto"), std::string::npos);
}

TEST_F(Inventory, a_wrong_pin_is_a_clear_error_that_never_shows_the_pin) {
  const std::string config = write_config("wrong-pin.yaml", {ready_}, {"dmp"});
  tk::write_file(tmp_.file("wrong.pin"), "wrong-pin-9999\n", 0600);
  std::string text = tk::read_file(config);
  text.replace(text.find(token_->pin_file().string()), token_->pin_file().string().size(), tmp_.file("wrong.pin"));
  tk::write_file(config, text);
  CliRun r = inventory(config);
  EXPECT_EQ(r.exit_code, 1);  // could not take the inventory at all, distinct from 3 = "a site is not ready"
  EXPECT_NE(r.err.find("token cannot be used"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("wrong-pin-9999"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace orgproxy::onboarding_it
