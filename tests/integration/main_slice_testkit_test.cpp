// The test kit's own behaviour against the real parts it drives (nginx, curl, OpenSSL): the main-slice
// tests trust these fixtures, so each is shown to report what really happened, with a negative case.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/curl.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/site_ids.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;
using namespace std::chrono_literals;

namespace {

// A PKI, an upstream server certificate and one ORG client certificate with a software key (curl uses it).
class TestkitWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<tk::TestPki>(tmp_.subdir("pki"));
    server_ = pki_->issue_server_cert("upstream", {"localhost"}, {"127.0.0.1"});
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet de radiologie A", std::string(tk::kSiteA), "Cabinet A"};
    client_ = pki_->issue_org_cert_with_key(o);
  }
  std::vector<std::string> client_tls_args() const {
    return {"--cacert",          pki_->ca_bundle_pem().string(), "--cert", client_.chain.string(), "--key",
            client_.key.string()};
  }
  tk::NginxServerOptions nginx_options(tk::TlsProtocols protocols = tk::TlsProtocols::both) const {
    tk::NginxServerOptions s;
    s.name = "dmp";
    s.cert_file = server_.chain.string();
    s.key_file = server_.key.string();
    s.client_ca_file = pki_->ca_bundle_pem().string();
    s.protocols = protocols;
    return s;
  }

  tk::TempDir tmp_{"testkit"};
  std::unique_ptr<tk::TestPki> pki_;
  tk::IssuedFiles server_;
  tk::IssuedFiles client_;
};

}  // namespace

TEST(SiteIds, fixed_sites_carry_valid_luhn_keys) {
  EXPECT_TRUE(tk::luhn_ok(std::string(tk::kSiteA).substr(1)));      // the SIRET
  EXPECT_TRUE(tk::luhn_ok(std::string(tk::kSiteB).substr(1, 11)));  // the RPPS
  EXPECT_TRUE(tk::luhn_ok(tk::site_c().substr(1, 11)));
  EXPECT_EQ(tk::site_id_siret("1234567820000"), std::string(tk::kSiteA));
  EXPECT_EQ(tk::site_id_rpps_rang("9876543210", "017"), std::string(tk::kSiteB));
  EXPECT_FALSE(tk::luhn_ok("12345678200003"));  // negative control: one digit off
}

TEST(ChildProcessTest, destruction_kills_a_child_that_ignores_nothing_and_reports_exit_codes) {
  pid_t pid = 0;
  {
    tk::ChildProcess sleeper({{"sleep", "600"}, {}, "", ""});
    pid = sleeper.pid();
    EXPECT_TRUE(sleeper.running());
    EXPECT_FALSE(sleeper.wait_for_exit(100ms).has_value());
  }
  EXPECT_NE(::kill(pid, 0), 0) << "the child outlived its owner";
  tk::ChildProcess quick({{"sh", "-c", "exit 3"}, {}, "", ""});
  EXPECT_EQ(quick.wait_for_exit(20s), 3);
}

TEST(ChildProcessTest, child_gets_extra_environment_and_its_output_goes_to_the_log) {
  tk::TempDir tmp("child");
  tk::ChildProcess p(
      {{"sh", "-c", "echo value=$ORGPROXY_TK_X; echo err >&2"}, {{"ORGPROXY_TK_X", "42"}}, tmp.file("out.log"), ""});
  ASSERT_EQ(p.wait_for_exit(20s), 0);
  EXPECT_NE(p.log().find("value=42"), std::string::npos);
  EXPECT_NE(p.log().find("err"), std::string::npos);
}

TEST(ChildProcessTest, run_command_captures_output_and_kills_on_timeout) {
  auto ok = tk::run_command({"sh", "-c", "printf hello; exit 7"});
  EXPECT_EQ(ok.exit_code, 7);
  EXPECT_EQ(ok.output, "hello");
  auto slow = tk::run_command({"sleep", "600"}, {}, 300ms);
  EXPECT_TRUE(slow.timed_out);
  EXPECT_EQ(slow.exit_code, 128 + SIGKILL);
}

TEST(SilentTcpServerTest, accepts_and_never_answers) {
  tk::SilentTcpServer silent;
  tk::HttpClient client("127.0.0.1", silent.port(), 500ms);
  client.send_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THROW(client.read_response(), tk::HttpClientError);
  EXPECT_EQ(silent.accepted(), 1u);
}

