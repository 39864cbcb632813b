// Reaching the national endpoints from a practice network (issue 5 point 5): an egress HTTP CONNECT proxy per
// upstream, host names resolved at every dial with every address tried in turn, and CRLs on the upstream
// chain. Real daemon, real nginx, keys in a SoftHSM token; the proxy is the test kit's ConnectProxy and host
// names come from the test kit's getaddrinfo shim (LD_PRELOAD), never /etc/hosts or a DNS server.
#include <chrono>
#include <fstream>
#include <string>

#include "daemon_world.hpp"
#include "orgproxy/testkit/connect_proxy.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

const std::string kA(tk::kSiteA);
const std::string kB(tk::kSiteB);

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

class DaemonEgress : public DaemonWorld {
 protected:
  /// A second upstream of purpose dmp named `name`, routed from `prefix`.
  void add_upstream(tk::OrgproxyConfig& c, const std::string& name, const std::string& prefix,
                    const std::string& url, const std::string& extra_yaml) const {
    auto u = tk::make_upstream(name, url, pki_->ca_bundle_pem().string());
    u.extra_yaml = extra_yaml;
    c.upstreams.push_back(u);
    c.routes.push_back({prefix, name});
  }
};

TEST_F(DaemonEgress, egress_proxy_tunnels_each_tenant_with_its_own_certificate_and_sni) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto b = make_identity(kB, "dmp", kB, "Cabinet B");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  tk::ConnectProxy egress({"ris-proxy:s3cr3t-Pw"});
  const auto credentials = tmp_.subdir("secrets") / "proxy-credentials";
  write_text(credentials, "ris-proxy:s3cr3t-Pw\n");

  auto cfg = base_config(nginx.url("/si-dmp-server/v2/services"));
  cfg.workers = 1;  // one pool: tunnel reuse per tenant is observable
  cfg.upstreams[0].sni = "dmp.test.local";
  cfg.upstreams[0].extra_yaml = "    proxy: { url: \"" + egress.url() + "\", credentials_file: \"" +
                                credentials.string() + "\", connect_timeout: 10s }\n";
  add_tenant(cfg, kA, {{"dmp", a}});
  add_tenant(cfg, kB, {{"dmp", b}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port(), 30s);
  std::string conn_a, conn_b;
  for (int round = 0; round < 2; ++round) {
    auto ra = client.request(get(kA, "/dmp/registry"));
    ASSERT_EQ(ra.status, 200) << ra.body << proxy.log() << nginx.error_log();
    EXPECT_EQ(ra.header("X-Client-DN"), tk::cert_subject_rfc2253(a.chain));
    EXPECT_EQ(ra.header("X-Seen-Sni"), "dmp.test.local");  // SNI = the upstream's name, through the tunnel
    EXPECT_EQ(ra.header("X-Seen-Host"), "dmp.test.local:" + std::to_string(nginx.port()));
    auto rb = client.request(get(kB, "/dmp/registry"));
    ASSERT_EQ(rb.status, 200) << rb.body << proxy.log();
    EXPECT_EQ(rb.header("X-Client-DN"), tk::cert_subject_rfc2253(b.chain));
    if (round == 0) {
      conn_a = ra.header("X-Up-Conn");
      conn_b = rb.header("X-Up-Conn");
      EXPECT_NE(conn_a, conn_b);
    } else {
      // Each tenant's pooled tunnel is reused by that tenant only.
      EXPECT_EQ(ra.header("X-Up-Conn"), conn_a);
      EXPECT_EQ(rb.header("X-Up-Conn"), conn_b);
    }
  }
  auto records = egress.records();
  ASSERT_EQ(records.size(), 2u);  // one tunnel per (tenant, identity, upstream), never shared
  for (const auto& r : records) {
    EXPECT_EQ(r.target, "127.0.0.1:" + std::to_string(nginx.port()));  // the URL's host, not the SNI name
    EXPECT_EQ(r.host_header, r.target);
    EXPECT_TRUE(r.had_authorization);
    EXPECT_EQ(r.status, 200);
  }
  EXPECT_EQ(proxy.log().find("s3cr3t"), std::string::npos);
}

TEST_F(DaemonEgress, egress_proxy_refusal_is_502_upstream_connect_with_the_proxy_status_logged) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  tk::ConnectProxy egress({"ris-proxy:right-pass"});
  const auto right = tmp_.subdir("secrets") / "right";
  const auto wrong = tmp_.subdir("secrets") / "wrong";
  write_text(right, "ris-proxy:right-pass\n");
  write_text(wrong, "ris-proxy:wrong-pass\n");
  auto proxy_yaml = [&](const std::filesystem::path& file) {
    return "    proxy: { url: \"" + egress.url() + "\", credentials_file: \"" + file.string() + "\" }\n";
  };

  auto cfg = base_config(nginx.url("/si-dmp-server/v2/services"));
  cfg.upstreams[0].extra_yaml = proxy_yaml(right);
  add_upstream(cfg, "dmp-wrong-auth", "/wrong-auth", nginx.url("/w"), proxy_yaml(wrong));
  // The proxy cannot reach this one (a port nobody listens on): it answers 502 itself.
  const auto dead_port = tk::free_loopback_port();
  add_upstream(cfg, "dmp-unreachable", "/unreachable", "https://127.0.0.1:" + std::to_string(dead_port) + "/u",
               proxy_yaml(right));
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port(), 30s);
  auto ok = client.request(get(kA, "/dmp/registry"));  // positive control: right credentials pass
  ASSERT_EQ(ok.status, 200) << ok.body << proxy.log();

  tk::HttpClient second("127.0.0.1", proxy.port(), 30s);
  auto refused = second.request(get(kA, "/wrong-auth/registry"));
  EXPECT_EQ(refused.status, 502) << proxy.log();
  EXPECT_EQ(refused.header("X-Orgproxy-Error"), "upstream_connect");
  ASSERT_TRUE(proxy.wait_for_log("407 Proxy Authentication Required")) << proxy.log();

  tk::HttpClient third("127.0.0.1", proxy.port(), 30s);
  auto unreachable = third.request(get(kA, "/unreachable/x"));
  EXPECT_EQ(unreachable.status, 502) << proxy.log();
  EXPECT_EQ(unreachable.header("X-Orgproxy-Error"), "upstream_connect");
  ASSERT_TRUE(proxy.wait_for_log("502 Bad Gateway")) << proxy.log();

  auto records = egress.records();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1].status, 407);
  EXPECT_EQ(records[2].status, 502);
  // Neither password, nor its Base64 form, reaches the log.
  const std::string log = proxy.log();
  EXPECT_EQ(log.find("right-pass"), std::string::npos);
  EXPECT_EQ(log.find("wrong-pass"), std::string::npos);
  EXPECT_EQ(log.find("cmlzLXByb3h5"), std::string::npos);  // base64("ris-proxy...") prefix
}

