// The daemon's data path end to end: real daemon binary, keys in a SoftHSM token, real nginx or the
// purpose-built HashUpstream as the national endpoint, requests over real TCP.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>

#include "daemon_world.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

bool iequal(std::string_view x, std::string_view y) {
  return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](char c, char d) {
           return std::tolower(static_cast<unsigned char>(c)) == std::tolower(static_cast<unsigned char>(d));
         });
}

const std::string kA(tk::kSiteA);
const std::string kB(tk::kSiteB);

using DaemonProxy = DaemonWorld;

TEST_F(DaemonProxy, each_tenant_reaches_the_upstream_with_its_own_certificate) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto b = make_identity(kB, "dmp", kB, "Cabinet B");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto cfg = base_config(nginx.url("/si-dmp-server/v2/services"));
  add_tenant(cfg, kA, {{"dmp", a}});
  add_tenant(cfg, kB, {{"dmp", b}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port());
  auto ra = client.request(get(kA, "/dmp/registry?q=1"));
  ASSERT_EQ(ra.status, 200) << ra.body << proxy.log() << nginx.error_log();
  EXPECT_EQ(ra.header("X-Client-DN"), tk::cert_subject_rfc2253(a.chain));
  EXPECT_EQ(ra.header("X-Client-Verify"), "SUCCESS");
  EXPECT_EQ(ra.header("X-Seen-Uri"), "/si-dmp-server/v2/services/registry?q=1");
  EXPECT_EQ(ra.header("X-Seen-Host"), "127.0.0.1:" + std::to_string(nginx.port()));
  EXPECT_EQ(ra.header_values("X-Request-Id").size(), 1u);

  auto rb = client.request(get(kB, "/sites/" + kB + "/dmp/patients"));  // same downstream connection
  ASSERT_EQ(rb.status, 200) << rb.body << proxy.log();
  EXPECT_EQ(rb.header("X-Client-DN"), tk::cert_subject_rfc2253(b.chain));
  EXPECT_EQ(rb.header("X-Seen-Uri"), "/si-dmp-server/v2/services/patients");
  EXPECT_TRUE(rb.keep_alive);

  // The access log names tenant, upstream and status, never the query string.
  ASSERT_TRUE(proxy.wait_for_log("\"tenant\":\"" + kB + "\""));
  EXPECT_NE(proxy.log().find("\"path\":\"/dmp/registry\""), std::string::npos);
  EXPECT_EQ(proxy.log().find("q=1"), std::string::npos);
}

TEST_F(DaemonProxy, pool_never_reuses_connection_across_tenants) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto b = make_identity(kB, "dmp", kB, "Cabinet B");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto cfg = base_config(nginx.url("/si-dmp-server/v2/services"));
  cfg.workers = 1;  // one worker: one pool, so reuse is observable
  add_tenant(cfg, kA, {{"dmp", a}});
  add_tenant(cfg, kB, {{"dmp", b}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port());
  auto a1 = client.request(get(kA, "/dmp/x"));
  auto a2 = client.request(get(kA, "/dmp/x"));
  auto b1 = client.request(get(kB, "/dmp/x"));
  auto b2 = client.request(get(kB, "/dmp/x"));
  auto a3 = client.request(get(kA, "/dmp/x"));
  for (auto* r : {&a1, &a2, &b1, &b2, &a3}) ASSERT_EQ(r->status, 200) << r->body << proxy.log();
  // Positive control: a tenant's second request reuses its pooled connection (and says so by serial).
  EXPECT_EQ(a1.header("X-Up-Conn"), a2.header("X-Up-Conn"));
  EXPECT_EQ(a2.header("X-Up-Conn-Req"), "2");
  EXPECT_EQ(b1.header("X-Up-Conn"), b2.header("X-Up-Conn"));
  // The property: B never rides A's connection, and A's connection is back for A afterwards.
  EXPECT_NE(a1.header("X-Up-Conn"), b1.header("X-Up-Conn"));
  EXPECT_EQ(a3.header("X-Up-Conn"), a1.header("X-Up-Conn"));
  EXPECT_EQ(b2.header("X-Client-DN"), tk::cert_subject_rfc2253(b.chain));
  EXPECT_EQ(a3.header("X-Client-DN"), tk::cert_subject_rfc2253(a.chain));
}

