// Isolation property (issue 5 point 1): 10,000 randomized requests over 50 sites, keep-alive towards the
// daemon and pooled upstream connections with TLS session resumption, against the real nginx endpoint that
// echoes the client certificate's DN and $ssl_session_reused. Not one request may go out under another
// site's certificate, and resumption must happen within a site.
#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon_world.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"

namespace orgproxy::daemon_it {
namespace {

class DaemonIsolationProperty : public DaemonWorld {};

/// Site i of this test: "3" + SIRET (SIREN 123456782, NIC 2000 + i, Luhn key).
std::string site_id(int i) {
  char nic[8];
  std::snprintf(nic, sizeof nic, "%04d", 2000 + i);
  return tk::site_id_siret(std::string("123456782") + nic);
}

TEST_F(DaemonIsolationProperty, ten_thousand_random_requests_over_50_sites_never_use_another_sites_identity) {
  constexpr int kSites = 50;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  std::vector<std::string> ids, dns;
  tk::NginxServerOptions s;
  s.cert_file = server_.chain.string();
  s.key_file = server_.key.string();
  s.client_ca_file = pki_->ca_bundle_pem().string();
  // Upstream connections end after 20 requests, so each site makes new connections that can resume.
  s.extra_directives = "keepalive_requests 20;";
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), s);
  auto cfg = base_config(nginx.url("/base"));
  for (int i = 0; i < kSites; ++i) {
    ids.push_back(site_id(i));
    ASSERT_TRUE(tk::luhn_ok(ids.back().substr(1))) << ids.back();
    auto ident = make_identity(ids.back(), "dmp", ids.back(), "Cabinet " + std::to_string(i));
    dns.push_back(tk::cert_subject_rfc2253(ident.chain));
    add_tenant(cfg, ids.back(), {{"dmp", ident}});
  }
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  std::atomic<int> ok{0}, wrong{0}, failed{0};
  std::vector<std::atomic<int>> resumed(kSites), new_conns(kSites);
  std::vector<std::string> first_problem(kThreads);
  auto load = [&](int t) {
    std::mt19937 rng(42u + static_cast<unsigned>(t));
    std::unique_ptr<tk::HttpClient> client;
    for (int n = 0; n < kPerThread; ++n) {
      const int site = static_cast<int>(rng() % kSites);
      try {
        if (!client) client = std::make_unique<tk::HttpClient>("127.0.0.1", proxy.port());
        auto r = client->request({"POST", "/dmp/p/" + std::to_string(n), {{"X-Orgproxy-Tenant", ids[site]}},
                                  "<soap:Envelope/>"});
        if (r.status != 200) {
          ++failed;
          if (first_problem[t].empty()) first_problem[t] = std::to_string(r.status) + " " + r.header("X-Orgproxy-Error");
        } else if (r.header("X-Client-DN") != dns[site]) {
          ++wrong;
          if (first_problem[t].empty()) first_problem[t] = "site " + ids[site] + " got " + r.header("X-Client-DN");
        } else {
          ++ok;
          if (r.header("X-Up-Conn-Req") == "1") {
            ++new_conns[site];
            if (r.header("X-Session-Reused") == "r") ++resumed[site];
          }
        }
        if (!r.keep_alive) client.reset();
      } catch (const tk::HttpClientError& e) {
        ++failed;
        if (first_problem[t].empty()) first_problem[t] = e.what();
        client.reset();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(load, t);
  for (auto& th : threads) th.join();

  int sites_resumed = 0, total_resumed = 0, total_new = 0;
  for (int i = 0; i < kSites; ++i) {
    total_new += new_conns[i];
    total_resumed += resumed[i];
    if (resumed[i] > 0) ++sites_resumed;
  }
  std::printf("isolation property: %d ok, %d wrong, %d failed; %d new upstream connections, %d resumed, "
              "resumption seen at %d of %d sites\n",
              ok.load(), wrong.load(), failed.load(), total_new, total_resumed, sites_resumed, kSites);
  std::string problems;
  for (auto& p : first_problem) problems += p + " | ";
  EXPECT_EQ(wrong.load(), 0) << problems;
  EXPECT_EQ(failed.load(), 0) << problems;
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  // Positive control of the session check: new connections were made, and most resumed their own site's
  // session (the first connection of each site cannot).
  EXPECT_GT(total_new, 2 * kSites);
  EXPECT_GE(sites_resumed, kSites * 8 / 10);
}

}  // namespace
}  // namespace orgproxy::daemon_it
