// Main slice, one broken site out of three: a site whose key is extractable (refused by the identity
// checks) is unavailable, answered 503 identity_unavailable and named in the start log, while the other
// sites keep working (DESIGN.md: an identity that fails is unavailable, not fatal).
#include <gtest/gtest.h>

#include <sstream>

#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/site_ids.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;

TEST(MainSliceUnavailable, extractable_key_makes_only_that_tenant_unavailable) {
  tk::TempDir tmp("main-slice-unavailable");
  const std::string broken(tk::kSiteB);
  tk::SiteWorldOptions options;
  options.extractable_sites = {broken};
  tk::SiteWorld world(tmp.subdir("world"), tk::three_test_sites(), options);
  tk::NginxServerOptions s;
  s.name = "dmp";
  s.cert_file = world.upstream_server_cert().chain.string();
  s.key_file = world.upstream_server_cert().key.string();
  s.client_ca_file = world.pki().ca_bundle_pem().string();
  tk::NginxUpstream nginx(tmp.subdir("nginx"), s);
  auto config = world.base_config();
  config.upstreams.push_back(
      tk::make_upstream("dmp", nginx.url("/si-dmp-server/v2/services"), s.client_ca_file, "dmp"));
  config.routes = {{"/dmp", "dmp"}};
  tk::OrgproxyProcess daemon(tmp.subdir("daemon"), config, world.daemon_start());

  // The start log names the broken tenant on a line that says why.
  const std::string log = daemon.log();
  bool named = false;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(broken) != std::string::npos &&
        (line.find("extractable") != std::string::npos || line.find("unavailable") != std::string::npos)) {
      named = true;
    }
  }
  EXPECT_TRUE(named) << log;

  tk::HttpClient client("127.0.0.1", daemon.port());
  auto refused = client.request({"POST", "/dmp/repository", {{"X-Orgproxy-Tenant", broken}}, "<x/>"});
  EXPECT_EQ(refused.status, 503) << daemon.log();
  EXPECT_EQ(refused.header("X-Orgproxy-Error"), "identity_unavailable");
  EXPECT_FALSE(refused.header("X-Request-Id").empty());
  EXPECT_EQ(nginx.access_log().find(broken), std::string::npos) << "the broken tenant reached the upstream";

  // Positive control: the other two sites work, on the same daemon.
  for (const auto& site : world.sites()) {
    if (site.spec.id == broken) continue;
    auto ok =
        tk::http_request(daemon.port(), {"POST", "/dmp/repository", {{"X-Orgproxy-Tenant", site.spec.id}}, "<x/>"});
    EXPECT_EQ(ok.status, 200) << site.spec.id << "\n" << daemon.log();
    EXPECT_EQ(ok.header("X-Client-DN"), site.identity("dmp").subject_dn);
  }
}
