// Client authorization by downstream client certificate and the client_cert selector (issue 4 points 2–3),
// on the TLS listener, against the real daemon and the real curl: a RIS allowed for one site by its
// certificate cannot reach another by header or path; the tenant picked by fingerprint or OU, conflicts
// refused; a client's connection limit kept across a reload.
#include "daemon_tls_listener_world.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

const std::string& kA = kTlsA;
const std::string& kB = kTlsB;
using DaemonClientCert = DaemonTlsListener;

}  // namespace

TEST_F(DaemonClientCert, client_allowed_for_a_by_certificate_cannot_get_b_by_header_path_or_both) {
  auto cfg = config({"header", "path"});
  cfg.extra_yaml = "clients:\n"
                   "  - name: ris-a\n    cert_sha256: \"" + fingerprint(ris_a_) + "\"\n    tenants: [\"" + kA + "\"]\n"
                   "  - name: ris-b\n    cert_subject: \"CN=RIS B,OU=" + kB + ",O=Groupe Exemple,ST=75,C=FR\"\n"
                   "    tenants: [\"" + kB + "\"]\n";
  TlsDaemon proxy(tmp_.subdir("proxy"), cfg, tls_yaml(true, false));

  // Positive controls: each certificate reaches its own site, by header and by path.
  auto a = curl(proxy.url("/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kA});
  ASSERT_EQ(a.response.status, 200) << a.output << proxy.log();
  EXPECT_EQ(a.response.header("X-Client-DN"), dn_of(a_));
  auto a_path = curl(proxy.url("/sites/" + kA + "/dmp/x"), &ris_a_);
  EXPECT_EQ(a_path.response.status, 200) << a_path.output;
  auto b = curl(proxy.url("/sites/" + kB + "/dmp/x"), &ris_b_);
  ASSERT_EQ(b.response.status, 200) << b.output << proxy.log();
  EXPECT_EQ(b.response.header("X-Client-DN"), dn_of(b_));
  const unsigned forwarded = upstream_->requests();
  EXPECT_EQ(forwarded, 3u);

  struct Attempt {
    const char* what;
    std::string path;
    std::vector<std::string> headers;
  };
  const std::vector<Attempt> attempts{
      {"header", "/dmp/x", {"-H", "X-Orgproxy-Tenant: " + kB}},
      {"path", "/sites/" + kB + "/dmp/x", {}},
      {"header and path", "/sites/" + kB + "/dmp/x", {"-H", "X-Orgproxy-Tenant: " + kB}},
      {"two headers", "/dmp/x", {"-H", "X-Orgproxy-Tenant: " + kB, "-H", "X-Orgproxy-Tenant: " + kB}},
  };
  for (auto const& at : attempts) {
    SCOPED_TRACE(at.what);
    auto r = curl(proxy.url(at.path), &ris_a_, at.headers);
    EXPECT_EQ(r.response.status, 403) << r.output;
    EXPECT_EQ(r.response.header("X-Orgproxy-Error"), "client_not_allowed");
  }
  // Selectors disagreeing stay tenant_ambiguous (selection runs before authorization).
  auto mixed = curl(proxy.url("/sites/" + kA + "/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kB});
  EXPECT_EQ(mixed.response.status, 403);
  EXPECT_EQ(mixed.response.header("X-Orgproxy-Error"), "tenant_ambiguous");
  // No certificate (optional on this listener) matches no rule: default deny. A certificate of a client
  // rule of B does not reach A either.
  auto anonymous = curl(proxy.url("/dmp/x"), nullptr, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(anonymous.response.status, 403) << anonymous.output;
  EXPECT_EQ(anonymous.response.header("X-Orgproxy-Error"), "client_not_allowed");
  auto b_for_a = curl(proxy.url("/dmp/x"), &ris_b_, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(b_for_a.response.status, 403);
  EXPECT_EQ(upstream_->requests(), forwarded) << "a refused request reached the upstream";
}

TEST_F(DaemonClientCert, client_cert_selector_picks_the_tenant_by_fingerprint_or_ou_and_conflicts_are_403) {
  // RIS LYON's certificate (OU "RIS-LYON") is mapped to B by its fingerprint; site certificates by OU.
  auto cfg = config({"header", "{client_cert: {\"" + fingerprint(ris_lyon_) + "\": \"" + kB + "\", \"OU=" + kA +
                                    "\": \"" + kA + "\"}}"});
  TlsDaemon proxy(tmp_.subdir("proxy"), cfg, tls_yaml(true, false));

  auto by_fp = curl(proxy.url("/dmp/x"), &ris_lyon_);
  ASSERT_EQ(by_fp.response.status, 200) << by_fp.output << proxy.log();
  EXPECT_EQ(by_fp.response.header("X-Client-DN"), dn_of(b_));
  auto by_ou = curl(proxy.url("/dmp/x"), &ris_a_);
  ASSERT_EQ(by_ou.response.status, 200) << by_ou.output;
  EXPECT_EQ(by_ou.response.header("X-Client-DN"), dn_of(a_));
  auto agreeing = curl(proxy.url("/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(agreeing.response.status, 200) << agreeing.output;
  const unsigned forwarded = upstream_->requests();
  EXPECT_EQ(forwarded, 3u);

  auto conflict = curl(proxy.url("/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kB});
  EXPECT_EQ(conflict.response.status, 403) << conflict.output;
  EXPECT_EQ(conflict.response.header("X-Orgproxy-Error"), "tenant_ambiguous");
  auto conflict_fp = curl(proxy.url("/dmp/x"), &ris_lyon_, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(conflict_fp.response.status, 403);
  EXPECT_EQ(conflict_fp.response.header("X-Orgproxy-Error"), "tenant_ambiguous");
  // A certificate no rule knows yields nothing: without a header, no tenant.
  auto unknown = curl(proxy.url("/dmp/x"), &ris_b_);
  EXPECT_EQ(unknown.response.status, 400);
  EXPECT_EQ(unknown.response.header("X-Orgproxy-Error"), "tenant_missing");
  EXPECT_EQ(upstream_->requests(), forwarded) << "an ambiguous request reached the upstream";
}

TEST_F(DaemonClientCert, client_connection_limit_survives_a_reload) {
  auto cfg = config({"header"});
  cfg.extra_yaml = "clients:\n  - name: local\n    cidr: 127.0.0.1/32\n    tenants: \"*\"\n    max_connections: 1\n";
  TlsDaemon proxy(tmp_.subdir("proxy"), cfg, "");
  const std::string plain = "http://127.0.0.1:" + std::to_string(proxy.port()) + "/dmp/x";

  auto held = std::make_unique<tk::HttpClient>("127.0.0.1", proxy.port());
  ASSERT_EQ(held->request(get(kA, "/dmp/x")).status, 200) << proxy.log();
  EXPECT_EQ(tk::http_request(proxy.port(), get(kA, "/dmp/x")).status, 429);  // the one slot is taken

  // Same limits, new snapshot: the held connection still counts.
  proxy.reload(cfg);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 2")) << proxy.log();
  auto after = tk::http_request(proxy.port(), get(kA, "/dmp/x"));
  EXPECT_EQ(after.status, 429) << "the reload forgot the held connection";
  EXPECT_EQ(after.header("X-Orgproxy-Error"), "rate_limited");
  EXPECT_EQ(held->request(get(kA, "/dmp/x")).status, 200);  // the holder keeps working on the new snapshot

  // A new limit applies to the kept counter: 2 slots, one held.
  auto wider = cfg;
  wider.extra_yaml = "clients:\n  - name: local\n    cidr: 127.0.0.1/32\n    tenants: \"*\"\n    max_connections: 2\n";
  proxy.reload(wider);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 3")) << proxy.log();
  EXPECT_EQ(tk::http_request(proxy.port(), get(kA, "/dmp/x")).status, 200);

  // Positive control: once the holder leaves, its slot is free again.
  held.reset();
  proxy.reload(cfg);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 4")) << proxy.log();
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {  // the daemon sees the close asynchronously
    freed = tk::http_request(proxy.port(), get(kA, "/dmp/x")).status == 200;
    if (!freed) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(freed) << proxy.log();
}

}  // namespace orgproxy::daemon_it
