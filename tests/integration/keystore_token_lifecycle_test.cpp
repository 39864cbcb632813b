// Field case C21 (d) and the wrong-PIN rule of issue 3 point 4, against the real daemon: keys re-created on a
// token while it runs are found at the next SIGHUP with their new object handles (tokens by label, never by a
// slot number), and a wrong PIN stops the start with a clear error after exactly one C_Login.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <thread>
#include <vector>

#include "keystore_daemon_world.hpp"
#include "orgproxy/testkit/child_process.hpp"

namespace orgproxy::keystore_it {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class KeystoreTokenLifecycle : public KeystoreDaemonWorld {
 protected:
  /// Sends SIGHUP and waits for the reload of `generation` to be logged.
  static void reload(tk::OrgproxyProcess& daemon, int generation) {
    daemon.send_signal(SIGHUP);
    ASSERT_TRUE(daemon.wait_for_log("reloaded: generation " + std::to_string(generation), 30s)) << daemon.log();
  }
};

// Field case C21 (d): SoftHSMv2 2.6 reads its token directory only at C_Initialize, so a token initialised by
// softhsm2-util after the daemon started is invisible to it (C_GetSlotList never lists it) until the module
// is finalised and initialised again. At SIGHUP the keystore re-initialises a module when a configured token
// is missing, with signing quiesced (not failed) meanwhile, every token logged in again once, and the keys of
// the identities already loaded looked up again by CKA_ID. Site A, on a token that was there all along, is
// under continuous load the whole time and must never fail.
TEST_F(KeystoreTokenLifecycle, token_initialised_while_running_is_found_at_sighup_and_the_others_keep_working) {
  const TokenSite a = make_site(*token_a_, std::string(tk::kSiteA));
  // A new connection to nginx per request: the daemon keeps making handshakes (hence token signs for A)
  // while the module is re-initialised, instead of riding on one kept-alive upstream connection.
  auto nginx = start_nginx(tk::TlsProtocols::both, "keepalive_timeout 0;");
  // The site of the token to come is configured from the start (its certificate will be on the token: no
  // cert: file), and its key URI names the token by label, never by slot number.
  const std::string tenant_c = tk::site_c();
  const std::string uri_c = "pkcs11:token=Cabinet%20C;object=" + tenant_c + "-dmp;type=private";
  const auto site_c_config = [&] { return TokenSite{tenant_c, "", uri_c, "", "", ""}; };
  constexpr int kUpstreams = 3;
  tk::OrgproxyProcess daemon(tmp_.subdir("daemon"), config(nginx->url("/svc"), {a, site_c_config()}, kUpstreams),
                             start());
  ASSERT_EQ(get(daemon.port(), a.tenant).status, 200) << daemon.log();
  // Positive control: without the token, site C is configured but has no identity.
  auto c_before = get(daemon.port(), tenant_c);
  EXPECT_EQ(c_before.status, 503) << daemon.log();
  EXPECT_EQ(c_before.header("X-Orgproxy-Error"), "identity_unavailable");
  EXPECT_THAT(daemon.log(), HasSubstr("no token matches pkcs11:token=Cabinet%20C"));

  // Light continuous load on A from another thread, through every upstream, for the whole scenario.
  struct Load {
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::mutex mutex;
    std::vector<std::string> failures;
    std::thread thread;
    ~Load() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } load;
  load.thread = std::thread([&, port = daemon.port()] {
    for (int i = 0; !load.stop; ++i) {
      const std::string path = "/dmp" + (i % kUpstreams == 0 ? std::string() : std::to_string(i % kUpstreams + 1)) + "/load";
      try {
        auto r = get(port, a.tenant, path);
        if (r.status == 200 && r.header("X-Client-DN") == a.dn) {
          ++load.ok;
        } else {
          std::lock_guard lock(load.mutex);
          load.failures.push_back(path + ": " + std::to_string(r.status) + " " + r.header("X-Orgproxy-Error"));
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(load.mutex);
        load.failures.push_back(path + ": " + e.what());
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  const auto wait_for_ok = [&](int n) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (load.ok < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
    return load.ok >= n;
  };
  ASSERT_TRUE(wait_for_ok(5));

  // `softhsm2-util --init-token --free --label "Cabinet C"` while the daemon runs (SoftHSM gives the new token
  // a slot number made from its serial: a configuration holding slot numbers would break here), a key on it,
  // and its certificate (and the intermediate CA's) stored on the token.
  tk::SoftHsmToken token_c(tmp_.subdir("hsm"), "Cabinet C", kUserPin);
  const TokenSite c = make_site(token_c, tenant_c, tk::KeyType::ec_p384);
  ASSERT_THAT(c.key_uri, HasSubstr("token=Cabinet%20C"));
  token_c.store_certificate(tk::read_pem_certificate(c.chain).get(), c.key_id, tenant_c + "-dmp");
  token_c.store_certificate(pki_->intermediate_certificate(), "\xCA", "intermediate CA");
  // Still unseen before the reload: the module has not been initialised again.
  EXPECT_EQ(get(daemon.port(), tenant_c).header("X-Orgproxy-Error"), "identity_unavailable");

  const int ok_before_reload = load.ok;
  const int signs_before_reload = shim_calls("C_SignInit", "Cabinet A");
  reload(daemon, 2);
  ASSERT_TRUE(wait_for_ok(ok_before_reload + 10)) << daemon.log();
  // A made new handshakes after the re-initialisation: signed in the token with its key found again.
  EXPECT_GT(shim_calls("C_SignInit", "Cabinet A"), signs_before_reload);
  auto rc = get(daemon.port(), tenant_c);
  EXPECT_EQ(rc.status, 200) << rc.header("X-Orgproxy-Error") << daemon.log();
  EXPECT_EQ(rc.header("X-Client-DN"), c.dn);
  EXPECT_EQ(rc.header("X-Client-Serial"), c.serial);
  load.stop = true;
  load.thread.join();
  {
    std::lock_guard lock(load.mutex);
    EXPECT_THAT(load.failures, ::testing::IsEmpty()) << daemon.log();
  }
  const std::string log = daemon.log();
  EXPECT_THAT(log, HasSubstr("re-initialised to find new tokens"));
  // Each token logged in once at start and once after the re-initialisation: no login storm, no retry.
  EXPECT_EQ(shim_calls("C_Login", "Cabinet A"), 2) << tk::read_file(shim_log_);
  EXPECT_EQ(shim_calls("C_Login", "Cabinet C"), 1) << tk::read_file(shim_log_);
  EXPECT_THAT(log, Not(HasSubstr(kUserPin)));
}

// A reload whose tokens are all there re-initialises nothing (a re-initialisation pauses every sign and logs
// every token in again: not a price to pay at each SIGHUP).
TEST_F(KeystoreTokenLifecycle, reload_with_every_configured_token_present_does_not_reinitialise_the_module) {
  const TokenSite a = make_site(*token_a_, std::string(tk::kSiteA));
  auto nginx = start_nginx(tk::TlsProtocols::both);
  tk::OrgproxyProcess daemon(tmp_.subdir("daemon"), config(nginx->url("/svc"), {a}), start());
  ASSERT_EQ(get(daemon.port(), a.tenant).status, 200) << daemon.log();
  reload(daemon, 2);
  EXPECT_EQ(get(daemon.port(), a.tenant, "/dmp/after").status, 200) << daemon.log();
  EXPECT_THAT(daemon.log(), Not(HasSubstr("re-initialis")));
  EXPECT_EQ(shim_calls("C_Login", "Cabinet A"), 1);
}

TEST_F(KeystoreTokenLifecycle, key_recreated_on_the_token_is_used_with_its_new_handle_after_sighup) {
  const TokenSite a = make_site(*token_a_, std::string(tk::kSiteA));
  const TokenSite b = make_site(*token_b_, std::string(tk::kSiteB));
  auto nginx = start_nginx(tk::TlsProtocols::both);
  tk::OrgproxyProcess daemon(tmp_.subdir("daemon"), config(nginx->url("/svc"), {a, b}, 3), start());
  auto before = get(daemon.port(), a.tenant);
  ASSERT_EQ(before.status, 200) << daemon.log();
  ASSERT_EQ(before.header("X-Client-Serial"), a.serial);
  const int finds_before = shim_calls("C_FindObjectsInit", "Cabinet A");

  // The administrator destroys the site's key (another process: `orgproxy keys delete`), creates it again
  // under the same CKA_ID and label (so the same URI; a new object, hence a new handle in the daemon) and
  // installs the certificate issued for the new key.
  auto deleted = tk::run_command({ORGPROXY_BINARY, "keys", "--config", daemon.config_file(), "--token", "Cabinet A",
                                  "delete", "--tenant", a.tenant, "--purpose", "dmp", "--yes"},
                                 {{"SOFTHSM2_CONF", token_a_->conf_path().string()}}, 120s);
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  key_counter_ = 0;  // the same CKA_ID as before
  const TokenSite renewed = make_site(*token_a_, a.tenant);
  ASSERT_EQ(renewed.key_uri, a.key_uri);
  ASSERT_NE(renewed.serial, a.serial);

  daemon.rewrite_config(config(nginx->url("/svc"), {renewed, b}, 3));
  reload(daemon, 2);
  EXPECT_GT(shim_calls("C_FindObjectsInit", "Cabinet A"), finds_before) << "the reload searched the token again";
  // Fresh upstreams: full handshakes, signed with the new key (nginx checks the signature against the new
  // certificate, so the old handle could not have made it).
  auto after = get(daemon.port(), a.tenant, "/dmp3/after");
  ASSERT_EQ(after.status, 200) << after.header("X-Orgproxy-Error") << daemon.log();
  EXPECT_EQ(after.header("X-Client-DN"), renewed.dn);
  EXPECT_EQ(after.header("X-Client-Serial"), renewed.serial);
  auto second = get(daemon.port(), a.tenant, "/dmp2/after");
  EXPECT_EQ(second.status, 200) << second.header("X-Orgproxy-Error") << daemon.log();
  EXPECT_EQ(second.header("X-Client-Serial"), renewed.serial);
  // The other token was never disturbed.
  auto rb = get(daemon.port(), b.tenant, "/dmp3/after");
  EXPECT_EQ(rb.status, 200);
  EXPECT_EQ(rb.header("X-Client-DN"), b.dn);
}

TEST_F(KeystoreTokenLifecycle, wrong_pin_at_start_is_a_clear_error_after_exactly_one_login_attempt) {
  const TokenSite a = make_site(*token_a_, std::string(tk::kSiteA));
  auto nginx = start_nginx(tk::TlsProtocols::both);

  // Positive control: the right PIN starts the daemon with one C_Login per token.
  {
    tk::OrgproxyProcess daemon(tmp_.subdir("daemon-ok"), config(nginx->url("/svc"), {a}), start());
    EXPECT_EQ(get(daemon.port(), a.tenant).status, 200) << daemon.log();
    EXPECT_EQ(shim_calls("C_Login", "Cabinet A"), 1);
    EXPECT_EQ(shim_calls("C_Login", "Cabinet B"), 1);
  }
  std::filesystem::remove(shim_log_);

  const std::string wrong_pin = "wrong-pin-1357";
  const auto pin_file = tmp_.path() / "wrong.pin";
  tk::write_file(pin_file, wrong_pin + "\n", 0600);
  auto cfg = config(nginx->url("/svc"), {a});
  cfg.pin_file = pin_file.string();
  auto options = start();
  options.wait_ready = false;
  tk::OrgproxyProcess daemon(tmp_.subdir("daemon-wrong"), cfg, options);
  const auto code = daemon.wait_for_exit(30s);
  ASSERT_TRUE(code.has_value()) << "the daemon kept running with a wrong PIN\n" << daemon.log();
  EXPECT_NE(*code, 0);
  const std::string log = daemon.log();
  EXPECT_THAT(log, HasSubstr("CKR_PIN_INCORRECT"));
  EXPECT_THAT(log, HasSubstr("token 'Cabinet"));  // names the token...
  EXPECT_THAT(log, Not(HasSubstr(wrong_pin)));    // ...never the PIN
  // Exactly one attempt, refused: no retry loop that would lock a real token (PIN retry counters).
  const auto logins = shim_lines("C_Login");
  ASSERT_EQ(logins.size(), 1u) << tk::read_file(shim_log_);
  EXPECT_THAT(logins[0], HasSubstr(" 0xa0"));  // CKR_PIN_INCORRECT
}

}  // namespace
}  // namespace orgproxy::keystore_it
