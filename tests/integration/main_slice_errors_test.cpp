// Main slice, orgproxy's own errors (DESIGN.md error table): status, X-Orgproxy-Error and X-Request-Id for
// tenant_missing, unknown_tenant, no_route, upstream_connect (closed port), upstream_tls (upstream certificate
// from a rogue CA) and upstream_timeout (an upstream that accepts and never answers). Every test also sends a
// good request to the same daemon (positive control), so a daemon that fails everything cannot pass.
#include <gtest/gtest.h>

#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/site_ids.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;
using namespace std::chrono_literals;

namespace {

class MainSliceErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = std::make_unique<tk::SiteWorld>(tmp_.subdir("world"), tk::three_test_sites());
    const auto ca = world_->pki().ca_bundle_pem().string();
    nginx_ = std::make_unique<tk::NginxUpstream>(tmp_.subdir("nginx"), nginx_options(world_->upstream_server_cert()));
    // An upstream whose server certificate comes from a rogue CA (the client certificate check would pass).
    rogue_pki_ = std::make_unique<tk::TestPki>(tk::TestPki::rogue(tmp_.subdir("rogue-pki")));
    rogue_ = std::make_unique<tk::NginxUpstream>(
        tmp_.subdir("rogue"), nginx_options(rogue_pki_->issue_server_cert("rogue", {"localhost"}, {"127.0.0.1"})));
    closed_port_ = tk::free_loopback_port();

    auto config = world_->base_config();
    config.upstreams.push_back(tk::make_upstream("dmp", nginx_->url("/si-dmp-server/v2/services"), ca, "dmp"));
    config.upstreams.push_back(
        tk::make_upstream("closed", "https://127.0.0.1:" + std::to_string(closed_port_) + "/x", ca, "dmp"));
    config.upstreams.push_back(tk::make_upstream("rogue", rogue_->url("/x"), ca, "dmp"));
    tk::ConfigUpstream silent =
        tk::make_upstream("silent", "https://127.0.0.1:" + std::to_string(silent_.port()) + "/x", ca, "dmp");
    silent.connect_timeout = "2s";
    silent.handshake_timeout = "2s";
    silent.first_byte_timeout = "2s";
    config.upstreams.push_back(silent);
    config.routes = {{"/dmp", "dmp"}, {"/closed", "closed"}, {"/rogue", "rogue"}, {"/silent", "silent"}};
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config, world_->daemon_start());
  }

  tk::NginxServerOptions nginx_options(const tk::IssuedFiles& server) const {
    tk::NginxServerOptions s;
    s.cert_file = server.chain.string();
    s.key_file = server.key.string();
    s.client_ca_file = world_->pki().ca_bundle_pem().string();
    return s;
  }

  tk::HttpResponse send(const std::string& target, const std::vector<std::pair<std::string, std::string>>& headers) {
    return tk::http_request(daemon_->port(), {"POST", target, headers, "<soap/>"});
  }

  // The positive control: site A's DMP request through the same daemon succeeds.
  void expect_good_request_still_works() {
    auto ok = send("/dmp/repository", {{"X-Orgproxy-Tenant", std::string(tk::kSiteA)}});
    EXPECT_EQ(ok.status, 200) << daemon_->log();
    EXPECT_EQ(ok.header("X-Client-DN"), world_->site(std::string(tk::kSiteA)).identity("dmp").subject_dn);
    EXPECT_FALSE(ok.has_header("X-Orgproxy-Error"));
  }

  static void expect_error(const tk::HttpResponse& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << code;
    EXPECT_EQ(r.header("X-Orgproxy-Error"), code);
    EXPECT_FALSE(r.header("X-Request-Id").empty()) << code;
  }

  tk::TempDir tmp_{"main-slice-errors"};
  std::unique_ptr<tk::SiteWorld> world_;
  std::unique_ptr<tk::NginxUpstream> nginx_;
  std::unique_ptr<tk::TestPki> rogue_pki_;
  std::unique_ptr<tk::NginxUpstream> rogue_;
  tk::SilentTcpServer silent_;
  std::uint16_t closed_port_ = 0;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
};

}  // namespace

TEST_F(MainSliceErrors, request_without_tenant_is_400_tenant_missing) {
  auto r = send("/dmp/repository", {{"Content-Type", "text/xml"}});
  expect_error(r, 400, "tenant_missing");
  EXPECT_EQ(nginx_->access_log(), "") << "nothing may reach the upstream";
  expect_good_request_still_works();
}

TEST_F(MainSliceErrors, soap_request_without_tenant_gets_a_soap12_sender_fault) {
  auto r = send("/dmp/repository", {{"Content-Type", "application/soap+xml; charset=UTF-8"}});
  expect_error(r, 400, "tenant_missing");
  EXPECT_NE(r.header("Content-Type").find("application/soap+xml"), std::string::npos) << r.header("Content-Type");
  EXPECT_NE(r.body.find("http://www.w3.org/2003/05/soap-envelope"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Sender"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("tenant_missing"), std::string::npos) << r.body;
  expect_good_request_still_works();
}

TEST_F(MainSliceErrors, well_formed_but_unconfigured_tenant_is_403_unknown_tenant) {
  const std::string stranger = tk::site_id_siret("5520000000001");  // valid SIRET, not configured
  auto r = send("/dmp/repository", {{"X-Orgproxy-Tenant", stranger}});
  expect_error(r, 403, "unknown_tenant");
  EXPECT_EQ(nginx_->access_log(), "");
  expect_good_request_still_works();
}

TEST_F(MainSliceErrors, path_without_route_is_404_no_route) {
  auto r = send("/dmpx/repository", {{"X-Orgproxy-Tenant", std::string(tk::kSiteA)}});  // not on a segment boundary
  expect_error(r, 404, "no_route");
  expect_error(send("/nothing", {{"X-Orgproxy-Tenant", std::string(tk::kSiteA)}}), 404, "no_route");
  expect_good_request_still_works();
}

TEST_F(MainSliceErrors, closed_upstream_port_is_502_upstream_connect) {
  auto r = send("/closed/a", {{"X-Orgproxy-Tenant", std::string(tk::kSiteA)}});
  expect_error(r, 502, "upstream_connect");
  expect_good_request_still_works();
}

TEST_F(MainSliceErrors, upstream_certificate_from_a_rogue_ca_is_502_upstream_tls) {
  auto r = send("/rogue/a", {{"X-Orgproxy-Tenant", std::string(tk::kSiteA)}});
  expect_error(r, 502, "upstream_tls");
  EXPECT_EQ(rogue_->access_log(), "") << "no request may be sent to an untrusted upstream";
  expect_good_request_still_works();
}

TEST_F(MainSliceErrors, upstream_that_never_answers_is_504_upstream_timeout) {
  const auto start = std::chrono::steady_clock::now();
  auto r = send("/silent/a", {{"X-Orgproxy-Tenant", std::string(tk::kSiteA)}});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  expect_error(r, 504, "upstream_timeout");
  EXPECT_GE(silent_.accepted(), 1u) << "the daemon never connected to the silent upstream";
  EXPECT_GE(elapsed, 1500ms) << "answered before the 2 s deadline could expire";
  EXPECT_LT(elapsed, 20s) << "the 2 s deadline was not applied";
  expect_good_request_still_works();
}
