// The demo's world, end to end without the shell script: the configurations demo_setup writes are accepted by
// `orgproxy check-config` (token checks included) and by nginx, and every demo site reaches both mock
// endpoints through the daemon with its own certificate (what scripts/demo.sh prints as OK).
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/demo_setup.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/site_ids.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;
using namespace std::chrono_literals;

namespace {

struct DemoSite {
  std::string id, sector, name, dmp_dn, insi_dn;
};

std::vector<DemoSite> read_sites(const std::filesystem::path& file) {
  std::vector<DemoSite> out;
  std::istringstream in(tk::read_file(file));
  for (std::string line; std::getline(in, line);) {
    DemoSite s;
    std::istringstream fields(line);
    std::getline(fields, s.id, '\t');
    std::getline(fields, s.sector, '\t');
    std::getline(fields, s.name, '\t');
    std::getline(fields, s.dmp_dn, '\t');
    std::getline(fields, s.insi_dn, '\t');
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST(MainSliceDemo, demo_world_is_accepted_and_every_site_reaches_both_endpoints_as_itself) {
  tk::TempDir tmp("main-slice-demo");
  const auto files = tk::demo_setup(tmp.path() / "demo");
  const tk::EnvVars env{{"SOFTHSM2_CONF", files.softhsm_conf.string()}};

  const auto sites = read_sites(files.sites_file);
  ASSERT_EQ(sites.size(), 3u);
  std::multiset<std::string> sectors;
  for (const auto& s : sites) {
    sectors.insert(s.sector);
    const bool siret = s.sector == "SA09";
    EXPECT_EQ(s.id.front(), siret ? '3' : '4') << s.id;
    EXPECT_TRUE(tk::luhn_ok(siret ? s.id.substr(1) : s.id.substr(1, 11))) << s.id;
    EXPECT_EQ(s.insi_dn.rfind("CN=INSI-AUTO,OU=" + s.id + ",", 0), 0u) << s.insi_dn;
    EXPECT_EQ(s.dmp_dn.rfind("CN=" + s.name + ",OU=" + s.id + ",", 0), 0u) << s.dmp_dn;
  }
  EXPECT_EQ(sectors, (std::multiset<std::string>{"SA07", "SA08", "SA09"}));

  auto check = tk::run_command({ORGPROXY_BINARY, "check-config", "--config", files.orgproxy_config.string()}, env);
  EXPECT_EQ(check.exit_code, 0) << check.output;
  auto nginx_test = tk::run_command({"nginx", "-t", "-p", files.nginx_dir.string() + "/", "-c",
                                     files.nginx_config.string(), "-e", (files.nginx_dir / "error.log").string()});
  ASSERT_EQ(nginx_test.exit_code, 0) << nginx_test.output;

  tk::ChildProcess nginx(
      {tk::nginx_command(files.nginx_dir, files.nginx_config), {}, (files.nginx_dir / "nginx.out").string(), ""});
  ASSERT_TRUE(tk::wait_for_port("127.0.0.1", files.dmp_port, 20s, [&] { return nginx.running(); }));
  ASSERT_TRUE(tk::wait_for_port("127.0.0.1", files.insi_port, 20s, [&] { return nginx.running(); }));
  tk::ChildProcess daemon(
      {{ORGPROXY_BINARY, "run", "--config", files.orgproxy_config.string()}, env, tmp.file("orgproxy.log"), ""});
  ASSERT_TRUE(tk::wait_for_port("127.0.0.1", files.orgproxy_port, 20s, [&] { return daemon.running(); }))
      << daemon.log();

  tk::HttpClient client("127.0.0.1", files.orgproxy_port);
  for (const auto& s : sites) {
    auto dmp = client.request({"POST",
                               "/dmp/repository",
                               {{"X-Orgproxy-Tenant", s.id}, {"Content-Type", "application/soap+xml"}},
                               tk::load_sample("dmp-iti41-provide-and-register.xml", s.id)});
    EXPECT_EQ(dmp.status, 200) << daemon.log();
    EXPECT_EQ(dmp.header("X-Client-DN"), s.dmp_dn);
    EXPECT_EQ(dmp.header("X-Endpoint"), "DMP mock");
    EXPECT_EQ(dmp.header("X-Seen-Uri"), "/si-dmp-server/v2/services/repository");
    auto insi = client.request({"POST",
                                "/insi",
                                {{"X-Orgproxy-Tenant", s.id}, {"Content-Type", "application/soap+xml"}},
                                tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", s.id)});
    EXPECT_EQ(insi.status, 200) << daemon.log();
    EXPECT_EQ(insi.header("X-Client-DN"), s.insi_dn);
    EXPECT_EQ(insi.header("X-Endpoint"), "INSi mock");
    EXPECT_EQ(insi.header("X-Seen-Uri"), "/lps");
  }
}
