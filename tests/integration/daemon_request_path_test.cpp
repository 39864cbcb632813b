// The request path across the proxy (field case C02 (c) and the target rules of DESIGN.md "Route"):
// what a client may not send — dot-segments behind path parameters, raw bytes in the target, bare-LF chunk
// lines — never reaches the upstream; header and idle deadlines; SIGTERM draining.
#include <signal.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon_http_world.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

/// An upstream that records the request line (and a chunked body up to its last chunk) of every request
/// and answers each with kOk.
ScriptedUpstream::Script recording(std::mutex& m, std::vector<std::string>& seen) {
  return [&m, &seen](ScriptConn& c) {
    for (;;) {
      auto head = c.read_head();
      std::string line = head.substr(0, head.find("\r\n"));
      if (head_field(head, "Transfer-Encoding") == "chunked") line += " body=" + c.read_head();
      {
        std::lock_guard lock(m);
        seen.push_back(line);
      }
      c.write(kOk);
    }
  };
}

TEST_F(DaemonHttp, dot_segments_behind_path_parameters_and_raw_bytes_never_reach_the_upstream) {
  std::mutex m;
  std::vector<std::string> seen;
  start({recording(m, seen)});
  const std::string fields = " HTTP/1.1\r\nHost: orgproxy.local\r\nX-Orgproxy-Tenant: " + kA + "\r\n\r\n";
  // "..;" is ".." for Tomcat (route escape); "//" collapses on some upstreams; RFC 9112 targets are VCHAR.
  for (std::string bad : {"/dmp/..;/insi", "/dmp/x/..;jsessionid=1/y", "/dmp/.;/x", "/dmp//insi",
                          "/dmp/caf\xc3\xa9", "/dmp/\x80x", "/dmp/x?q=\xff"}) {
    tk::HttpClient client("127.0.0.1", proxy_->port(), 10s);
    client.send_raw("GET " + bad + fields);
    auto r = client.read_response();
    EXPECT_EQ(r.status, 400) << bad << proxy_->log();
    EXPECT_EQ(r.header("X-Orgproxy-Error"), "bad_request") << bad;
  }
  {
    std::lock_guard lock(m);
    EXPECT_TRUE(seen.empty()) << seen.front();
  }
  // Positive controls: parameters on an ordinary segment, and the same non-ASCII text percent-encoded.
  tk::HttpClient client("127.0.0.1", proxy_->port(), 10s);
  for (std::string good : {"/dmp/registry;jsessionid=AB12/x?y=1", "/dmp/caf%C3%A9"}) {
    client.send_raw("GET " + good + fields);
    EXPECT_EQ(client.read_response().status, 200) << good << proxy_->log();
  }
  std::lock_guard lock(m);
  EXPECT_EQ(seen, (std::vector<std::string>{"GET /base/registry;jsessionid=AB12/x?y=1 HTTP/1.1",
                                            "GET /base/caf%C3%A9 HTTP/1.1"}));
}

TEST_F(DaemonHttp, chunked_body_with_bare_lf_is_refused_at_once_not_at_the_idle_timeout) {  // C02 (c)
  std::mutex m;
  std::vector<std::string> seen;
  start({recording(m, seen)});
  const std::string head = request_head("POST", "Transfer-Encoding: chunked\r\n");
  tk::HttpClient bad("127.0.0.1", proxy_->port(), 30s);
  auto t0 = std::chrono::steady_clock::now();
  bad.send_raw(head + "1\nx\n0\n\n");
  auto r = bad.read_response();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);  // the idle timeout is 60 s
  EXPECT_EQ(r.status, 400) << proxy_->log();
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "bad_request");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(bad.closed_by_peer(5s));
  // Split over two writes: the bare LF arrives after the daemon already waits for the chunk line.
  tk::HttpClient split("127.0.0.1", proxy_->port(), 30s);
  split.send_raw(head + "1");
  std::this_thread::sleep_for(300ms);
  t0 = std::chrono::steady_clock::now();
  split.send_raw("\nx\n0\n\n");
  EXPECT_EQ(split.read_response().status, 400) << proxy_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  {
    std::lock_guard lock(m);
    EXPECT_TRUE(seen.empty()) << seen.front();
  }
  // Positive control: the same body with CRLF line ends passes, chunk by chunk, also when split.
  tk::HttpClient good("127.0.0.1", proxy_->port(), 30s);
  good.send_raw(head + "1\r\n");
  std::this_thread::sleep_for(300ms);
  good.send_raw("x\r\n0\r\n\r\n");
  EXPECT_EQ(good.read_response().status, 200) << proxy_->log();
  std::lock_guard lock(m);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "POST /base/x HTTP/1.1 body=1\r\nx\r\n0\r\n\r\n");
}

