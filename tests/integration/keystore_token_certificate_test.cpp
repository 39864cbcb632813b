// Issue 3 point 5 (install-cert) closed end to end: `orgproxy keys install-cert` stores the certificate the ANS
// order platform issued on the token, and an identity configured without a `cert:` file presents exactly that
// certificate (with its chain) to the real nginx, read from the token object with the key's CKA_ID.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>

#include "keystore_daemon_world.hpp"
#include "orgproxy/testkit/child_process.hpp"

namespace orgproxy::keystore_it {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class KeystoreTokenCertificate : public KeystoreDaemonWorld {
 protected:
  /// `orgproxy keys --config <daemon's file> --token "Cabinet A" <args>` (the shim forwards: no control file).
  tk::CommandResult keys(const tk::OrgproxyProcess& daemon, std::vector<std::string> args) const {
    std::vector<std::string> argv{ORGPROXY_BINARY, "keys", "--config", daemon.config_file(), "--token", "Cabinet A"};
    argv.insert(argv.end(), args.begin(), args.end());
    return tk::run_command(argv, {{"SOFTHSM2_CONF", token_a_->conf_path().string()}}, 120s);
  }

  /// A new certificate for the key of `site` (same key, new serial and CN), as a renewal order yields.
  std::string reissue(const TokenSite& site, const std::string& cn) {
    auto old = tk::read_pem_certificate(site.chain);
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet " + site.tenant, site.tenant, cn};
    o.file_stem = site.tenant + "-dmp-reissued";
    return pki_->issue_org_cert(X509_get0_pubkey(old.get()), o).string();
  }
};

TEST_F(KeystoreTokenCertificate, certificate_installed_on_the_token_is_presented_when_the_identity_names_no_cert_file) {
  const TokenSite a = make_site(*token_a_, std::string(tk::kSiteA));
  auto nginx = start_nginx(tk::TlsProtocols::both);
  auto cfg = config(nginx->url("/svc"), {a}, 3);
  tk::OrgproxyProcess daemon(tmp_.subdir("daemon"), cfg, start());

  // Positive control: with its cert: file, the site presents the file's certificate.
  auto before = get(daemon.port(), a.tenant, "/dmp/before");
  ASSERT_EQ(before.status, 200) << before.header("X-Orgproxy-Error") << daemon.log();
  EXPECT_EQ(before.header("X-Client-Serial"), a.serial);

  // The renewed certificate goes to the token, not to a file the configuration names.
  const std::string renewed = reissue(a, "Cabinet de radiologie renouvele");
  const std::string renewed_serial = tk::cert_serial_hex(renewed);
  auto installed = keys(daemon, {"install-cert", "--tenant", a.tenant, "--purpose", "dmp", renewed});
  ASSERT_EQ(installed.exit_code, 0) << installed.output;
  EXPECT_THAT(installed.output, HasSubstr("object=" + a.tenant + "-dmp"));

  // The configuration drops cert: and is reloaded: the certificate now comes from the token.
  cfg.tenants[0].identities[0].cert_file.clear();
  daemon.rewrite_config(cfg);
  ASSERT_THAT(tk::read_file(daemon.config_file()), Not(HasSubstr(a.chain)));
  daemon.send_signal(SIGHUP);
  ASSERT_TRUE(daemon.wait_for_log("reloaded: generation 2", 30s)) << daemon.log();
  EXPECT_THAT(daemon.log(), HasSubstr("certificate from the token"));
  auto after = get(daemon.port(), a.tenant, "/dmp2/after");
  ASSERT_EQ(after.status, 200) << after.header("X-Orgproxy-Error") << daemon.log() << nginx->error_log();
  EXPECT_EQ(after.header("X-Client-Serial"), renewed_serial);
  EXPECT_EQ(after.header("X-Client-DN"), tk::cert_subject_rfc2253(renewed));
  EXPECT_EQ(after.header("X-Client-Verify"), "SUCCESS") << "the intermediate came from the token too";
}

TEST_F(KeystoreTokenCertificate, identity_without_cert_file_whose_key_has_no_certificate_on_the_token_is_unavailable) {
  const TokenSite a = make_site(*token_a_, std::string(tk::kSiteA));
  const TokenSite b = make_site(*token_b_, std::string(tk::kSiteB));
  auto nginx = start_nginx(tk::TlsProtocols::both);
  auto cfg = config(nginx->url("/svc"), {a, b});
  cfg.tenants[1].identities[0].cert_file.clear();  // B's token holds its key but no certificate
  tk::OrgproxyProcess daemon(tmp_.subdir("daemon"), cfg, start());
  auto rb = get(daemon.port(), b.tenant);
  EXPECT_EQ(rb.status, 503);
  EXPECT_EQ(rb.header("X-Orgproxy-Error"), "identity_unavailable");
  EXPECT_THAT(daemon.log(), HasSubstr("no certificate on the token has the key's CKA_ID"));
  // Positive control: the site configured with its file is served.
  EXPECT_EQ(get(daemon.port(), a.tenant).status, 200) << daemon.log();
}

}  // namespace
}  // namespace orgproxy::keystore_it