TEST(NetTest, free_port_is_not_listening_and_wait_gives_up) {
  auto port = tk::free_loopback_port();
  EXPECT_FALSE(tk::wait_for_port("127.0.0.1", port, 200ms));
  EXPECT_THROW(tk::HttpClient("127.0.0.1", port, 2s), tk::HttpClientError);
}

TEST_F(TestkitWorld, nginx_upstream_reports_the_client_certificate_it_verified) {
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto args = client_tls_args();
  args.push_back(nginx.url("/si-dmp-server/v2/services/repository?x=1"));
  auto r = tk::run_curl(tmp_.path(), args);
  ASSERT_EQ(r.exit_code, 0) << r.output << nginx.error_log();
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.header("X-Client-DN"), tk::cert_subject_rfc2253(client_.chain));
  EXPECT_NE(r.response.header("X-Client-DN").find("OU=" + std::string(tk::kSiteA)), std::string::npos);
  EXPECT_EQ(r.response.header("X-Client-Serial"), tk::cert_serial_hex(client_.chain));
  EXPECT_EQ(r.response.header("X-Client-Verify"), "SUCCESS");
  EXPECT_EQ(r.response.header("X-Seen-Uri"), "/si-dmp-server/v2/services/repository?x=1");
  EXPECT_EQ(r.response.header("X-Endpoint"), "dmp");
  EXPECT_EQ(r.response.header("X-Tls-Protocol"), "TLSv1.3");
  EXPECT_NE(nginx.access_log().find(tk::kSiteA), std::string::npos);
  EXPECT_EQ(nginx.error_log().find("/var/log/nginx"), std::string::npos);
}

TEST_F(TestkitWorld, nginx_upstream_refuses_a_client_without_certificate) {
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options());
  auto r = tk::run_curl(tmp_.path(), {"--cacert", pki_->ca_bundle_pem().string(), nginx.url("/")});
  EXPECT_EQ(r.response.status, 400) << r.output;
  EXPECT_NE(r.response.body.find("No required SSL certificate was sent"), std::string::npos) << r.response.body;
  EXPECT_FALSE(r.response.has_header("X-Client-DN"));  // refused before any location answers
}

TEST_F(TestkitWorld, nginx_upstream_keeps_connections_alive_and_limits_tls_versions) {
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options(tk::TlsProtocols::tls1_2));
  auto args = client_tls_args();
  args.push_back(nginx.url("/a"));
  args.push_back(nginx.url("/b"));
  auto r = tk::run_curl(tmp_.path(), args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(r.responses.size(), 2u);
  EXPECT_EQ(r.responses[0].header("X-Up-Conn"), r.responses[1].header("X-Up-Conn"));
  EXPECT_EQ(r.responses[0].header("X-Up-Conn-Req"), "1");
  EXPECT_EQ(r.responses[1].header("X-Up-Conn-Req"), "2");
  EXPECT_EQ(r.responses[1].header("X-Tls-Protocol"), "TLSv1.2");
  auto only13 = client_tls_args();
  only13.insert(only13.end(), {"--tlsv1.3", nginx.url("/")});
  EXPECT_NE(tk::run_curl(tmp_.path(), only13).exit_code, 0);  // 1.3 refused by a 1.2-only upstream
}

TEST_F(TestkitWorld, hash_upstream_hashes_exactly_the_body_received_plain_and_chunked) {
  tk::HashUpstream upstream(
      tk::hash_upstream_options(server_.chain.string(), server_.key.string(), pki_->ca_bundle_pem().string()));
  const auto sample = tk::sample_path("insi-rechercher-ins-avec-traits-identite.xml");
  const auto expected = tk::sha256_hex(tk::read_file(sample));
  auto args = client_tls_args();
  args.insert(args.end(), {"-H", "Content-Type: application/soap+xml", "-H", "SOAPAction: x", "--data-binary",
                           "@" + sample.string(), upstream.url("/lps?q=1")});
  auto plain = tk::run_curl(tmp_.path(), args);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_EQ(plain.response.header("X-Body-Sha256"), expected);
  EXPECT_EQ(plain.response.header("X-Body-Length"), std::to_string(std::filesystem::file_size(sample)));
  EXPECT_EQ(plain.response.header("X-Seen-Path"), "/lps?q=1");
  EXPECT_EQ(plain.response.header("X-Client-DN"), tk::cert_subject_rfc2253(client_.chain));
  EXPECT_NE(plain.response.header("X-Seen-Headers").find("soapaction"), std::string::npos);
  auto chunked_args = args;
  chunked_args.insert(chunked_args.begin(), {"-H", "Transfer-Encoding: chunked"});
  auto chunked = tk::run_curl(tmp_.path(), chunked_args);
  ASSERT_EQ(chunked.exit_code, 0) << chunked.output;
  EXPECT_EQ(chunked.response.header("X-Body-Sha256"), expected);
  auto seen = upstream.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].body_sha256, expected);
  // Negative control: a different body gives a different hash.
  auto other = client_tls_args();
  other.insert(other.end(), {"--data-binary", "not the sample", upstream.url("/lps")});
  EXPECT_NE(tk::run_curl(tmp_.path(), other).response.header("X-Body-Sha256"), expected);
}

