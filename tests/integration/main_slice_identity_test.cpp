// Main slice, identity: each practice site reaches the national endpoints (the real nginx, mutual TLS) with
// its OWN certificate, over TLS 1.2 and TLS 1.3, and tenants interleaved on one downstream keep-alive
// connection never see another tenant's identity or upstream connection.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "orgproxy/testkit/curl.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;

namespace {

constexpr const char* kDmpContentType =
    "application/soap+xml; charset=UTF-8; action=\"urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b\"";
constexpr const char* kInsiContentType =
    "application/soap+xml; charset=UTF-8; "
    "action=\"urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite\"";

const char* protocol_name(tk::TlsProtocols p) { return p == tk::TlsProtocols::tls1_2 ? "TLSv1.2" : "TLSv1.3"; }

// Three sites, two nginx mocks (DMP, INSi) restricted to one TLS version, the daemon routing /dmp and /insi.
class MainSliceIdentity : public ::testing::TestWithParam<tk::TlsProtocols> {
 protected:
  void SetUp() override {
    world_ = std::make_unique<tk::SiteWorld>(tmp_.subdir("world"), tk::three_test_sites());
    dmp_ = start_nginx("dmp", GetParam());
    insi_ = start_nginx("insi", GetParam());
    auto config = world_->base_config();
    const auto ca = world_->pki().ca_bundle_pem().string();
    config.upstreams.push_back(tk::make_upstream("dmp", dmp_->url("/si-dmp-server/v2/services"), ca, "dmp"));
    config.upstreams.push_back(tk::make_upstream("insi", insi_->url("/lps"), ca, "insi-auto"));
    config.routes = {{"/dmp", "dmp"}, {"/insi", "insi"}};
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config, world_->daemon_start());
  }

  std::unique_ptr<tk::NginxUpstream> start_nginx(const std::string& name, tk::TlsProtocols protocols) {
    tk::NginxServerOptions s;
    s.name = name;
    s.cert_file = world_->upstream_server_cert().chain.string();
    s.key_file = world_->upstream_server_cert().key.string();
    s.client_ca_file = world_->pki().ca_bundle_pem().string();
    s.protocols = protocols;
    return std::make_unique<tk::NginxUpstream>(tmp_.subdir("nginx-" + name), s);
  }

  std::string diagnostics() const {
    return "\n--- orgproxy log ---\n" + daemon_->log() + "\n--- nginx dmp error log ---\n" + dmp_->error_log();
  }

  tk::TempDir tmp_{"main-slice-identity"};
  std::unique_ptr<tk::SiteWorld> world_;
  std::unique_ptr<tk::NginxUpstream> dmp_, insi_;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
};

}  // namespace

