// Operations, metrics and health: the real daemon is scraped after real traffic (three sites, a mutual-TLS
// nginx upstream) and the metric VALUES are asserted; promtool accepts the exposition; /healthz, /readyz and
// /sites answer from the running daemon; X-Request-Id is adopted when well-formed.
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <csignal>
#include <ctime>

#include <nlohmann/json.hpp>

#include "ops_world.hpp"
#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/site_ids.hpp"

namespace tk = orgproxy::testkit;
using orgproxy::ops_it::metric_value;
using orgproxy::ops_it::OpsWorld;

namespace {

const std::string kA(tk::kSiteA);
const std::string kB(tk::kSiteB);

double not_after_of(const std::string& pem_file) {
  FILE* f = std::fopen(pem_file.c_str(), "r");
  if (!f) return -1;
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!x) return -1;
  std::tm tm{};
  ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
  X509_free(x);
  return static_cast<double>(timegm(&tm));
}

class OpsMetrics : public OpsWorld {};

}  // namespace

TEST_F(OpsMetrics, scrape_after_traffic_counts_each_site_and_passes_promtool) {
  start();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send(kA, "/dmp/registry").status, 200) << diagnostics();
  for (int i = 0; i < 2; ++i) EXPECT_EQ(send(kB, "/dmp/registry").status, 200) << diagnostics();
  // An unknown path for B (404 no_route) and an unknown tenant: request text must never become a label.
  EXPECT_EQ(send(kB, "/nowhere").status, 404);
  EXPECT_EQ(send("399999999999999", "/dmp/x").status, 403);

  auto res = admin_get("/metrics");
  ASSERT_EQ(res.status, 200) << diagnostics();
  EXPECT_NE(res.header("Content-Type").find("version=0.0.4"), std::string::npos);
  const std::string& text = res.body;

  EXPECT_EQ(metric_value(text, "orgproxy_requests_total", {{"tenant", kA}, {"upstream", "dmp"}, {"code_class", "2xx"}}),
            3.0) << text;
  EXPECT_EQ(metric_value(text, "orgproxy_requests_total", {{"tenant", kB}, {"upstream", "dmp"}, {"code_class", "2xx"}}),
            2.0) << text;
  EXPECT_EQ(metric_value(text, "orgproxy_requests_total", {{"tenant", kB}, {"upstream", "none"}, {"code_class", "4xx"}}),
            1.0) << text;
  EXPECT_EQ(metric_value(text, "orgproxy_requests_total", {{"tenant", "none"}, {"upstream", "none"}, {"code_class", "4xx"}}),
            1.0) << text;
  EXPECT_EQ(text.find("399999999999999"), std::string::npos) << "a tenant id from a request became a label";
  // Positive control of that absence: a configured tenant's id does appear.
  EXPECT_NE(text.find(kA), std::string::npos);

  EXPECT_EQ(metric_value(text, "orgproxy_request_duration_seconds_count", {{"upstream", "dmp"}}), 5.0) << text;
  // Each site needs its own upstream connection (pools are keyed by identity): at least 2 handshakes; with
  // 2 workers and pooling, at most one per request.
  auto handshakes = metric_value(text, "orgproxy_upstream_handshakes_total", {{"upstream", "dmp"}, {"result", "success"}});
  ASSERT_TRUE(handshakes) << text;
  EXPECT_GE(*handshakes, 2.0);
  EXPECT_LE(*handshakes, 5.0);
  EXPECT_EQ(metric_value(text, "orgproxy_upstream_handshake_duration_seconds_count", {{"upstream", "dmp"}}), *handshakes);
  // Every full handshake signs once in the token (resumed ones do not).
  auto signs = metric_value(text, "orgproxy_pkcs11_sign_duration_seconds_count");
  ASSERT_TRUE(signs) << text;
  EXPECT_GE(*signs, 2.0);
  EXPECT_LE(*signs, *handshakes);

  const double a_not_after = not_after_of(world_->site(kA).identity("dmp").cert_file);
  ASSERT_GT(a_not_after, static_cast<double>(std::time(nullptr)));
  EXPECT_EQ(metric_value(text, "orgproxy_certificate_not_after_timestamp_seconds", {{"tenant", kA}, {"purpose", "dmp"}}),
            a_not_after) << text;
  EXPECT_EQ(metric_value(text, "orgproxy_identity_unavailable", {{"tenant", kA}, {"purpose", "dmp"}}), 0.0);
  EXPECT_EQ(metric_value(text, "orgproxy_ready"), 1.0);
  EXPECT_EQ(metric_value(text, "orgproxy_build_info", {{"version", "0.1.0"}}), 1.0) << text;
  EXPECT_EQ(metric_value(text, "orgproxy_config_reloads_total", {{"result", "success"}}), 0.0);
  auto loaded_at = metric_value(text, "orgproxy_config_last_reload_success_timestamp_seconds");
  ASSERT_TRUE(loaded_at);
  EXPECT_NEAR(*loaded_at, static_cast<double>(std::time(nullptr)), 300.0);
  auto idle = metric_value(text, "orgproxy_upstream_connections", {{"state", "idle"}});
  auto active = metric_value(text, "orgproxy_upstream_connections", {{"state", "active"}});
  ASSERT_TRUE(idle && active) << text;
  EXPECT_EQ(*active + *idle, *handshakes) << "every connection made is still alive (pooled) between requests";

  const auto promtool = tk::find_program("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool missing: scripts/install-deps.sh installs the prometheus package";
  const auto scrape = tmp_.file("scrape.txt");
  tk::write_file(scrape, text);
  auto check = tk::run_command({"/bin/sh", "-c", "\"" + promtool + "\" check metrics < \"" + scrape + "\""});
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << text;

  // A reload counts as a success and moves the timestamp; a broken file counts as a failure.
  daemon_->send_signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_for_log("reloaded: generation 2")) << diagnostics();
  tk::write_file(daemon_->config_file(), "listeners: [ this is not valid\n");
  daemon_->send_signal(SIGHUP);
  ASSERT_TRUE(daemon_->wait_for_log("reload rejected")) << diagnostics();
  const std::string after = admin_get("/metrics").body;
  EXPECT_EQ(metric_value(after, "orgproxy_config_reloads_total", {{"result", "success"}}), 1.0) << after;
  EXPECT_EQ(metric_value(after, "orgproxy_config_reloads_total", {{"result", "failure"}}), 1.0) << after;
  EXPECT_EQ(metric_value(after, "orgproxy_config_generation"), 2.0);
}

