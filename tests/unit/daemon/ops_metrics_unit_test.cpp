// Metrics recording, X-Request-Id adoption and admin exposure rules, without a network.
#include <gtest/gtest.h>

#include <thread>

#include "orgproxy/daemon/admin_server.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/request_id.hpp"

namespace d = orgproxy::daemon;

TEST(AtomicHistogram, buckets_are_cumulative_and_sum_is_exact_across_threads) {
  d::AtomicHistogram h({0.01, 0.1, 1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        h.observe(0.005);
        h.observe(0.05);
        h.observe(5);
      }
    });
  for (auto& t : threads) t.join();
  auto s = h.snapshot();
  ASSERT_EQ(s.bucket.size(), 4u);
  EXPECT_EQ(s.bucket[0].cumulative_count, 4000u);
  EXPECT_EQ(s.bucket[1].cumulative_count, 8000u);
  EXPECT_EQ(s.bucket[2].cumulative_count, 8000u);
  EXPECT_EQ(s.bucket[3].cumulative_count, 12000u);
  EXPECT_TRUE(std::isinf(s.bucket[3].upper_bound));
  EXPECT_EQ(s.sample_count, 12000u);
  EXPECT_NEAR(s.sample_sum, 4000 * (0.005 + 0.05 + 5), 1e-6);
}

TEST(Metrics, requests_without_runtime_count_as_tenant_none_by_status_class) {
  d::Metrics m;
  d::AccessRecord r;
  r.tenant = "312345678200002";  // not checked against a snapshot: must not become a label
  r.status = 400;
  r.duration_ms = 2;
  for (int i = 0; i < 3; ++i) m.observe_request(nullptr, r);
  r.status = 503;
  m.observe_request(nullptr, r);
  const std::string text = m.exposition(nullptr, nullptr);
  EXPECT_NE(text.find("orgproxy_requests_total{code_class=\"4xx\",tenant=\"none\",upstream=\"none\"} 3"),
            std::string::npos) << text;
  EXPECT_NE(text.find("orgproxy_requests_total{code_class=\"5xx\",tenant=\"none\",upstream=\"none\"} 1"),
            std::string::npos) << text;
  EXPECT_EQ(text.find("312345678200002"), std::string::npos) << text;
  auto o = m.outcome("none", "none");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->requests, 4u);
  EXPECT_EQ(o->last_failure_status, 503u);
  EXPECT_EQ(o->last_success_ms, 0);
  EXPECT_FALSE(m.outcome("312345678200002", "dmp"));
}

TEST(Metrics, tenant_label_can_be_switched_off) {
  d::Metrics m;
  m.set_per_tenant_labels(false);
  d::AccessRecord r;
  r.status = 200;
  r.upstream = "dmp";
  m.observe_request(nullptr, r);
  m.observe_request(nullptr, r);
  const std::string text = m.exposition(nullptr, nullptr);
  EXPECT_NE(text.find("orgproxy_requests_total{code_class=\"2xx\",upstream=\"dmp\"} 2"), std::string::npos) << text;
  EXPECT_EQ(text.find("tenant="), std::string::npos) << text;
}

TEST(Metrics, handshakes_and_reloads_are_counted_by_result) {
  d::Metrics m;
  m.observe_handshake("dmp", d::ErrorCode::none, 0.02);
  m.observe_handshake("dmp", d::ErrorCode::upstream_tls, 0.01);
  m.observe_handshake("dmp", d::ErrorCode::upstream_connect, 0);
  m.config_loaded(true);
  m.config_reload_failed();
  m.config_reload_failed();
  const std::string text = m.exposition(nullptr, nullptr);
  for (const char* line : {"orgproxy_upstream_handshakes_total{result=\"success\",upstream=\"dmp\"} 1",
                           "orgproxy_upstream_handshakes_total{result=\"tls_error\",upstream=\"dmp\"} 1",
                           "orgproxy_upstream_handshakes_total{result=\"connect_error\",upstream=\"dmp\"} 1",
                           "orgproxy_upstream_handshake_duration_seconds_count{upstream=\"dmp\"} 2",
                           "orgproxy_config_reloads_total{result=\"success\"} 1",
                           "orgproxy_config_reloads_total{result=\"failure\"} 2"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

TEST(RequestId, only_well_formed_client_ids_are_adopted) {
  std::string storage;
  EXPECT_EQ(d::adopt_request_id("ris-2026.11_30", storage, "gen"), "ris-2026.11_30");
  EXPECT_EQ(d::adopt_request_id("", storage, "gen"), "gen");
  EXPECT_EQ(d::adopt_request_id("has space", storage, "gen"), "gen");
  EXPECT_EQ(d::adopt_request_id("a\"b", storage, "gen"), "gen");
  EXPECT_EQ(d::adopt_request_id(std::string(64, 'a'), storage, "gen"), std::string(64, 'a'));
  EXPECT_EQ(d::adopt_request_id(std::string(65, 'a'), storage, "gen"), "gen");
}

TEST(AdminExposure, beyond_loopback_requires_bearer_tokens) {
  EXPECT_NO_THROW(d::check_admin_exposure("127.0.0.1", {}));
  EXPECT_NO_THROW(d::check_admin_exposure("::1", {}));
  EXPECT_NO_THROW(d::check_admin_exposure("localhost", {}));
  EXPECT_THROW(d::check_admin_exposure("0.0.0.0", {}), std::invalid_argument);
  EXPECT_THROW(d::check_admin_exposure("10.1.2.3", {}), std::invalid_argument);
  EXPECT_NO_THROW(d::check_admin_exposure("10.1.2.3", {std::string(64, 'a')}));
  EXPECT_THROW(d::check_admin_exposure("not-an-ip", {std::string(64, 'a')}), std::invalid_argument);
}

TEST(AdminRequests, answer_without_runtime_and_refuse_other_methods) {
  EXPECT_EQ(d::handle_admin_request("GET", "/healthz", "", nullptr, nullptr).status, 200u);
  EXPECT_EQ(d::handle_admin_request("GET", "/readyz", "", nullptr, nullptr).status, 503u);
  EXPECT_EQ(d::handle_admin_request("POST", "/metrics", "", nullptr, nullptr).status, 405u);
  EXPECT_EQ(d::handle_admin_request("GET", "/x", "", nullptr, nullptr).status, 404u);
  auto m = d::handle_admin_request("GET", "/metrics?x=1", "", nullptr, nullptr);
  EXPECT_EQ(m.status, 200u);
  EXPECT_NE(m.body.find("orgproxy_build_info"), std::string::npos);
}
