// Issue 3 point 5 (install-cert) closed end to end: `orgproxy keys install-cert` stores the certificate the ANS
// order platform issued on the token, and an identity configured without a `cert:` file presents exactly that
// certificate (with its chain) to the real nginx, read from the token object with the key's CKA_ID.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <map>

#include <nlohmann/json.hpp>
#include <openssl/x509.h>

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

  /// notAfter of the first certificate of `pem_file` as "YYYY-MM-DDTHH:MM:SSZ".
  static std::string not_after_utc(const std::string& pem_file) {
    auto cert = tk::read_pem_certificate(pem_file);
    std::tm t{};
    ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &t);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &t);
    return text;
  }

  /// A PKCS#12 made by the openssl command, as the ANS order platform's download or a vendor export gives
  /// it: the ORG leaf and its software key, plus `extra_certs` (-certfile) when not empty.
  std::filesystem::path export_p12(const tk::IssuedFiles& files, const std::string& stem,
                                   const std::string& extra_certs) {
    const auto out = tmp_.path() / (stem + ".p12");
    tk::write_file(tmp_.path() / "p12.pw", "p12 export pw\n", 0600);
    std::vector<std::string> argv{"openssl", "pkcs12", "-export", "-inkey", files.key.string(), "-in",
                                  files.chain.string(), "-passout", "file:" + (tmp_.path() / "p12.pw").string(),
                                  "-out", out.string()};
    if (!extra_certs.empty()) argv.insert(argv.end(), {"-certfile", extra_certs});
    auto made = tk::run_command(argv, {}, 60s);
    EXPECT_EQ(made.exit_code, 0) << made.output;
    return out;
  }

  /// `orgproxy keys --config <file> --token <token> import --p12 ...` before any daemon runs.
  tk::CommandResult import_p12(const std::filesystem::path& config_file, const std::string& token,
                               const std::string& tenant, const std::filesystem::path& p12) const {
    return tk::run_command({ORGPROXY_BINARY, "keys", "--config", config_file.string(), "--token", token, "import",
                            "--p12", p12.string(), "--tenant", tenant, "--purpose", "dmp", "--password-file",
                            (tmp_.path() / "p12.pw").string()},
                           {{"SOFTHSM2_CONF", token_a_->conf_path().string()}}, 120s);
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

  // `keys check --json` shows the token-held certificate the daemon presents (there is no file to look at).
  auto check = keys(daemon, {"check", "--json"});
  ASSERT_EQ(check.exit_code, 0) << check.output;
  const auto report = nlohmann::json::parse(check.output.substr(check.output.find('{')));
  ASSERT_EQ(report["identities"].size(), 1u) << check.output;
  const auto& row = report["identities"][0];
  EXPECT_EQ(row["cert"], "");
  EXPECT_EQ(row["cert_source"], "token");
  EXPECT_EQ(row["serial"], renewed_serial);
  EXPECT_EQ(row["subject"], tk::cert_subject_rfc2253(renewed));
  EXPECT_EQ(row["not_after"], not_after_utc(renewed));
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

// Issue 3 point 5 (import): a PKCS#12 carries the ORG leaf and the intermediate CA. `keys import` stores the CA
// certificates on the token too, so an identity configured without a cert: file presents [leaf, intermediate]
// and an upstream trusting only the IGC Santé root accepts it. Control: the same import from a PKCS#12
// without the intermediate gives a chain that does not verify to the root.
TEST_F(KeystoreTokenCertificate, pkcs12_import_stores_its_ca_certificates_so_a_token_held_identity_sends_its_chain) {
  const auto issue = [&](const std::string& tenant, const std::string& stem) {
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet " + tenant, tenant, "Cabinet de radiologie"};
    o.layout = tk::ChainLayout::leaf_only;  // the intermediate enters the PKCS#12 only through -certfile
    o.file_stem = stem;
    return pki_->issue_org_cert_with_key(o, tk::KeyType::rsa2048);
  };
  const std::string tenant_a(tk::kSiteA), tenant_b(tk::kSiteB);
  const auto files_a = issue(tenant_a, "a-imported"), files_b = issue(tenant_b, "b-imported");
  const auto p12_a = export_p12(files_a, "a", pki_->intermediate_pem().string());
  const auto p12_b = export_p12(files_b, "b", "");  // control: no CA certificate in the file

  auto nginx = start_nginx(tk::TlsProtocols::both);  // trusts the root only (ca-bundle.pem)
  ASSERT_EQ(tk::read_pem_certificates(pki_->ca_bundle_pem()).size(), 1u);
  TokenSite a{tenant_a, "", "pkcs11:token=Cabinet%20A;object=" + tenant_a + "-dmp;type=private", "", "", ""};
  TokenSite b{tenant_b, "", "pkcs11:token=Cabinet%20B;object=" + tenant_b + "-dmp;type=private", "", "", ""};
  auto cfg = config(nginx->url("/svc"), {a, b});
  const auto config_file = tmp_.path() / "orgproxy.yaml";
  tk::write_file(config_file, cfg.yaml());

  auto imported_a = import_p12(config_file, "Cabinet A", tenant_a, p12_a);
  ASSERT_EQ(imported_a.exit_code, 0) << imported_a.output;
  EXPECT_THAT(imported_a.output, HasSubstr(a.key_uri));
  auto imported_b = import_p12(config_file, "Cabinet B", tenant_b, p12_b);
  ASSERT_EQ(imported_b.exit_code, 0) << imported_b.output;
  EXPECT_THAT(imported_b.output, HasSubstr(b.key_uri));
  // Importing A's file again (a second generation) does not store the intermediate twice.
  auto again = import_p12(config_file, "Cabinet A", tenant_a, p12_a);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  // CA certificate objects per token, as `keys list --json` shows them.
  auto listed = tk::run_command({ORGPROXY_BINARY, "keys", "--config", config_file.string(), "list", "--json"},
                                {{"SOFTHSM2_CONF", token_a_->conf_path().string()}}, 120s);
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  std::map<std::string, int> ca_objects;
  for (const auto& o : nlohmann::json::parse(listed.output.substr(listed.output.find('['))))
    if (o["class"] == "certificate" && o["label"].get<std::string>().rfind("CA ", 0) == 0)
      ++ca_objects[o["token"].get<std::string>()];
  EXPECT_EQ(ca_objects["Cabinet A"], 1) << listed.output;
  EXPECT_EQ(ca_objects["Cabinet B"], 0) << listed.output;

  tk::OrgproxyProcess daemon(tmp_.subdir("daemon"), cfg, start());
  auto ra = get(daemon.port(), tenant_a);
  ASSERT_EQ(ra.status, 200) << ra.header("X-Orgproxy-Error") << daemon.log() << nginx->error_log();
  EXPECT_EQ(ra.header("X-Client-Serial"), tk::cert_serial_hex(files_a.chain));
  EXPECT_EQ(ra.header("X-Client-Verify"), "SUCCESS");
  // Control: B's token holds its leaf only; the chain cannot reach the root the upstream trusts, which the
  // load sees (the same check `keys check` makes) before any handshake could be refused.
  auto rb = get(daemon.port(), tenant_b);
  EXPECT_EQ(rb.status, 503) << daemon.log();
  EXPECT_EQ(rb.header("X-Orgproxy-Error"), "identity_unavailable");
  EXPECT_THAT(daemon.log(), HasSubstr("chain does not verify to the CA bundle of upstream dmp"));
}

}  // namespace
}  // namespace orgproxy::keystore_it