TEST_F(DaemonProxy, tls_sessions_resume_only_within_their_own_tenant) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto b = make_identity(kB, "dmp", kB, "Cabinet B");
  auto options = nginx_options();
  options.extra_directives = "keepalive_requests 1;";  // a new upstream connection for every request
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), options);
  auto cfg = base_config(nginx.url("/si-dmp-server/v2/services"));
  cfg.workers = 1;
  add_tenant(cfg, kA, {{"dmp", a}});
  add_tenant(cfg, kB, {{"dmp", b}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient client("127.0.0.1", proxy.port());
  auto a1 = client.request(get(kA, "/dmp/x"));
  auto a2 = client.request(get(kA, "/dmp/x"));
  auto b1 = client.request(get(kB, "/dmp/x"));
  auto b2 = client.request(get(kB, "/dmp/x"));
  for (auto* r : {&a1, &a2, &b1, &b2}) ASSERT_EQ(r->status, 200) << r->body << proxy.log() << nginx.error_log();
  EXPECT_NE(a1.header("X-Up-Conn"), a2.header("X-Up-Conn"));  // really two connections
  EXPECT_EQ(a1.header("X-Session-Reused"), ".");
  EXPECT_EQ(a2.header("X-Session-Reused"), "r");  // A resumed A's session
  EXPECT_EQ(b1.header("X-Session-Reused"), ".");  // B was never offered A's session
  EXPECT_EQ(b1.header("X-Client-DN"), tk::cert_subject_rfc2253(b.chain));
  EXPECT_EQ(b2.header("X-Session-Reused"), "r");
  EXPECT_EQ(b2.header("X-Client-DN"), tk::cert_subject_rfc2253(b.chain));
}

TEST_F(DaemonProxy, bodies_stream_byte_exact_and_hop_by_hop_headers_stay_behind) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::HashUpstream up(hash_options());
  auto cfg = base_config(up.url("/si-dmp-server/v2/services"));
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  // 3 MiB of binary with CRLFs, NULs and boundary look-alikes, chunked in odd sizes.
  std::string body;
  for (std::size_t i = 0; body.size() < 3 * 1024 * 1024; ++i) {
    body += static_cast<char>(i * 7919 % 256);
    if (i % 1000 == 0) body += "\r\n\r\n--uuid:0f1e\r\n";
  }
  std::string raw =
      "POST /dmp/repository HTTP/1.1\r\nHost: orgproxy.local\r\n"
      "connection: keep-alive, X-Debug-Trace\r\nX-Debug-Trace: 1\r\nKeep-Alive: timeout=99\r\nTE: trailers\r\n"
      "Proxy-Authorization: Basic dTpw\r\nX-Orgproxy-Tenant: " + kA + "\r\n"
      "SOAPAction: \"urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b\"\r\n"
      "Content-Type: multipart/related; type=\"application/xop+xml\"; start=\"<root.part@ris.local>\"; "
      "start-info=\"application/soap+xml\"; boundary=\"uuid:0f1e\"\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  std::size_t pos = 0, step = 1;
  while (pos < body.size()) {
    std::size_t n = std::min(body.size() - pos, step * 4099 % 70000 + 1);
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
    raw += size_line;
    raw.append(body, pos, n);
    raw += "\r\n";
    pos += n;
    ++step;
  }
  raw += "0\r\n\r\n";
  tk::HttpClient client("127.0.0.1", proxy.port());
  client.send_raw(raw);
  auto r = client.read_response();
  ASSERT_EQ(r.status, 200) << r.body << proxy.log();
  EXPECT_EQ(r.header("X-Body-Sha256"), tk::sha256_hex(body));
  EXPECT_EQ(r.header("X-Body-Length"), std::to_string(body.size()));
  EXPECT_EQ(r.header("X-Seen-Path"), "/si-dmp-server/v2/services/repository");
  EXPECT_EQ(r.header("X-Seen-Host"), "127.0.0.1:" + std::to_string(up.port()));

  auto seen = up.seen();
  ASSERT_EQ(seen.size(), 1u);
  std::string names;
  for (auto& [n, v] : seen[0].headers) names += n + "\n";
  for (auto gone : {"connection", "x-debug-trace", "keep-alive", "te", "proxy-authorization", "x-orgproxy-tenant"}) {
    for (auto& [n, v] : seen[0].headers) EXPECT_FALSE(iequal(n, gone)) << n;
  }
  bool soap_action_exact = false, content_type_exact = false;
  for (auto& [n, v] : seen[0].headers) {
    if (n == "SOAPAction") soap_action_exact = v == "\"urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b\"";
    if (n == "Content-Type")
      content_type_exact = v ==
          "multipart/related; type=\"application/xop+xml\"; start=\"<root.part@ris.local>\"; "
          "start-info=\"application/soap+xml\"; boundary=\"uuid:0f1e\"";
  }
  EXPECT_TRUE(soap_action_exact) << names;
  EXPECT_TRUE(content_type_exact) << names;
  // The client asked for keep-alive: the second request reuses both connections.
  auto r2 = client.request({"POST", "/dmp/repository", {{"X-Orgproxy-Tenant", kA}}, "abc"});
  ASSERT_EQ(r2.status, 200);
  EXPECT_EQ(r2.header("X-Body-Length"), "3");
  EXPECT_EQ(up.connections(), 1u);
}