TEST_F(OpsMetrics, health_readiness_and_sites_report_the_running_daemon) {
  start();
  EXPECT_EQ(send(kA, "/dmp/registry").status, 200) << diagnostics();

  auto health = admin_get("/healthz");
  EXPECT_EQ(health.status, 200);
  auto ready = admin_get("/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  auto rj = nlohmann::json::parse(ready.body);
  EXPECT_TRUE(rj["ready"].get<bool>());
  EXPECT_EQ(rj["identities"]["unavailable"].get<int>(), 0);
  EXPECT_GE(rj["identities"]["usable"].get<int>(), 6);  // 3 sites x (dmp, insi-auto)

  auto sites = admin_get("/sites");
  ASSERT_EQ(sites.status, 200);
  auto sj = nlohmann::json::parse(sites.body);
  ASSERT_EQ(sj["sites"].size(), 3u) << sites.body;
  bool seen_a = false;
  for (const auto& s : sj["sites"]) {
    for (const auto& ident : s["identities"]) {
      EXPECT_TRUE(ident["usable"].get<bool>()) << s.dump();
      EXPECT_GT(ident["days_to_expiry"].get<long>(), 0) << s.dump();
    }
    for (const auto& u : s["upstreams"]) {
      if (u["upstream"] != "dmp") continue;
      if (s["id"] == kA) {
        seen_a = true;
        EXPECT_EQ(u["requests"].get<int>(), 1);
        EXPECT_FALSE(u["last_success"].is_null()) << s.dump();
        EXPECT_TRUE(u["last_failure"].is_null()) << s.dump();
      } else {
        EXPECT_TRUE(u["last_success"].is_null()) << s.dump();  // control: no traffic, no success
      }
    }
  }
  EXPECT_TRUE(seen_a) << sites.body;
  EXPECT_EQ(admin_get("/nothing-here").status, 404);

  // The operator's view of the same: `orgproxy sites status` against the running daemon.
  auto table = tk::run_command({ORGPROXY_BINARY, "sites", "status", "--admin", admin_url("")});
  EXPECT_EQ(table.exit_code, 0) << table.output;
  for (const auto& site : world_->sites()) EXPECT_NE(table.output.find(site.spec.id), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("insi-auto"), std::string::npos) << table.output;
  auto as_json = tk::run_command({ORGPROXY_BINARY, "sites", "status", "--json", "--admin", admin_url("")});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.output;
  EXPECT_EQ(nlohmann::json::parse(as_json.output)["sites"].size(), 3u);
  // Negative control: nothing listening there.
  auto down = tk::run_command({ORGPROXY_BINARY, "sites", "status", "--admin",
                               "http://127.0.0.1:" + std::to_string(tk::free_loopback_port())});
  EXPECT_EQ(down.exit_code, 2) << down.output;  // 2 = could not check; 1 is kept for "a site is not usable"
  EXPECT_NE(down.output.find("sites status"), std::string::npos) << down.output;
}

TEST_F(OpsMetrics, well_formed_request_id_is_echoed_and_malformed_one_replaced) {
  start();
  auto given = send(kA, "/dmp/registry", {"-H", "X-Request-Id: ris-2026.11_30-abc"});
  EXPECT_EQ(given.status, 200);
  EXPECT_EQ(given.header("X-Request-Id"), "ris-2026.11_30-abc");
  auto bad = send(kA, "/dmp/registry", {"-H", "X-Request-Id: bad id;drop"});
  EXPECT_EQ(bad.status, 200);
  EXPECT_EQ(bad.header("X-Request-Id").size(), 16u) << bad.header("X-Request-Id");
  EXPECT_EQ(bad.header("X-Request-Id").find(' '), std::string::npos);
  auto error = send(kA, "/nowhere", {"-H", "X-Request-Id: ris-404-id"});
  EXPECT_EQ(error.status, 404);
  EXPECT_EQ(error.header("X-Request-Id"), "ris-404-id");
  ASSERT_TRUE(daemon_->wait_for_log("\"request_id\":\"ris-2026.11_30-abc\"")) << diagnostics();
}

TEST_F(OpsMetrics, admin_bearer_token_is_required_when_configured) {
  // SHA-256 of "admin-token-for-tests".
  const auto hash = tk::run_command({"/bin/sh", "-c", "printf %s admin-token-for-tests | sha256sum | cut -c1-64"});
  ASSERT_EQ(hash.exit_code, 0);
  start("  bearer_sha256: \"" + hash.output.substr(0, 64) + "\"\n");
  EXPECT_EQ(admin_get("/metrics").status, 401);
  EXPECT_EQ(admin_get("/readyz", {"-H", "Authorization: Bearer wrong-token"}).status, 401);
  auto ok = admin_get("/metrics", {"-H", "Authorization: Bearer admin-token-for-tests"});
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("orgproxy_build_info"), std::string::npos);
}