TEST_F(DaemonEgress, a_missing_proxy_credentials_file_refuses_the_start_naming_the_file) {
  tk::ConnectProxy egress;
  auto cfg = base_config("https://127.0.0.1:9/x");
  const auto missing = tmp_.path() / "no-such-credentials";
  cfg.upstreams[0].extra_yaml =
      "    proxy: { url: \"" + egress.url() + "\", credentials_file: \"" + missing.string() + "\" }\n";
  tk::OrgproxyStart start;
  start.wait_ready = false;
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg, start);
  auto code = proxy.wait_for_exit(30s);
  ASSERT_TRUE(code.has_value()) << proxy.log();
  EXPECT_NE(*code, 0);
  EXPECT_NE(proxy.log().find(missing.string()), std::string::npos) << proxy.log();
}

TEST_F(DaemonEgress, every_address_of_a_name_is_tried_in_turn_and_the_name_is_resolved_again_per_dial) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  const auto hosts = tmp_.path() / "hosts";
  // 127.0.0.2 is loopback too, but nginx listens on 127.0.0.1 only: a dead address.
  write_text(hosts, "dmp.test.local 127.0.0.2\n");

  auto cfg = base_config("https://dmp.test.local:" + std::to_string(nginx.port()) + "/si-dmp-server");
  cfg.upstreams[0].extra_yaml = "    max_idle_per_key: 0\n";  // every request dials (and resolves)
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyStart start;
  start.env = {{"LD_PRELOAD", ORGPROXY_RESOLV_SHIM}, {"ORGPROXY_TEST_HOSTS_FILE", hosts.string()}};
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg, start);

  tk::HttpClient first("127.0.0.1", proxy.port(), 30s);
  auto dead = first.request(get(kA, "/dmp/x"));  // negative control: the only address is dead
  EXPECT_EQ(dead.status, 502) << proxy.log();
  EXPECT_EQ(dead.header("X-Orgproxy-Error"), "upstream_connect");

  // The record changes while the daemon runs: dead address first, live one second.
  write_text(hosts, "dmp.test.local 127.0.0.2 127.0.0.1\n");
  tk::HttpClient second("127.0.0.1", proxy.port(), 30s);
  auto live = second.request(get(kA, "/dmp/x"));
  ASSERT_EQ(live.status, 200) << live.body << proxy.log();
  EXPECT_EQ(live.header("X-Client-DN"), tk::cert_subject_rfc2253(a.chain));
  EXPECT_EQ(live.header("X-Seen-Sni"), "dmp.test.local");
  EXPECT_TRUE(proxy.wait_for_log("connect to dmp.test.local (127.0.0.2) failed")) << proxy.log();
}

TEST_F(DaemonEgress, an_upstream_certificate_listed_in_the_crl_is_refused_502_upstream_tls) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto revoked_server = pki_->issue_server_cert("revoked-upstream", {"localhost"}, {"127.0.0.1"});
  const auto crl = pki_->issue_intermediate_crl("organisations", {revoked_server.chain});
  tk::NginxUpstream good(tmp_.subdir("nginx-good"), nginx_options());
  tk::NginxUpstream revoked(tmp_.subdir("nginx-revoked"), nginx_options(revoked_server));

  const std::string crl_yaml = "    crl_files: [\"" + crl.string() + "\"]\n";
  auto cfg = base_config(good.url("/si-dmp-server"));
  cfg.upstreams[0].extra_yaml = crl_yaml;
  add_upstream(cfg, "dmp-revoked", "/revoked", revoked.url("/si-dmp-server"), crl_yaml);
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port(), 30s);
  auto ok = client.request(get(kA, "/dmp/x"));  // positive control: same CA, same CRL, not listed
  ASSERT_EQ(ok.status, 200) << ok.body << proxy.log();

  tk::HttpClient second("127.0.0.1", proxy.port(), 30s);
  auto r = second.request(get(kA, "/revoked/x"));
  EXPECT_EQ(r.status, 502) << proxy.log();
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "upstream_tls");
  EXPECT_TRUE(proxy.wait_for_log("certificate revoked")) << proxy.log();
}

}  // namespace
}  // namespace orgproxy::daemon_it
