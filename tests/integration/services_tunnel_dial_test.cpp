// Reaching an L4 listener's upstream the way HTTP forwarding reaches its own (issue 5 point 5, one dial for
// both paths): through the upstream's egress HTTP CONNECT proxy when one is configured (with and without
// proxy authentication; a refusal closes the tunnel with a log line naming the proxy's answer), and to every
// address of a host name in turn, the name resolved again at every connection. Real daemon, keys in a
// SoftHSM token, the upstream a TLS script server requiring the site's certificate; the proxy is the test
// kit's ConnectProxy and host names come from the test kit's getaddrinfo shim (LD_PRELOAD).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <string>

#include "l4_world.hpp"
#include "orgproxy/testkit/connect_proxy.hpp"
#include "orgproxy/testkit/tls_script_server.hpp"

namespace tk = orgproxy::testkit;
using namespace orgproxy::l4test;
using namespace std::chrono_literals;

namespace {

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

class L4Dial : public L4Fixture {
 protected:
  L4Dial() : L4Fixture("l4-dial") {}
  /// A tunnel listener of site A named `name` to a new upstream `name` at `address`, with `extra_yaml`.
  void add_tunnel(const std::string& name, const std::string& address, const std::string& extra_yaml) {
    auto up = l4_upstream(name, 0, ca());
    up.address = address;
    up.extra_yaml = extra_yaml;
    config_.upstreams.push_back(up);
    config_.l4_listeners.push_back({name, "tunnel", kA, name, 0, "", 0, ""});
  }
  void start(tk::OrgproxyStart start) {
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config_, std::move(start));
  }
  std::uint16_t tunnel_port(const std::string& name) const {
    for (const auto& l : daemon_->config().l4_listeners)
      if (l.name == name) return l.port;
    throw std::runtime_error("no L4 listener " + name);
  }
  /// One tunnel on listener `name`: sends "ping\n", half-closes, returns what came back before EOF.
  std::string ping(const std::string& name) {
    Client client(tunnel_port(name));
    client.send("ping\n");
    client.shut_wr();
    bool eof = false;
    std::string got = client.read_to_eof(&eof);
    EXPECT_TRUE(eof) << "the tunnel on " << name << " ends with EOF";
    return got;
  }
  static std::string proxy_yaml(const tk::ConnectProxy& proxy, const std::filesystem::path& credentials = {}) {
    std::string y = "    proxy: { url: \"" + proxy.url() + "\"";
    if (!credentials.empty()) y += ", credentials_file: \"" + credentials.string() + "\"";
    return y + ", connect_timeout: 20s }\n";
  }
};

/// The upstream: answers "pong as <client subject>" to "ping", then close_notify and FIN.
tk::TlsScriptServer::Script pong_as_client() {
  return [](tk::TlsScriptConn& c) {
    if (!c.start_tls()) return;
    bool clean = false;
    const std::string got = c.read_to_end(&clean);
    c.write(got == "ping\n" ? "pong as " + c.peer_subject() + "\n" : "bad\n");
    c.close_notify();
    c.shut_wr();
  };
}

}  // namespace