TEST_F(TestkitWorld, hash_upstream_counts_connection_reuse_and_refuses_untrusted_clients) {
  tk::HashUpstream upstream(tk::hash_upstream_options(server_.chain.string(), server_.key.string(),
                                                      pki_->ca_bundle_pem().string(), tk::TlsProtocols::tls1_2));
  auto args = client_tls_args();
  args.insert(args.end(), {upstream.url("/a"), upstream.url("/b")});
  auto r = tk::run_curl(tmp_.path(), args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(upstream.connections(), 1u);
  EXPECT_EQ(upstream.requests(), 2u);
  EXPECT_EQ(r.response.header("X-Tls-Protocol"), "TLSv1.2");

  auto rogue = tk::TestPki::rogue(tmp_.subdir("rogue"));
  tk::OrgCertOptions o;
  o.subject = {"75", "Rogue", std::string(tk::kSiteA), "Cabinet A"};
  auto forged = rogue.issue_org_cert_with_key(o);
  auto bad = tk::run_curl(tmp_.path(), {"--cacert", pki_->ca_bundle_pem().string(), "--cert", forged.chain.string(),
                                        "--key", forged.key.string(), upstream.url("/")});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(upstream.requests(), 2u);
  for (int i = 0; i < 100 && upstream.handshake_failures() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(upstream.handshake_failures(), 1u);
}

TEST_F(TestkitWorld, hash_upstream_answers_expect_100_continue_and_hashes_a_large_body) {
  tk::HashUpstream upstream(
      tk::hash_upstream_options(server_.chain.string(), server_.key.string(), pki_->ca_bundle_pem().string()));
  std::string body(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 2654435761u) >> 13);
  tk::write_file(tmp_.file("large.bin"), body);
  auto args = client_tls_args();
  args.insert(args.end(), {"-H", "Expect: 100-continue", "--expect100-timeout", "30", "--data-binary",
                           "@" + tmp_.file("large.bin"), upstream.url("/repository")});
  auto r = tk::run_curl(tmp_.path(), args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.response.header("X-Body-Sha256"), tk::sha256_hex(body));
  EXPECT_EQ(r.response.header("X-Body-Length"), std::to_string(body.size()));
  auto seen = upstream.seen();
  ASSERT_EQ(seen.size(), 1u);
  bool saw_expect = false;
  for (const auto& [name, value] : seen[0].headers) saw_expect = saw_expect || name == "Expect";
  EXPECT_TRUE(saw_expect);
}

TEST_F(TestkitWorld, nginx_upstream_runs_with_a_master_process_too) {
  tk::NginxUpstream nginx(tmp_.subdir("nginx"), nginx_options(), /*master_process=*/true);
  auto args = client_tls_args();
  args.push_back(nginx.url("/"));
  auto r = tk::run_curl(tmp_.path(), args);
  ASSERT_EQ(r.exit_code, 0) << r.output << nginx.error_log();
  EXPECT_EQ(r.response.header("X-Client-DN"), tk::cert_subject_rfc2253(client_.chain));
  nginx.stop();
  EXPECT_FALSE(tk::wait_for_port("127.0.0.1", nginx.port(), std::chrono::milliseconds(300)));
}

TEST(OrgproxyProcessTest, reports_a_daemon_that_exits_at_start_with_its_log) {
  tk::TempDir tmp("orgproxy-process");
  const auto fake = tmp.file("fake-orgproxy");
  tk::write_file(fake, "#!/bin/sh\necho \"fake daemon: $*\"\nexit 1\n", 0755);
  tk::OrgproxyStart start;
  start.binary = fake;
  try {
    tk::OrgproxyProcess daemon(tmp.subdir("d"), tk::OrgproxyConfig{}, start);
    FAIL() << "a daemon that exits was reported as started";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exited during start"), std::string::npos) << what;
    EXPECT_NE(what.find("fake daemon: run --config " + tmp.file("d/orgproxy.yaml")), std::string::npos) << what;
  }
}

TEST(OrgproxyProcessTest, gives_up_on_a_daemon_that_never_listens_and_kills_it) {
  tk::TempDir tmp("orgproxy-process");
  const auto fake = tmp.file("fake-orgproxy");
  tk::write_file(fake, "#!/bin/sh\necho $$ > " + tmp.file("pid") + "\nexec sleep 600\n", 0755);
  tk::OrgproxyStart start;
  start.binary = fake;
  start.ready_timeout = std::chrono::milliseconds(500);
  EXPECT_THROW(tk::OrgproxyProcess(tmp.subdir("d"), tk::OrgproxyConfig{}, start), std::runtime_error);
  const pid_t pid = std::stoi(tk::read_file(tmp.file("pid")));
  EXPECT_NE(::kill(pid, 0), 0) << "the fake daemon was left running";
}

TEST(SiteWorldTest, three_sites_get_token_keys_and_certificates_named_by_their_ids) {
  tk::TempDir tmp("site-world");
  tk::SiteWorld world(tmp.subdir("world"), tk::three_test_sites());
  ASSERT_EQ(world.sites().size(), 3u);
  std::set<std::string> uris;
  for (const auto& site : world.sites()) {
    const auto& dmp = site.identity("dmp");
    const auto& insi = site.identity("insi-auto");
    EXPECT_EQ(dmp.subject_dn.rfind("CN=" + site.spec.name + ",OU=" + site.spec.id + ",", 0), 0u) << dmp.subject_dn;
    EXPECT_EQ(insi.subject_dn.rfind("CN=INSI-AUTO,OU=" + site.spec.id + ",", 0), 0u) << insi.subject_dn;
    EXPECT_EQ(dmp.key_uri.rfind("pkcs11:token=orgproxy-sites;", 0), 0u) << dmp.key_uri;
    uris.insert(dmp.key_uri);
    uris.insert(insi.key_uri);
    EXPECT_EQ(tk::read_pem_certificates(dmp.cert_file).size(), 2u) << "leaf + intermediate expected";
  }
  EXPECT_EQ(uris.size(), 6u) << "every identity has its own key";
  EXPECT_THROW(world.site("310000000000000"), std::out_of_range);
  const auto yaml = world.base_config().yaml();
  for (const auto& site : world.sites()) EXPECT_NE(yaml.find("id: \"" + site.spec.id + "\""), std::string::npos);
}

// A one-shot plain HTTP server: answers one request with `response`, then closes if `close_after`.
class OneShotServer {
 public:
  OneShotServer(std::string response, bool close_after) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("OneShotServer: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, response = std::move(response), close_after] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
      }
      (void)!::write(c, response.data(), response.size());
      if (!close_after) ::read(c, buf, sizeof buf);  // holds the connection until the client leaves
      ::close(c);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

TEST(HttpClientTest, reads_a_response_and_sees_the_server_close) {
  OneShotServer server("HTTP/1.1 400 Bad Request\r\nX-Orgproxy-Error: bad_request\r\nConnection: close\r\n"
                       "Content-Length: 3\r\n\r\nbad",
                       /*close_after=*/true);
  tk::HttpClient client("127.0.0.1", server.port());
  auto r = client.request({"POST", "/dmp", {{"X-Orgproxy-Tenant", std::string(tk::kSiteA)}}, "abc"});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.header("x-orgproxy-error"), "bad_request");  // case-insensitive lookup
  EXPECT_EQ(r.body, "bad");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(client.closed_by_peer());
}

TEST(HttpClientTest, open_keepalive_connection_is_not_reported_closed) {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", /*close_after=*/false);
  tk::HttpClient client("127.0.0.1", server.port());
  auto r = client.request({"GET", "/", {}, ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(client.closed_by_peer(std::chrono::milliseconds(300)));
}
