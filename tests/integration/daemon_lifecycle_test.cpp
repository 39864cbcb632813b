// The daemon's command line, start-up checks, reload and shutdown, and its refusal of ambiguous framing,
// all on the real binary.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <fstream>
#include <string>

#include "daemon_world.hpp"
#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;
const std::string kA(tk::kSiteA);
const std::string kB(tk::kSiteB);

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

using DaemonLifecycle = DaemonWorld;

TEST_F(DaemonLifecycle, check_config_lists_every_error_at_file_line_col_and_exits_1) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto cfg = base_config("https://127.0.0.1:9/si-dmp-server/v2/services");
  add_tenant(cfg, kA, {{"dmp", a}});
  const std::string good = tmp_.file("good.yaml");
  write_file(good, cfg.yaml());
  auto ok = tk::run_command({ORGPROXY_BINARY, "check-config", "--config", good, "--offline"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  auto online = tk::run_command({ORGPROXY_BINARY, "check-config", "--config", good});
  EXPECT_EQ(online.exit_code, 0) << online.output;  // opens the token, loads and checks the identity

  cfg.routes.push_back({"/insi", "no-such-upstream"});
  cfg.tenants[0].id = "31234567820000";  // a bare SIRET: must be written in full
  const std::string bad = tmp_.file("bad.yaml");
  write_file(bad, cfg.yaml());
  auto r = tk::run_command({ORGPROXY_BINARY, "check-config", "--config", bad, "--offline"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(bad + ":"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no-such-upstream"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("31234567820000"), std::string::npos) << r.output;

  auto run_bad = tk::run_command({ORGPROXY_BINARY, "run", "--config", bad}, {}, 30s);
  EXPECT_EQ(run_bad.exit_code, 1) << run_bad.output;
  EXPECT_EQ(run_bad.output.find("ready"), std::string::npos);
}

TEST_F(DaemonLifecycle, check_config_fails_when_an_identity_chain_does_not_verify) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto rogue = tk::TestPki::rogue(tmp_.subdir("rogue"));
  auto cfg = base_config("https://127.0.0.1:9/x");
  cfg.upstreams[0].ca_file = rogue.ca_bundle_pem().string();  // trusts another PKI
  add_tenant(cfg, kA, {{"dmp", a}});
  const std::string file = tmp_.file("rogue.yaml");
  write_file(file, cfg.yaml());
  auto r = tk::run_command({ORGPROXY_BINARY, "check-config", "--config", file});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("tenant " + kA + " purpose dmp"), std::string::npos) << r.output;
  auto offline = tk::run_command({ORGPROXY_BINARY, "check-config", "--config", file, "--offline"});
  EXPECT_EQ(offline.exit_code, 0) << offline.output;  // the chain is an online check
}

TEST(DaemonCli, version_and_usage_errors) {
  auto v = tk::run_command({ORGPROXY_BINARY, "--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("orgproxy 0."), std::string::npos) << v.output;
  EXPECT_NE(tk::run_command({ORGPROXY_BINARY, "frobnicate"}).exit_code, 0);
  EXPECT_NE(tk::run_command({ORGPROXY_BINARY, "run", "--no-such-flag"}).exit_code, 0);
  EXPECT_NE(tk::run_command({ORGPROXY_BINARY, "run"}).exit_code, 0);  // --config is required
}

TEST_F(DaemonLifecycle, sighup_reload_applies_a_good_config_and_rejects_a_bad_one) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto b = make_identity(kB, "dmp", kB, "Cabinet B");
  tk::HashUpstream up(hash_options());
  auto cfg = base_config(up.url("/base"));
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  EXPECT_EQ(tk::http_request(proxy.port(), get(kB, "/dmp")).header("X-Orgproxy-Error"), "unknown_tenant");
  add_tenant(cfg, kB, {{"dmp", b}});
  proxy.rewrite_config(cfg);
  proxy.send_signal(SIGHUP);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 2")) << proxy.log();
  auto rb = tk::http_request(proxy.port(), get(kB, "/dmp"));
  EXPECT_EQ(rb.status, 200) << proxy.log();
  EXPECT_EQ(rb.header("X-Client-DN"), tk::cert_subject_rfc2253(b.chain));

  write_file(proxy.config_file(), "listeners: [\n");  // a syntax error
  proxy.send_signal(SIGHUP);
  ASSERT_TRUE(proxy.wait_for_log("reload rejected")) << proxy.log();
  EXPECT_NE(proxy.log().find(proxy.config_file() + ":"), std::string::npos);  // file:line:col
  EXPECT_EQ(tk::http_request(proxy.port(), get(kB, "/dmp")).status, 200);  // the old snapshot serves
  EXPECT_EQ(proxy.stop(), 0);
  EXPECT_NE(proxy.log().find("graceful shutdown"), std::string::npos);
}

TEST_F(DaemonLifecycle, ambiguous_framing_is_refused_and_nothing_reaches_the_upstream) {  // C01, C03
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::HashUpstream up(hash_options());
  auto cfg = base_config(up.url("/base"));
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  const std::string head = "POST /dmp HTTP/1.1\r\nHost: orgproxy\r\nX-Orgproxy-Tenant: " + kA +
                           "\r\nContent-Type: application/soap+xml\r\n";
  const std::vector<std::string> attacks = {
      head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nAAAAA\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: y\r\n\r\n",
      head + "Content-Length: 5\r\nContent-Length: 7\r\n\r\nAAAAAAA",
      head + "Transfer-Encoding: chunked\t\r\nContent-Length: 3\r\n\r\nabc",
      head + "Transfer-Encoding: identity\r\n\r\n5\r\nAAAAA\r\n0\r\n\r\n",
      head + "Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nAAAAA\r\n0\r\n\r\n",
      head + "Content-Length: 3\r\nX-Note: a\r\n b\r\n\r\nabc",
      head + "Content-Length : 3\r\n\r\nabc",
      "GET /dmp HTTP/1.1\nHost: p\nX-Orgproxy-Tenant: " + kA + "\n\n",
      head + "X-A: 1\r2\r\nContent-Length: 0\r\n\r\n",
      "GET /dmp/../admin HTTP/1.1\r\nHost: p\r\nX-Orgproxy-Tenant: " + kA + "\r\n\r\n",
      "GET /dmp/%2e%2e/admin HTTP/1.1\r\nHost: p\r\nX-Orgproxy-Tenant: " + kA + "\r\n\r\n",
  };
  for (std::size_t i = 0; i < attacks.size(); ++i) {
    tk::HttpClient client("127.0.0.1", proxy.port());
    client.send_raw(attacks[i]);
    auto r = client.read_response();
    EXPECT_EQ(r.status, 400) << "attack " << i;
    EXPECT_EQ(r.header("X-Orgproxy-Error"), "bad_request") << "attack " << i;
    EXPECT_FALSE(r.keep_alive) << "attack " << i;
    EXPECT_TRUE(client.closed_by_peer(5s)) << "attack " << i;
  }
  EXPECT_EQ(up.connections(), 0u);  // not a byte forwarded

  // C02: a bad chunk-size line is only seen once streaming has started. The client gets 400 and the
  // upstream request is aborted without its last chunk: the upstream never completes a request.
  for (std::string bad_chunk : {"0x5\r\nAAAAA\r\n0\r\n\r\n", "5zz\r\nAAAAA\r\n0\r\n\r\n",
                                "5\nAAAAA\r\n0\r\n\r\n", "3\r\nABCDE\r\n0\r\n\r\n",
                                "FFFFFFFFFFFFFFFFF1\r\nAAAA\r\n"}) {
    tk::HttpClient client("127.0.0.1", proxy.port());
    client.send_raw(head + "Transfer-Encoding: chunked\r\n\r\n" + bad_chunk);
    auto r = client.read_response();
    EXPECT_EQ(r.status, 400) << bad_chunk;
    EXPECT_EQ(r.header("X-Orgproxy-Error"), "bad_request") << bad_chunk;
    EXPECT_TRUE(client.closed_by_peer(5s)) << bad_chunk;
  }
  EXPECT_EQ(up.requests(), 0u);

  tk::HttpClient client("127.0.0.1", proxy.port());  // positive control: a well-framed request passes
  client.send_raw(head + "Transfer-Encoding: chunked\r\n\r\n5;name=\"v\"\r\nAAAAA\r\n0\r\n\r\n");
  auto ok = client.read_response();
  EXPECT_EQ(ok.status, 200) << proxy.log();
  EXPECT_EQ(ok.header("X-Body-Length"), "5");
  EXPECT_EQ(up.requests(), 1u);
}

TEST_F(DaemonLifecycle, oversized_heads_and_bodies_are_refused_from_the_headers) {  // C10 (c)
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::HashUpstream up(hash_options());
  auto cfg = base_config(up.url("/base"));
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  tk::HttpClient big("127.0.0.1", proxy.port());
  big.send_raw("POST /dmp HTTP/1.1\r\nHost: p\r\nX-Orgproxy-Tenant: " + kA +
               "\r\nExpect: 100-continue\r\nContent-Length: 629145600\r\n\r\n");
  auto r = big.read_response();
  EXPECT_EQ(r.status, 413);  // 256 MiB route default, and no 100 Continue before it
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "request_too_large");
  EXPECT_FALSE(r.keep_alive);

  std::string many = "GET /dmp HTTP/1.1\r\nHost: p\r\nX-Orgproxy-Tenant: " + kA + "\r\n";
  for (int i = 0; i < 150; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
  tk::HttpClient hc("127.0.0.1", proxy.port());
  hc.send_raw(many + "\r\n");
  auto h = hc.read_response();
  EXPECT_EQ(h.status, 431);
  EXPECT_EQ(h.header("X-Orgproxy-Error"), "headers_too_large");
  EXPECT_EQ(up.connections(), 0u);
}

// A unix datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot bind " + path_);
  }
  ~NotifySocket() { ::close(fd_); }
  /// Collects datagrams until one contains `text` or `timeout` passes; returns everything received.
  std::string wait_for(const std::string& text, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) received_.append(buf, static_cast<std::size_t>(n)).push_back('|');
    }
    return received_;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::string received_;
};

TEST_F(DaemonLifecycle, systemd_hears_ready_watchdog_reloading_and_stopping) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  auto cfg = base_config("https://127.0.0.1:9/x");
  add_tenant(cfg, kA, {{"dmp", a}});
  NotifySocket notify(tmp_.file("notify.sock"));
  tk::OrgproxyStart start;
  start.env = {{"NOTIFY_SOCKET", tmp_.file("notify.sock")}, {"WATCHDOG_USEC", "300000"}};
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg, start);
  EXPECT_NE(notify.wait_for("READY=1", 20s).find("READY=1"), std::string::npos);
  EXPECT_NE(notify.wait_for("WATCHDOG=1", 20s).find("WATCHDOG=1"), std::string::npos);
  proxy.send_signal(SIGHUP);
  EXPECT_NE(notify.wait_for("RELOADING=1", 20s).find("RELOADING=1"), std::string::npos);
  EXPECT_EQ(proxy.stop(), 0);
  EXPECT_NE(notify.wait_for("STOPPING=1", 20s).find("STOPPING=1"), std::string::npos) << proxy.log();
}

}  // namespace
}  // namespace orgproxy::daemon_it
