// Slow-upload defence (issue 5 point 6): a client that trickles its request body is cut off once it falls
// behind the listener's body_timeout + bytes / body_min_rate, instead of holding an upstream connection until
// idle_timeout; an upload that keeps the pace passes even when it lasts longer than body_timeout.
#include <chrono>
#include <string>
#include <thread>

#include "daemon_world.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

const std::string kA(tk::kSiteA);

std::string upload_head(std::size_t length) {
  return "POST /dmp/upload HTTP/1.1\r\nHost: orgproxy.local\r\nX-Orgproxy-Tenant: " + kA +
         "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

class DaemonBodyPace : public DaemonWorld {};

TEST_F(DaemonBodyPace, a_body_slower_than_body_min_rate_is_cut_after_body_timeout_and_never_completed_upstream) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::HashUpstream upstream(hash_options());
  auto cfg = base_config(upstream.url("/svc"));
  cfg.listener_idle_timeout = "60s";  // far beyond the test: only the pace can end the slow upload
  cfg.listener_body_timeout = "2s";
  cfg.listener_body_min_rate = "1KiB";
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  // Positive control: 48 KiB at about 16 KiB/s lasts ~3 s, longer than body_timeout, and keeps the pace.
  std::string body(48 * 1024, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 131) & 0xff);
  tk::HttpClient paced("127.0.0.1", proxy.port(), 60s);
  paced.send_raw(upload_head(body.size()));
  for (std::size_t off = 0; off < body.size(); off += 4096) {
    std::this_thread::sleep_for(250ms);
    paced.send_raw(std::string_view(body).substr(off, 4096));
  }
  auto ok = paced.read_response();
  ASSERT_EQ(ok.status, 200) << ok.body << proxy.log();
  ASSERT_EQ(upstream.requests(), 1u);
  EXPECT_EQ(upstream.seen().back().body_sha256, tk::sha256_hex(body));

  // One byte every 250 ms (4 B/s): behind 2 s + bytes / 1 KiB/s within a few seconds.
  tk::HttpClient slow("127.0.0.1", proxy.port(), 60s);
  slow.send_raw(upload_head(1000));
  const auto started = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 120 && !closed; ++i) {  // at most ~30 s
    try {
      slow.send_raw("x");
    } catch (const tk::HttpClientError&) {
      closed = true;
      break;
    }
    closed = slow.closed_by_peer(250ms);
  }
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(closed) << "a 4 B/s upload was still open after 30 s\n" << proxy.log();
  EXPECT_GE(elapsed, 1500ms);  // not before body_timeout (minus the head's own transit)
  EXPECT_LT(elapsed, 20s) << "cut by idle_timeout, not by the pace";
  EXPECT_TRUE(proxy.wait_for_log("slower than the listener's body_min_rate")) << proxy.log();
  EXPECT_EQ(upstream.requests(), 1u) << "the trickled request must never be completed upstream";
}

}  // namespace
}  // namespace orgproxy::daemon_it