TEST_F(L4Dial, tunnel_goes_through_the_authenticating_egress_proxy_and_a_refused_one_is_closed_with_the_407_logged) {
  tk::TlsScriptServer upstream(script_options(), pong_as_client());
  tk::ConnectProxy egress({"ris-proxy:r1ght-Pw"});
  const auto right = tmp_.subdir("secrets") / "right";
  const auto wrong = tmp_.subdir("secrets") / "wrong";
  write_text(right, "ris-proxy:r1ght-Pw\n");
  write_text(wrong, "ris-proxy:wr0ng-Pw\n");
  const std::string target = "127.0.0.1:" + std::to_string(upstream.port());
  add_tunnel("mss-right", target, proxy_yaml(egress, right));
  add_tunnel("mss-wrong", target, proxy_yaml(egress, wrong));
  start(world_->daemon_start());

  // Positive control: the right credentials open the tunnel, the site's certificate goes end to end.
  const std::string subject = world_->site(kA).identity("dmp").subject_dn;
  EXPECT_EQ(ping("mss-right"), "pong as " + subject + "\n") << daemon_->log();
  ASSERT_EQ(upstream.accepted(), 1u);

  EXPECT_EQ(ping("mss-wrong"), "") << "nothing comes back through a refused tunnel";
  EXPECT_TRUE(daemon_->wait_for_log("407 Proxy Authentication Required")) << daemon_->log();
  EXPECT_EQ(upstream.accepted(), 1u) << "the refused tunnel never reached the upstream";

  const auto records = egress.records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].target, target);
  EXPECT_EQ(records[0].host_header, target);
  EXPECT_TRUE(records[0].had_authorization);
  EXPECT_EQ(records[0].status, 200);
  EXPECT_EQ(records[1].status, 407);
  const std::string log = daemon_->log();
  // The log line names the listener, the failure code and the proxy; never a password.
  EXPECT_NE(log.find("listener mss-wrong tenant " + std::string(kA) + " upstream mss-wrong: upstream_connect: "
                     "egress proxy " + egress.url()),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("r1ght-Pw"), std::string::npos);
  EXPECT_EQ(log.find("wr0ng-Pw"), std::string::npos);
}

TEST_F(L4Dial, tunnel_goes_through_an_egress_proxy_without_authentication) {
  tk::TlsScriptServer upstream(script_options(), pong_as_client());
  tk::ConnectProxy egress;
  const std::string target = "127.0.0.1:" + std::to_string(upstream.port());
  add_tunnel("mss-proxied", target, proxy_yaml(egress));
  start(world_->daemon_start());

  EXPECT_EQ(ping("mss-proxied"), "pong as " + world_->site(kA).identity("dmp").subject_dn + "\n") << daemon_->log();
  const auto records = egress.records();
  ASSERT_EQ(records.size(), 1u) << "the tunnel went through the proxy, not straight to the upstream";
  EXPECT_EQ(records[0].target, target);
  EXPECT_FALSE(records[0].had_authorization);
  EXPECT_EQ(records[0].status, 200);
}

TEST_F(L4Dial, tunnel_tries_every_address_of_its_upstream_name_in_turn_resolved_again_per_connection) {
  tk::TlsScriptServer upstream(script_options(), pong_as_client());
  const auto hosts = tmp_.path() / "hosts";
  // 127.0.0.2 is loopback too, but the upstream listens on 127.0.0.1 only: a dead address.
  write_text(hosts, "mss.test.local 127.0.0.2\n");
  // The server certificate names localhost: SNI and verification use it, the dial uses the address's name.
  add_tunnel("mss-named", "mss.test.local:" + std::to_string(upstream.port()), "    sni: localhost\n");
  tk::OrgproxyStart start_options = world_->daemon_start();
  start_options.env.emplace_back("LD_PRELOAD", ORGPROXY_RESOLV_SHIM);
  start_options.env.emplace_back("ORGPROXY_TEST_HOSTS_FILE", hosts.string());
  start(start_options);

  // Negative control: the name's only address is dead.
  EXPECT_EQ(ping("mss-named"), "");
  EXPECT_TRUE(daemon_->wait_for_log("upstream mss-named: upstream_connect: connect mss.test.local: 127.0.0.2"))
      << daemon_->log();
  EXPECT_EQ(upstream.accepted(), 0u);

  // The record changes while the daemon runs: the dead address first, the live one second.
  write_text(hosts, "mss.test.local 127.0.0.2 127.0.0.1\n");
  EXPECT_EQ(ping("mss-named"), "pong as " + world_->site(kA).identity("dmp").subject_dn + "\n") << daemon_->log();
  EXPECT_EQ(upstream.accepted(), 1u);
  EXPECT_TRUE(daemon_->wait_for_log("connect to mss.test.local (127.0.0.2) failed")) << daemon_->log();
}
