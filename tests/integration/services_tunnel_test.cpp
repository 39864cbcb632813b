// Issue 8 point 5, field case C22: an L4 tunnel listener (plain TCP from the RIS, mutual TLS upstream with
// the site's identity) relays each direction's end on its own: the client's FIN becomes close_notify + FIN
// upstream while the reply keeps flowing back, the upstream's close_notify + FIN becomes a FIN to the client
// while the client's bytes keep flowing up. 1,000 tunnels leave no descriptor behind; identity, connection
// cap and idle timeout are enforced, each with a positive control.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "l4_world.hpp"
#include "orgproxy/testkit/tls_script_server.hpp"

namespace tk = orgproxy::testkit;
using namespace orgproxy::l4test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMiB = 1024 * 1024;

class L4Tunnel : public L4Fixture {
 protected:
  L4Tunnel() : L4Fixture("l4-tunnel") {}
  // A tunnel listener for `tenant` to `server`, started with the daemon.
  void start(const tk::TlsScriptServer& server, const std::string& tenant = kA, const std::string& purpose = "mssante",
             const std::string& idle = "", unsigned max_connections = 0) {
    auto up = l4_upstream("mss-imaps", server.port(), ca());
    up.purpose = purpose;
    config_.upstreams.push_back(up);
    config_.l4_listeners.push_back({"mss-tunnel", "tunnel", tenant, "mss-imaps", 0, idle, max_connections, ""});
    // Ready once its HTTP listener accepts: every listener is bound before the workers start. (No probe of
    // the tunnel port: a probe would be a tunnel.)
    start_daemon();
  }
  std::uint16_t tunnel_port() const { return daemon_->config().l4_listeners.front().port; }
};

using Seen = HalfCloseSeen;

}  // namespace

TEST_F(L4Tunnel, client_half_close_becomes_close_notify_upstream_and_the_whole_reply_still_comes_back) {
  const std::string request = pattern(1 * kMiB, 7);
  const std::string reply = pattern(3 * kMiB, 11);
  std::promise<Seen> seen;
  tk::TlsScriptServer upstream(script_options(), read_all_then_reply(request, reply, seen));
  start(upstream);

  Client client(tunnel_port());
  ASSERT_TRUE(client.send(request));
  client.shut_wr();
  bool eof = false;
  const std::string got = client.read_to_eof(&eof);
  EXPECT_TRUE(eof) << "the reply ends with a FIN to the client";
  EXPECT_EQ(got.size(), reply.size());
  EXPECT_TRUE(got == reply) << "every byte of the 3 MiB reply, in order";

  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const Seen s = f.get();
  EXPECT_EQ(s.subject, world_->site(kA).identity("dmp").subject_dn) << "the site's certificate, from the token";
  EXPECT_EQ(s.received, request.size());
  EXPECT_TRUE(s.equal);
  EXPECT_TRUE(s.clean_end) << "the client's FIN is relayed as close_notify, not a truncation";
  EXPECT_TRUE(daemon_->wait_for_log("\"method\":\"TUNNEL\"")) << daemon_->log();
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("\"bytes_in\":" + std::to_string(request.size())), std::string::npos) << log;
  EXPECT_NE(log.find("\"bytes_out\":" + std::to_string(reply.size())), std::string::npos) << log;
  EXPECT_NE(log.find("\"tenant\":\"" + std::string(kA) + "\""), std::string::npos) << log;
}

TEST_F(L4Tunnel, upstream_close_notify_becomes_a_fin_to_the_client_whose_bytes_keep_flowing_up) {
  const std::string reply = pattern(3 * kMiB, 3);
  const std::string late = pattern(1 * kMiB, 5);
  std::promise<Seen> seen;
  tk::TlsScriptServer upstream(script_options(), [&](tk::TlsScriptConn& c) {
    Seen s;
    if (c.start_tls()) {
      // The upstream finishes first: its whole answer, close_notify, FIN; then it keeps reading.
      c.write(reply);
      c.close_notify();
      c.shut_wr();
      const std::string got = c.read_to_end(&s.clean_end);
      s.received = got.size();
      s.equal = got == late;
    }
    seen.set_value(s);
  });
  start(upstream);

  Client client(tunnel_port());
  bool eof = false;
  const std::string got = client.read_to_eof(&eof);
  EXPECT_TRUE(eof) << "the upstream's close_notify + FIN reaches the client as a FIN";
  EXPECT_TRUE(got == reply) << got.size() << " bytes of " << reply.size();
  // The tunnel still carries the client's direction.
  ASSERT_TRUE(client.send(late));
  client.shut_wr();

  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const Seen s = f.get();
  EXPECT_EQ(s.received, late.size());
  EXPECT_TRUE(s.equal) << "the client's 1 MiB sent after the upstream's end reached it whole";
  EXPECT_TRUE(s.clean_end);
}