TEST_P(MainSliceIdentity, each_site_reaches_dmp_and_insi_with_its_own_certificate) {
  const std::string base = "http://127.0.0.1:" + std::to_string(daemon_->port());
  for (const auto& site : world_->sites()) {
    const auto& id = site.spec.id;
    const auto dmp_body = tmp_.file(id + "-dmp.xml");
    tk::write_file(dmp_body, tk::load_sample("dmp-iti41-provide-and-register.xml", id));
    auto dmp = tk::run_curl(tmp_.path(),
                            {"-H", "X-Orgproxy-Tenant: " + id, "-H", std::string("Content-Type: ") + kDmpContentType,
                             "--data-binary", "@" + dmp_body, base + "/dmp/repository"});
    ASSERT_EQ(dmp.exit_code, 0) << dmp.output << diagnostics();
    EXPECT_EQ(dmp.response.status, 200) << id << diagnostics();
    EXPECT_EQ(dmp.response.header("X-Endpoint"), "dmp");
    EXPECT_EQ(dmp.response.header("X-Client-DN"), site.identity("dmp").subject_dn) << id;
    EXPECT_EQ(dmp.response.header("X-Client-Serial"), site.identity("dmp").serial_hex) << id;
    EXPECT_EQ(dmp.response.header("X-Client-Verify"), "SUCCESS") << id;
    EXPECT_EQ(dmp.response.header("X-Tls-Protocol"), protocol_name(GetParam())) << id;
    EXPECT_EQ(dmp.response.header("X-Seen-Uri"), "/si-dmp-server/v2/services/repository") << id;

    const auto insi_body = tmp_.file(id + "-insi.xml");
    tk::write_file(insi_body, tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", id));
    auto insi = tk::run_curl(tmp_.path(),
                             {"-H", "X-Orgproxy-Tenant: " + id, "-H", std::string("Content-Type: ") + kInsiContentType,
                              "--data-binary", "@" + insi_body, base + "/insi"});
    ASSERT_EQ(insi.exit_code, 0) << insi.output;
    EXPECT_EQ(insi.response.status, 200) << id << diagnostics();
    EXPECT_EQ(insi.response.header("X-Endpoint"), "insi");
    // The INSi identity, never the DMP one: CN exactly INSI-AUTO, same site OU.
    EXPECT_EQ(insi.response.header("X-Client-DN"), site.identity("insi-auto").subject_dn) << id;
    EXPECT_NE(insi.response.header("X-Client-DN").find("CN=INSI-AUTO,OU=" + id + ","), std::string::npos);
    EXPECT_EQ(insi.response.header("X-Tls-Protocol"), protocol_name(GetParam())) << id;
    EXPECT_EQ(insi.response.header("X-Seen-Uri"), "/lps") << id;
  }
}

TEST_P(MainSliceIdentity, interleaved_tenants_on_one_keepalive_connection_never_see_a_wrong_dn) {
  const auto& sites = world_->sites();
  // A, B, C, A, B as the brief's minimum, then again, so every tenant comes back after the others.
  const std::vector<std::size_t> order{0, 1, 2, 0, 1, 2, 0, 1};
  tk::HttpClient client("127.0.0.1", daemon_->port());
  std::map<std::string, std::set<std::string>> upstream_connections_of;  // tenant → nginx $connection values
  for (std::size_t n = 0; n < order.size(); ++n) {
    const auto& site = sites[order[n]];
    tk::HttpRequest request{"POST",
                            "/dmp/registry?n=" + std::to_string(n),
                            {{"X-Orgproxy-Tenant", site.spec.id}, {"Content-Type", kDmpContentType}},
                            tk::load_sample("dmp-iti41-provide-and-register.xml", site.spec.id)};
    auto response = client.request(request);  // throws if the daemon closed the downstream connection
    ASSERT_EQ(response.status, 200) << "request " << n << diagnostics();
    EXPECT_EQ(response.header("X-Client-DN"), site.identity("dmp").subject_dn) << "request " << n;
    EXPECT_EQ(response.header("X-Seen-Uri"), "/si-dmp-server/v2/services/registry?n=" + std::to_string(n));
    EXPECT_TRUE(response.keep_alive) << "request " << n << ": " << response.header("Connection") << "\n" << daemon_->log();
    upstream_connections_of[site.spec.id].insert(response.header("X-Up-Conn"));
  }
  // No upstream connection ever carried two tenants.
  std::map<std::string, std::string> tenant_of_connection;
  for (const auto& [tenant, connections] : upstream_connections_of) {
    for (const auto& c : connections) {
      auto [it, fresh] = tenant_of_connection.emplace(c, tenant);
      EXPECT_TRUE(fresh) << "upstream connection " << c << " carried " << it->second << " and " << tenant;
    }
  }
  // And each tenant's own connection was reused: one downstream connection is served by one worker, whose
  // pool keeps the tenant's upstream connection alive.
  for (const auto& [tenant, connections] : upstream_connections_of) {
    EXPECT_EQ(connections.size(), 1u) << tenant << " opened " << connections.size() << " upstream connections";
  }
}

INSTANTIATE_TEST_SUITE_P(TlsVersions, MainSliceIdentity,
                         ::testing::Values(tk::TlsProtocols::tls1_2, tk::TlsProtocols::tls1_3), [](const auto& info) {
                           return info.param == tk::TlsProtocols::tls1_2 ? std::string("tls12") : std::string("tls13");
                         });
