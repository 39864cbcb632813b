// Field case C16: SNI, Host and IP-literal or IPv6 upstreams. The upstream is the real nginx with strict
// SNI/Host matching (421 otherwise, as Apache answers since its 2025 update); it echoes the SNI it received.
#include <string>

#include "daemon_world.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

const std::string kA(tk::kSiteA);

class DaemonSniHost : public DaemonWorld {
 protected:
  tk::NginxServerOptions strict_nginx(const tk::IssuedFiles& server, const std::string& sni,
                                      const std::string& host) const {
    tk::NginxServerOptions s = nginx_options(server);
    s.extra_directives = "if ($ssl_server_name != \"" + sni + "\") { return 421; }\n    if ($http_host != \"" +
                         host + "\") { return 421; }";
    return s;
  }
};

// C16 (a) and (d): an IP upstream reached under a name: SNI and Host are that name, never the IP or the
// client's Host, and the certificate is verified against it.
TEST_F(DaemonSniHost, ip_upstream_with_sni_sends_the_name_as_sni_and_host_whatever_the_client_host) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  const std::uint16_t port = tk::free_loopback_port();  // known before nginx starts: its Host rule names it
  tk::NginxServerOptions opts = strict_nginx(server_, "dmp.test.local", "dmp.test.local:" + std::to_string(port));
  opts.port = port;
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), opts);

  auto cfg = base_config("https://127.0.0.1:" + std::to_string(port) + "/dmp");
  cfg.upstreams[0].sni = "dmp.test.local";
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port(), 30s);
  auto request = get(kA, "/dmp/x");
  request.headers.push_back({"Host", "orgproxy.local"});  // (d) the RIS's Host never reaches the upstream
  auto r = client.request(request);
  ASSERT_EQ(r.status, 200) << r.body << proxy.log() << nginx.error_log();
  EXPECT_EQ(r.header("X-Seen-Sni"), "dmp.test.local");
  EXPECT_EQ(r.header("X-Seen-Host"), "dmp.test.local:" + std::to_string(port));

  // Negative control: the same nginx refuses (421) a Host it does not serve, so the rule above is live.
  tk::NginxServerOptions wrong = strict_nginx(server_, "dmp.test.local", "other.test.local");
  tk::NginxUpstream other(tmp_.subdir("nginx-wrong"), wrong);
  auto cfg2 = base_config(other.url("/dmp"));
  cfg2.upstreams[0].sni = "dmp.test.local";
  add_tenant(cfg2, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy2(tmp_.subdir("proxy2"), cfg2);
  auto refused = tk::http_request(proxy2.port(), get(kA, "/dmp/x"));
  EXPECT_EQ(refused.status, 421) << proxy2.log();
}

// C16 (b): an IPv6 literal upstream without `sni`: reached over IPv6, no SNI extension (RFC 6066 §3), the
// certificate verified against its IP SAN, Host bracketed.
TEST_F(DaemonSniHost, ipv6_literal_upstream_goes_over_ipv6_without_sni_and_with_a_bracketed_host) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto v6_server = pki_->issue_server_cert("upstream-v6", {}, {"::1"});
  tk::NginxServerOptions opts;
  opts.name = "dmp";
  opts.listen_address = "::1";
  opts.cert_file = v6_server.chain.string();
  opts.key_file = v6_server.key.string();
  opts.client_ca_file = pki_->ca_bundle_pem().string();
  opts.extra_directives = "if ($ssl_server_name != \"\") { return 421; }";
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), opts);

  auto cfg = base_config("https://[::1]:" + std::to_string(nginx.port()) + "/dmp");
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  auto r = tk::http_request(proxy.port(), get(kA, "/dmp/x"), 30s);
  ASSERT_EQ(r.status, 200) << r.body << proxy.log() << nginx.error_log();
  EXPECT_EQ(r.header("X-Seen-Sni"), "");
  EXPECT_EQ(r.header("X-Seen-Host"), "[::1]:" + std::to_string(nginx.port()));
  EXPECT_EQ(r.header("X-Client-DN"), tk::cert_subject_rfc2253(a.chain));

  // Negative control: the server certificate names only 127.0.0.1/localhost, not ::1: refused.
  tk::NginxServerOptions mismatched = opts;
  mismatched.port = 0;
  mismatched.cert_file = server_.chain.string();
  mismatched.key_file = server_.key.string();
  tk::NginxUpstream wrong(tmp_.subdir("nginx-wrong"), mismatched);
  auto cfg2 = base_config("https://[::1]:" + std::to_string(wrong.port()) + "/dmp");
  add_tenant(cfg2, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy2(tmp_.subdir("proxy2"), cfg2);
  auto refused = tk::http_request(proxy2.port(), get(kA, "/dmp/x"), 30s);
  EXPECT_EQ(refused.status, 502) << proxy2.log();
  EXPECT_EQ(refused.header("X-Orgproxy-Error"), "upstream_tls");
}

}  // namespace
}  // namespace orgproxy::daemon_it