TEST_F(L4Tunnel, a_thousand_tunnels_leave_the_daemons_descriptor_count_at_its_baseline) {
  tk::TlsScriptServer upstream(script_options(), [](tk::TlsScriptConn& c) {
    if (!c.start_tls()) return;
    bool clean = false;
    const std::string got = c.read_to_end(&clean);
    c.write(clean && got == "ping\n" ? "pong\n" : "bad\n");
    c.close_notify();
    c.shut_wr();
  });
  start(upstream);
  auto one = [&] {
    Client client(tunnel_port());
    client.send("ping\n");
    client.shut_wr();
    bool eof = false;
    return client.read_to_eof(&eof) == "pong\n" && eof;
  };
  // Warm-up: the TLS context, the token session and the log files exist from here on.
  ASSERT_TRUE(one()) << daemon_->log();
  std::this_thread::sleep_for(500ms);
  const std::size_t baseline = open_fds(daemon_->pid());

  std::atomic<unsigned> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      for (int i = t; i < 1000; i += 8)
        if (one()) ok++;
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 1000u) << daemon_->log().substr(0, 4000);

  std::size_t now = open_fds(daemon_->pid());
  for (int i = 0; i < 200 && now > baseline; ++i) {
    std::this_thread::sleep_for(100ms);
    now = open_fds(daemon_->pid());
  }
  EXPECT_LE(now, baseline) << "descriptors before: " << baseline << ", after 1,000 tunnels: " << now;
}

TEST_F(L4Tunnel, site_without_the_upstreams_identity_is_closed_before_any_upstream_connection) {
  tk::TlsScriptServer upstream(script_options(), [](tk::TlsScriptConn& c) { c.start_tls(); });
  start(upstream, kB, "insi-manu");  // no site has an insi-manu identity
  Client client(tunnel_port());
  client.send("hello\n");
  bool eof = false;
  EXPECT_EQ(client.read_to_eof(&eof), "");
  EXPECT_TRUE(eof);
  EXPECT_TRUE(daemon_->wait_for_log("identity_missing")) << daemon_->log();
  EXPECT_EQ(upstream.accepted(), 0u) << "nothing reached the upstream";
}

TEST_F(L4Tunnel, site_with_the_identity_reaches_the_upstream_as_itself) {
  // Positive control of the test above: same shape, a site that has the purpose.
  std::promise<std::string> subject;
  tk::TlsScriptServer upstream(script_options(), [&](tk::TlsScriptConn& c) {
    subject.set_value(c.start_tls() ? c.peer_subject() : "");
    bool clean;
    c.read_to_end(&clean);
    c.write("ok\n");
    c.close_notify();
  });
  start(upstream, kB, "mssante");
  Client client(tunnel_port());
  client.shut_wr();
  bool eof = false;
  EXPECT_EQ(client.read_to_eof(&eof), "ok\n") << daemon_->log();
  auto f = subject.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  EXPECT_EQ(f.get(), world_->site(kB).identity("dmp").subject_dn);
}

TEST_F(L4Tunnel, connection_over_max_connections_is_closed_and_a_freed_slot_admits_again) {
  tk::TlsScriptServer upstream(script_options(), [](tk::TlsScriptConn& c) {
    if (!c.start_tls()) return;
    bool ok = false;
    for (std::string line = c.read_line(&ok); ok; line = c.read_line(&ok)) c.write(line + "\n");  // echo
    c.close_notify();
  });
  start(upstream, kA, "mssante", "", 2);
  auto echo = [](Client& c, const std::string& text) {
    c.send(text + "\n");
    return c.read_line();
  };
  auto first = std::make_unique<Client>(tunnel_port());
  Client second(tunnel_port());
  ASSERT_EQ(echo(*first, "one"), "one") << daemon_->log();
  ASSERT_EQ(echo(second, "two"), "two");

  Client third(tunnel_port());
  third.send("three\n");
  bool eof = false;
  EXPECT_EQ(third.read_to_eof(&eof), "") << "the third tunnel is over the cap";
  EXPECT_TRUE(eof);
  EXPECT_TRUE(daemon_->wait_for_log("listener at its max_connections")) << daemon_->log();
  EXPECT_EQ(upstream.accepted(), 2u);

  first.reset();  // frees a slot
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; ++i) {
    Client again(tunnel_port());
    again.send("again\n");
    admitted = again.read_line() == "again";
    if (!admitted) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(admitted) << daemon_->log();
}

TEST_F(L4Tunnel, silent_tunnel_is_closed_after_idle_timeout_while_a_talking_one_stays_open) {
  tk::TlsScriptServer upstream(script_options(), [](tk::TlsScriptConn& c) {
    if (!c.start_tls()) return;
    bool ok = false;
    for (std::string line = c.read_line(&ok); ok; line = c.read_line(&ok)) c.write(line + "\n");
  });
  start(upstream, kA, "mssante", "1500ms");
  Client talking(tunnel_port());
  Client silent(tunnel_port());
  ASSERT_EQ((talking.send("x\n"), talking.read_line()), "x") << daemon_->log();
  const auto t0 = std::chrono::steady_clock::now();
  // The talking tunnel moves a byte every 300 ms for 4.5 s: three idle timeouts' worth.
  for (int i = 0; i < 15; ++i) {
    std::this_thread::sleep_for(300ms);
    ASSERT_EQ((talking.send("t\n"), talking.read_line()), "t") << "round " << i << "\n" << daemon_->log();
  }
  bool eof = false;
  EXPECT_EQ(silent.read_to_eof(&eof), "");
  EXPECT_TRUE(eof) << "the silent tunnel was closed";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  EXPECT_TRUE(daemon_->wait_for_log("closed after idle_timeout")) << daemon_->log();
}