TEST_F(DaemonProxy, identity_problems_answer_403_or_503_and_other_sites_keep_working) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  const std::string c = tk::site_c();
  auto wrong_ou = make_identity(c, "dmp", kA, "Cabinet C");  // certificate of another site
  auto b_insi = make_identity(kB, "insi-auto", kB, "INSI-AUTO");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto cfg = base_config(nginx.url("/si-dmp-server/v2/services"));
  add_tenant(cfg, kA, {{"dmp", a}});
  add_tenant(cfg, kB, {{"insi-auto", b_insi}});
  add_tenant(cfg, c, {{"dmp", wrong_ou}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  // Logged at start, naming the tenant and the purpose.
  ASSERT_TRUE(proxy.wait_for_log("tenant " + c + " purpose dmp"));
  auto rc = tk::http_request(proxy.port(), get(c, "/dmp/x"));
  EXPECT_EQ(rc.status, 503) << proxy.log();
  EXPECT_EQ(rc.header("X-Orgproxy-Error"), "identity_unavailable");
  EXPECT_FALSE(rc.header("X-Request-Id").empty());
  auto rb = tk::http_request(proxy.port(), get(kB, "/dmp/x"));
  EXPECT_EQ(rb.status, 403);
  EXPECT_EQ(rb.header("X-Orgproxy-Error"), "identity_missing");
  EXPECT_NE(rb.body.find("dmp"), std::string::npos);
  auto ra = tk::http_request(proxy.port(), get(kA, "/dmp/x"));  // positive control
  EXPECT_EQ(ra.status, 200) << proxy.log();
}

TEST_F(DaemonProxy, upstream_failures_map_to_connect_tls_and_timeout_codes) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  tk::SilentTcpServer silent;
  auto closed_port = tk::free_loopback_port();
  auto cfg = base_config(nginx.url("/si-dmp-server/v2/services"));
  tk::ConfigUpstream wrong_name = cfg.upstreams[0];
  wrong_name.name = "wrongname";
  wrong_name.sni = "not-the-server.test.local";
  tk::ConfigUpstream refused = cfg.upstreams[0];
  refused.name = "refused";
  refused.url = "https://127.0.0.1:" + std::to_string(closed_port) + "/x";
  tk::ConfigUpstream mute = cfg.upstreams[0];
  mute.name = "mute";
  mute.url = "https://127.0.0.1:" + std::to_string(silent.port()) + "/x";
  mute.handshake_timeout = "1s";
  cfg.upstreams.insert(cfg.upstreams.end(), {wrong_name, refused, mute});
  cfg.routes.insert(cfg.routes.end(), {{"/wrongname", "wrongname"}, {"/refused", "refused"}, {"/mute", "mute"}});
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  auto tls = tk::http_request(proxy.port(), get(kA, "/wrongname"));
  EXPECT_EQ(tls.status, 502);
  EXPECT_EQ(tls.header("X-Orgproxy-Error"), "upstream_tls") << proxy.log();
  auto conn = tk::http_request(proxy.port(), get(kA, "/refused"));
  EXPECT_EQ(conn.status, 502);
  EXPECT_EQ(conn.header("X-Orgproxy-Error"), "upstream_connect");
  auto slow = tk::http_request(proxy.port(), get(kA, "/mute"));
  EXPECT_EQ(slow.status, 504);
  EXPECT_EQ(slow.header("X-Orgproxy-Error"), "upstream_timeout");
  auto ok = tk::http_request(proxy.port(), get(kA, "/dmp/x"));  // positive control, same daemon
  EXPECT_EQ(ok.status, 200) << proxy.log();
}