TEST_F(DaemonHttp, silent_connection_is_closed_at_header_timeout_not_idle_timeout) {
  std::mutex m;
  std::vector<std::string> seen;
  start({recording(m, seen)}, 1, "1s", "30s");
  tk::HttpClient silent("127.0.0.1", proxy_->port(), 30s);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent.closed_by_peer(15s));  // header_timeout 1 s, idle_timeout 30 s
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 800ms);
  // The first head as a whole is bounded too: bytes trickling in do not restart the clock. A client whose
  // request line has started is told why before the close: 408 header_timeout (RFC 9110 §15.5.9).
  tk::HttpClient trickle("127.0.0.1", proxy_->port(), 30s);
  t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(700ms);
  trickle.send_raw("GET /dmp/x HTTP/1.1\r\n");
  auto timed_out = trickle.read_response();
  EXPECT_EQ(timed_out.status, 408) << proxy_->log();
  EXPECT_EQ(timed_out.header("X-Orgproxy-Error"), "header_timeout");
  EXPECT_FALSE(timed_out.keep_alive);
  EXPECT_TRUE(trickle.closed_by_peer(15s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1700ms + 5s);  // loaded machine: generous margin
  {
    std::lock_guard lock(m);
    EXPECT_TRUE(seen.empty()) << "nothing of the stalled head went upstream";
  }
  // Positive control: between keep-alive requests idle_timeout applies, not header_timeout.
  tk::HttpClient kept("127.0.0.1", proxy_->port(), 30s);
  kept.send_raw(request_head("GET"));
  EXPECT_EQ(kept.read_response().status, 200) << proxy_->log();
  EXPECT_FALSE(kept.closed_by_peer(3s));
  kept.send_raw(request_head("GET"));
  EXPECT_EQ(kept.read_response().status, 200) << proxy_->log();
}

TEST_F(DaemonHttp, sigterm_lets_the_request_in_flight_finish_and_refuses_new_connections) {
  start({[](ScriptConn& c) {
    c.read_head();
    std::this_thread::sleep_for(1500ms);  // the answer is still being prepared when SIGTERM arrives
    c.write(kOk);
  }});
  tk::HttpClient idle("127.0.0.1", proxy_->port());  // an idle keep-alive client: closed at once
  tk::HttpClient busy("127.0.0.1", proxy_->port());
  busy.send_raw(request_head("GET"));
  std::this_thread::sleep_for(300ms);
  proxy_->send_signal(SIGTERM);
  auto r = busy.read_response();
  EXPECT_EQ(r.status, 200) << proxy_->log();
  EXPECT_EQ(r.body, "hello");
  EXPECT_FALSE(r.keep_alive);  // no further request on a stopping daemon
  EXPECT_TRUE(idle.closed_by_peer(5s));
  EXPECT_EQ(proxy_->wait_for_exit(20s), 0) << proxy_->log();
  EXPECT_THROW(tk::HttpClient("127.0.0.1", proxy_->port(), 2s), tk::HttpClientError);
}

}  // namespace
}  // namespace orgproxy::daemon_it
