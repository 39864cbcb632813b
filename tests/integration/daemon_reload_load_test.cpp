// Reload under load (issue 5 point 7): SIGHUP swaps the snapshot while requests keep flowing on
// keep-alive connections, and none of them fails or goes out under the wrong certificate.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon_world.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

class DaemonReloadLoad : public DaemonWorld {};

/// Site i of this test: "3" + SIRET (SIREN 123456782, NIC 1000 + i, Luhn key).
std::string site_id(int i) {
  char nic[8];
  std::snprintf(nic, sizeof nic, "%04d", 1000 + i);
  return tk::site_id_siret(std::string("123456782") + nic);
}

TEST_F(DaemonReloadLoad, twenty_reloads_under_continuous_load_fail_no_request_and_each_adds_a_used_site) {
  constexpr int kReloads = 20;
  std::vector<std::string> ids;
  std::vector<SiteIdentity> identities;
  std::vector<std::string> dns;
  for (int i = 0; i <= kReloads; ++i) {
    ids.push_back(site_id(i));
    ASSERT_TRUE(tk::luhn_ok(ids.back().substr(1))) << ids.back();
    identities.push_back(make_identity(ids.back(), "dmp", ids.back(), "Cabinet " + std::to_string(i)));
    dns.push_back(tk::cert_subject_rfc2253(identities.back().chain));
  }
  tk::HashUpstream up(
      tk::hash_upstream_options(server_.chain.string(), server_.key.string(), pki_->ca_bundle_pem().string()));
  auto cfg = base_config(up.url("/base"));
  add_tenant(cfg, ids[0], {{"dmp", identities[0]}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  // Sites [0, active) are in the serving snapshot; the load picks among them at random.
  std::atomic<int> active{1};
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, wrong{0};
  std::vector<std::string> first_failure(2);
  auto load = [&](int worker) {
    std::mt19937 rng(1234u + static_cast<unsigned>(worker));
    std::unique_ptr<tk::HttpClient> client;
    while (!stop.load()) {
      const int site = static_cast<int>(rng() % static_cast<unsigned>(active.load()));
      tk::HttpRequest r;
      r.method = "POST";
      r.target = "/dmp/load";
      r.headers = {{"X-Orgproxy-Tenant", ids[site]}};
      r.body = "<soap:Envelope/>";
      try {
        if (!client) client = std::make_unique<tk::HttpClient>("127.0.0.1", proxy.port());
        auto res = client->request(r);
        if (res.status != 200) {
          ++failed;
          if (first_failure[worker].empty())
            first_failure[worker] = std::to_string(res.status) + " " + res.header("X-Orgproxy-Error");
        } else if (res.header("X-Client-DN") != dns[site]) {
          ++wrong;
        } else {
          ++ok;
        }
        if (!res.keep_alive) client.reset();
      } catch (const tk::HttpClientError& e) {
        ++failed;
        if (first_failure[worker].empty()) first_failure[worker] = e.what();
        client.reset();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) threads.emplace_back(load, w);
  struct Joiner {  // the load stops even when an assertion below fails
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } joiner{stop, threads};

  for (int i = 1; i <= kReloads; ++i) {
    add_tenant(cfg, ids[i], {{"dmp", identities[i]}});
    proxy.rewrite_config(cfg);
    proxy.send_signal(SIGHUP);
    ASSERT_TRUE(proxy.wait_for_log("reloaded: generation " + std::to_string(i + 1), 60s)) << proxy.log();
    // The new site is served at once, under its own certificate: a reload that did nothing fails here.
    auto r = tk::http_request(proxy.port(), {"POST", "/dmp/new", {{"X-Orgproxy-Tenant", ids[i]}}, "x"});
    ASSERT_EQ(r.status, 200) << r.header("X-Orgproxy-Error") << "\n" << proxy.log();
    ASSERT_EQ(r.header("X-Client-DN"), dns[i]);
    active = i + 1;
    std::this_thread::sleep_for(100ms);  // let the load use the new snapshot before the next swap
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& t : threads) t.join();

  std::printf("reload under load: %d reloads, %d requests answered by their own site, %d failed, %d wrong\n",
              kReloads, ok.load(), failed.load(), wrong.load());
  EXPECT_EQ(failed.load(), 0) << first_failure[0] << " | " << first_failure[1];
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(ok.load(), 200) << "the load must have run across the reloads";
  // Every site added by a reload was reached by the load too, not only by the check above.
  std::vector<bool> seen(ids.size());
  for (const auto& req : up.seen()) {
    for (std::size_t s = 0; s < dns.size(); ++s)
      if (req.client_dn == dns[s]) seen[s] = true;
  }
  for (std::size_t s = 0; s < ids.size(); ++s) EXPECT_TRUE(seen[s]) << "site " << ids[s] << " never reached";
}

}  // namespace
}  // namespace orgproxy::daemon_it
