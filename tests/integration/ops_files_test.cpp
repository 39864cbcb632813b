// Operations files of the repository: the alert rules load in promtool, the Grafana dashboard is valid JSON
// whose queries use only metrics the daemon exports, and the systemd unit verifies (systemd-analyze, no
// systemd PID 1 needed) with its exposure score printed for ops/README.md.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;

namespace {
const std::string kSource = ORGPROXY_SOURCE_DIR;

// Families exported by the daemon (daemon/src/metrics*.cpp); kept in step with ops/README.md.
const std::set<std::string> kExported{
    "orgproxy_requests_total", "orgproxy_request_duration_seconds", "orgproxy_upstream_handshakes_total",
    "orgproxy_upstream_handshake_duration_seconds", "orgproxy_pkcs11_sign_duration_seconds",
    "orgproxy_pkcs11_sign_errors_total", "orgproxy_pkcs11_recoveries_total", "orgproxy_upstream_connections",
    "orgproxy_certificate_not_after_timestamp_seconds", "orgproxy_identity_unavailable", "orgproxy_ready",
    "orgproxy_config_reloads_total", "orgproxy_config_last_reload_success_timestamp_seconds",
    "orgproxy_config_generation", "orgproxy_build_info"};

std::set<std::string> metric_names_in(const std::string& text) {
  std::set<std::string> names;
  static const std::regex re("orgproxy_[a-z0-9_]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    std::string n = it->str();
    for (const char* suffix : {"_bucket", "_count", "_sum"})
      if (n.size() > std::strlen(suffix) && n.compare(n.size() - std::strlen(suffix), std::string::npos, suffix) == 0 &&
          kExported.count(n.substr(0, n.size() - std::strlen(suffix))))
        n = n.substr(0, n.size() - std::strlen(suffix));
    names.insert(n);
  }
  return names;
}

}  // namespace

TEST(OpsFiles, alert_rules_pass_promtool_and_use_exported_metrics) {
  const auto promtool = tk::find_program("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool missing: scripts/install-deps.sh installs the prometheus package";
  auto ok = tk::run_command({promtool, "check", "rules", kSource + "/ops/prometheus-alerts.yml"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("SUCCESS"), std::string::npos) << ok.output;
  // Negative control: promtool does reject a broken rule file, so the check above can fail.
  tk::TempDir tmp("ops-rules");
  tk::write_file(tmp.file("bad.yml"), "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(orgproxy_requests_total[\n");
  auto bad = tk::run_command({promtool, "check", "rules", tmp.file("bad.yml")});
  EXPECT_NE(bad.exit_code, 0) << bad.output;

  const std::string rules = tk::read_file(kSource + "/ops/prometheus-alerts.yml");
  for (const auto& name : metric_names_in(rules)) EXPECT_TRUE(kExported.count(name)) << name << " is not exported";
  for (const char* alert : {"OrgproxyCertificateExpiringSoon", "OrgproxyCertificateExpired",
                            "OrgproxyUpstreamErrorRatioHigh", "OrgproxyTokenNotReady"})
    EXPECT_NE(rules.find(alert), std::string::npos) << alert;
}

TEST(OpsFiles, grafana_dashboard_is_valid_json_querying_exported_metrics) {
  const std::string text = tk::read_file(kSource + "/ops/grafana-dashboard.json");
  auto dash = nlohmann::json::parse(text);
  ASSERT_TRUE(dash.contains("panels"));
  std::size_t targets = 0;
  for (const auto& p : dash["panels"]) {
    if (!p.contains("targets")) continue;
    for (const auto& t : p["targets"]) {
      ASSERT_TRUE(t.contains("expr")) << p.dump();
      ++targets;
    }
  }
  EXPECT_GE(targets, 6u);
  const auto names = metric_names_in(text);
  EXPECT_GE(names.size(), 6u);
  for (const auto& name : names) EXPECT_TRUE(kExported.count(name)) << name << " is not exported";
}

TEST(OpsFiles, systemd_unit_verifies_and_reports_its_exposure) {
  const auto analyze = tk::find_program("systemd-analyze");
  ASSERT_FALSE(analyze.empty()) << "systemd-analyze missing (package systemd)";
  tk::TempDir tmp("ops-unit");
  // The unit as shipped, with the binary paths pointing at the build's binary (verify checks they exist).
  std::string unit = tk::read_file(kSource + "/systemd/orgproxy.service");
  unit = std::regex_replace(unit, std::regex("/usr/bin/orgproxy"), ORGPROXY_BINARY);
  ASSERT_NE(unit.find(ORGPROXY_BINARY), std::string::npos);
  const auto path = tmp.file("orgproxy.service");
  tk::write_file(path, unit);
  auto verify = tk::run_command({analyze, "verify", "--man=no", path}, {{"SYSTEMD_LOG_LEVEL", "notice"}});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;

  // Negative control: a unit whose ExecStart binary does not exist fails verification.
  std::string broken = std::regex_replace(unit, std::regex("ExecStart=[^ ]+"), "ExecStart=/nonexistent/orgproxy");
  const auto broken_path = tmp.file("broken.service");
  tk::write_file(broken_path, broken);
  auto bad = tk::run_command({analyze, "verify", "--man=no", broken_path});
  EXPECT_NE(bad.exit_code, 0) << bad.output;

  for (const char* key : {"Type=notify", "WatchdogSec=", "ExecReload=", "LoadCredential=", "ProtectSystem=strict",
                          "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes", "RestrictAddressFamilies=",
                          "SystemCallFilter=@system-service"})
    EXPECT_NE(unit.find(key), std::string::npos) << key;

  auto security = tk::run_command({analyze, "security", "--offline=true", "--no-pager", path});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(security.output, m, std::regex("Overall exposure level for [^:]+: ([0-9.]+) ([A-Z]+)")))
      << security.output;
  const double score = std::stod(m[1].str());
  std::cout << "systemd-analyze security --offline=true: exposure " << m[1] << " " << m[2] << "\n";
  EXPECT_LE(score, 3.0) << security.output;  // "OK" or better; the README records the exact value
}
