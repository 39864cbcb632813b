// The world of the operations tests: three sites in a SoftHSM token, a DMP nginx mock (mutual TLS), and the
// real daemon with its admin listener on a loopback port chosen at run time. Helpers scrape and parse the
// Prometheus text exposition.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "orgproxy/testkit/curl.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace orgproxy::ops_it {

namespace tk = orgproxy::testkit;

/// Value of the sample `name` whose label set is exactly `labels`, from Prometheus text `text`; nullopt when
/// absent. Label values in tests hold no escaped characters, so a plain split is exact.
inline std::optional<double> metric_value(const std::string& text, const std::string& name,
                                          const std::map<std::string, std::string>& labels = {}) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto brace = line.find('{');
    const auto space = line.rfind(' ');
    const std::string sample = line.substr(0, brace == std::string::npos ? space : brace);
    if (sample != name) continue;
    std::map<std::string, std::string> got;
    if (brace != std::string::npos) {
      const auto close = line.find('}', brace);
      std::string body = line.substr(brace + 1, close - brace - 1);
      std::size_t pos = 0;
      while (pos < body.size()) {
        const auto eq = body.find('=', pos);
        const auto q1 = body.find('"', eq);
        const auto q2 = body.find('"', q1 + 1);
        got[body.substr(pos, eq - pos)] = body.substr(q1 + 1, q2 - q1 - 1);
        pos = q2 + 1;
        if (pos < body.size() && body[pos] == ',') ++pos;
      }
    }
    if (got == labels) return std::stod(line.substr(space + 1));
  }
  return std::nullopt;
}

class OpsWorld : public ::testing::Test {
 protected:
  /// Starts nginx and the daemon; `admin_yaml_extra` is appended to the `admin:` section, `extra_yaml`
  /// to the configuration.
  void start(const std::string& admin_yaml_extra = "", const std::string& extra_yaml = "") {
    world_ = std::make_unique<tk::SiteWorld>(tmp_.subdir("world"), tk::three_test_sites());
    tk::NginxServerOptions s;
    s.name = "dmp";
    s.cert_file = world_->upstream_server_cert().chain.string();
    s.key_file = world_->upstream_server_cert().key.string();
    s.client_ca_file = world_->pki().ca_bundle_pem().string();
    dmp_ = std::make_unique<tk::NginxUpstream>(tmp_.subdir("nginx-dmp"), s);
    config_ = world_->base_config();
    config_.upstreams.push_back(tk::make_upstream("dmp", dmp_->url("/si-dmp-server/v2/services"),
                                                  world_->pki().ca_bundle_pem().string(), "dmp"));
    config_.routes = {{"/dmp", "dmp"}};
    admin_port_ = tk::free_loopback_port();
    config_.extra_yaml = "admin:\n  address: \"127.0.0.1\"\n  port: " + std::to_string(admin_port_) + "\n" +
                         admin_yaml_extra + extra_yaml;
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config_, world_->daemon_start());
    ASSERT_TRUE(tk::wait_for_port("127.0.0.1", admin_port_, std::chrono::seconds(20))) << daemon_->log();
  }

  std::string proxy_url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(daemon_->port()) + path;
  }
  std::string admin_url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(admin_port_) + path;
  }

  /// One request through the proxy for `tenant`; returns the response.
  tk::HttpResponse send(const std::string& tenant, const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"-H", "X-Orgproxy-Tenant: " + tenant};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(proxy_url(path));
    auto r = tk::run_curl(tmp_.path(), args);
    EXPECT_EQ(r.exit_code, 0) << r.output << daemon_->log();
    return r.response;
  }

  /// GET on the admin listener.
  tk::HttpResponse admin_get(const std::string& path, std::vector<std::string> extra = {}) {
    extra.push_back(admin_url(path));
    auto r = tk::run_curl(tmp_.path(), extra);
    EXPECT_EQ(r.exit_code, 0) << r.output << daemon_->log();
    return r.response;
  }

  std::string diagnostics() const { return "\n--- orgproxy log ---\n" + (daemon_ ? daemon_->log() : ""); }

  tk::TempDir tmp_{"ops-it"};
  std::unique_ptr<tk::SiteWorld> world_;
  std::unique_ptr<tk::NginxUpstream> dmp_;
  tk::OrgproxyConfig config_;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
  std::uint16_t admin_port_ = 0;
};

}  // namespace orgproxy::ops_it
