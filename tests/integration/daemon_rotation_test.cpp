// Field case C17: reload, rotation and expiry of identities and CA bundles. A SIGHUP re-reads certificates
// and CA files (Vault kept the old CA in memory), new connections present the new certificate and no idle
// connection made with the old one is reused (Envoy), and an expired or not-yet-valid identity is never used.
#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>

#include "daemon_world.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

const std::string kA(tk::kSiteA);
const std::string kB(tk::kSiteB);

class DaemonRotation : public DaemonWorld {
 protected:
  /// An identity of `tenant` whose certificate is valid only within [from, to].
  SiteIdentity make_dated_identity(const std::string& tenant, std::chrono::system_clock::time_point from,
                                   std::chrono::system_clock::time_point to) {
    tk::TokenKeyOptions k;
    k.id = std::string(1, static_cast<char>(++key_counter_));
    k.label = tenant + "-dated-" + std::to_string(key_counter_);
    tk::TokenKey key = token_->generate_key(k);
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet " + tenant, tenant, "Cabinet dated"};
    o.not_before = from;
    o.not_after = to;
    o.file_stem = tenant + "-dated-" + std::to_string(key_counter_);
    return {tenant, pki_->issue_org_cert(key.public_key.get(), o).string(), key.uri};
  }
};

TEST_F(DaemonRotation, after_a_reload_new_connections_present_the_new_certificate_and_old_ones_are_not_reused) {
  auto s1 = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto cfg = base_config(nginx.url("/dmp"));
  cfg.workers = 1;  // one pool: reuse is observable
  add_tenant(cfg, kA, {{"dmp", s1}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port(), 30s);
  auto before = client.request(get(kA, "/dmp/x"));
  ASSERT_EQ(before.status, 200) << proxy.log();
  auto again = client.request(get(kA, "/dmp/x"));
  ASSERT_EQ(again.header("X-Up-Conn"), before.header("X-Up-Conn")) << "the S1 connection is pooled (control)";

  auto s2 = make_identity(kA, "dmp", kA, "Cabinet A");  // renewal: new key in the token, new certificate
  cfg.tenants.clear();
  add_tenant(cfg, kA, {{"dmp", s2}});
  proxy.rewrite_config(cfg);
  proxy.send_signal(SIGHUP);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 2")) << proxy.log();

  // The keep-alive connection opened before the reload: its next request runs on the new snapshot.
  auto kept = client.request(get(kA, "/dmp/x"));
  ASSERT_EQ(kept.status, 200) << proxy.log();
  EXPECT_NE(kept.header("X-Client-Serial"), before.header("X-Client-Serial")) << "S2 on the kept connection";
  EXPECT_NE(kept.header("X-Up-Conn"), before.header("X-Up-Conn")) << "no request travels over an S1 connection";

  // And a new downstream connection.
  auto after = tk::http_request(proxy.port(), get(kA, "/dmp/x"), 30s);
  ASSERT_EQ(after.status, 200) << proxy.log();
  EXPECT_FALSE(after.header("X-Client-Serial").empty());
  EXPECT_NE(after.header("X-Client-Serial"), before.header("X-Client-Serial")) << "S2 is presented";
  EXPECT_NE(after.header("X-Up-Conn"), before.header("X-Up-Conn")) << "no request travels over an S1 connection";
  EXPECT_EQ(after.header("X-Client-DN"), tk::cert_subject_rfc2253(s2.chain));
}

TEST_F(DaemonRotation, a_rotated_ca_bundle_is_read_again_at_reload_and_the_old_trust_is_dropped) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto rogue = tk::TestPki::rogue(tmp_.subdir("rogue"));
  const auto trust = tmp_.subdir("trust") / "igc-sante.pem";
  std::filesystem::copy_file(pki_->ca_bundle_pem(), trust);
  auto cfg = base_config(nginx.url("/dmp"));
  cfg.upstreams[0].ca_file = trust.string();
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);
  ASSERT_EQ(tk::http_request(proxy.port(), get(kA, "/dmp/x")).status, 200) << proxy.log();

  // The same file now holds another PKI's root only: the test root is no longer trusted.
  std::filesystem::copy_file(rogue.ca_bundle_pem(), trust, std::filesystem::copy_options::overwrite_existing);
  proxy.send_signal(SIGHUP);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 2")) << proxy.log();
  auto refused = tk::http_request(proxy.port(), get(kA, "/dmp/x"));
  EXPECT_NE(refused.status, 200) << proxy.log();
  EXPECT_EQ(refused.header("X-Orgproxy-Error"), "identity_unavailable");  // its chain no longer verifies
  EXPECT_TRUE(proxy.wait_for_log("chain does not verify to the CA bundle")) << proxy.log();

  // Back to the test root: the file is read again, not a cached copy.
  std::filesystem::copy_file(pki_->ca_bundle_pem(), trust, std::filesystem::copy_options::overwrite_existing);
  proxy.send_signal(SIGHUP);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 3")) << proxy.log();
  EXPECT_EQ(tk::http_request(proxy.port(), get(kA, "/dmp/x")).status, 200) << proxy.log();
}

TEST_F(DaemonRotation, expired_or_not_yet_valid_identities_answer_503_and_a_valid_site_still_works) {
  const auto now = std::chrono::system_clock::now();
  auto expired = make_dated_identity(kA, now - 48h, now - 1h);
  auto future = make_dated_identity(kB, now + 1h, now + 48h);
  const std::string c = tk::site_c();
  auto valid = make_identity(c, "dmp", c, "Cabinet C");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto cfg = base_config(nginx.url("/dmp"));
  add_tenant(cfg, kA, {{"dmp", expired}});
  add_tenant(cfg, kB, {{"dmp", future}});
  add_tenant(cfg, c, {{"dmp", valid}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  for (const auto& tenant : {kA, kB}) {
    auto r = tk::http_request(proxy.port(), get(tenant, "/dmp/x"));
    EXPECT_EQ(r.status, 503) << tenant << "\n" << proxy.log();
    EXPECT_EQ(r.header("X-Orgproxy-Error"), "identity_unavailable") << tenant;
  }
  EXPECT_EQ(nginx.access_log().find(kA), std::string::npos) << "the expired certificate was presented";
  auto ok = tk::http_request(proxy.port(), get(c, "/dmp/x"));  // positive control
  EXPECT_EQ(ok.status, 200) << proxy.log();
  EXPECT_EQ(ok.header("X-Client-DN"), tk::cert_subject_rfc2253(valid.chain));
}

}  // namespace
}  // namespace orgproxy::daemon_it