TEST_F(DaemonProxy, clients_reach_only_their_tenants_and_their_bearer_token_stays_here) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto b = make_identity(kB, "dmp", kB, "Cabinet B");
  tk::HashUpstream up(hash_options());
  auto cfg = base_config(up.url("/base"));
  add_tenant(cfg, kA, {{"dmp", a}});
  add_tenant(cfg, kB, {{"dmp", b}});
  // printf %s 'ris-token-A' | sha256sum
  const std::string token_hash = tk::sha256_hex("ris-token-A");
  cfg.extra_yaml = "clients:\n"
                   "  - name: ris-a\n    cidr: 127.0.0.0/8\n    bearer_sha256: \"" + token_hash + "\"\n"
                   "    tenants: [\"" + kA + "\"]\n    rate: 2\n    burst: 3\n";
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpRequest req = get(kA, "/dmp/x");
  req.headers.push_back({"Authorization", "Bearer ris-token-A"});
  auto ok = tk::http_request(proxy.port(), req);
  ASSERT_EQ(ok.status, 200) << ok.body << proxy.log();
  EXPECT_EQ(ok.header("X-Seen-Headers").find("authorization"), std::string::npos) << ok.header("X-Seen-Headers");
  ASSERT_TRUE(proxy.wait_for_log("\"client\":\"ris-a\""));

  tk::HttpRequest forged = get(kB, "/dmp/x");  // a configured tenant, not this client's
  forged.headers.push_back({"Authorization", "Bearer ris-token-A"});
  auto refused = tk::http_request(proxy.port(), forged);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(refused.header("X-Orgproxy-Error"), "client_not_allowed");
  tk::HttpRequest wrong = get(kA, "/dmp/x");
  wrong.headers.push_back({"Authorization", "Bearer ris-token-B"});
  EXPECT_EQ(tk::http_request(proxy.port(), wrong).header("X-Orgproxy-Error"), "client_not_allowed");
  EXPECT_EQ(tk::http_request(proxy.port(), get(kA, "/dmp/x")).header("X-Orgproxy-Error"), "client_not_allowed");
  EXPECT_EQ(proxy.log().find("ris-token-A"), std::string::npos);  // the token itself is never logged

  // rate 2/s, burst 3: a quick series runs into 429 rate_limited.
  int limited = 0;
  for (int i = 0; i < 6; ++i)
    if (tk::http_request(proxy.port(), req).status == 429) ++limited;
  EXPECT_GT(limited, 0);
}

}  // namespace
}  // namespace orgproxy::daemon_it
