// A tunnel listener with `tls`: implicit TLS from the RIS (SMTPS/IMAPS style) relayed into the upstream TLS
// with the site's certificate. Field case C22 across both TLS links (each direction ends on its own, as
// close_notify then FIN), and client rules matching the RIS's certificate (control: another RIS of the
// same PKI is refused before any upstream connection).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <future>

#include "l4_world.hpp"
#include "orgproxy/testkit/tls_script_server.hpp"

using namespace orgproxy::l4test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMiB = 1024 * 1024;

class TunnelTls : public L4Fixture {
 protected:
  TunnelTls() : L4Fixture("l4-tunnel-tls") {}
  void SetUp() override {
    L4Fixture::SetUp();
    listener_cert_ = world_->pki().issue_server_cert("listener", {"localhost"}, {"127.0.0.1"});
    ris_a_ = ris_cert(kA, "RIS A");
    ris_b_ = ris_cert(kB, "RIS B");
  }
  tk::IssuedFiles ris_cert(const std::string& ou, const std::string& cn) {
    tk::OrgCertOptions o;
    o.subject = {"75", "Groupe Exemple", ou, cn};
    o.file_stem = "ris-client-" + ou;
    return world_->pki().issue_org_cert_with_key(o);
  }
  // A tunnel listener with `tls` (RIS certificates verified, optional) for site A to `server`;
  // `listener_yaml`: more keys of the listener (4 spaces in).
  std::uint16_t start(const tk::TlsScriptServer& server, const std::string& listener_yaml = "") {
    config_.upstreams.push_back(l4_upstream("mss-imaps", server.port(), ca()));
    const std::string tls = listener_yaml + "    tls:\n      cert: \"" + listener_cert_.chain.string() +
                            "\"\n      key: \"" + listener_cert_.key.string() + "\"\n      client_ca: \"" + ca() +
                            "\"\n";
    config_.l4_listeners.push_back({"mss-tunnel", "tunnel", kA, "mss-imaps", 0, "", 0, tls});
    return start_daemon();
  }

  tk::IssuedFiles listener_cert_, ris_a_, ris_b_;
};

// Lower-case hex SHA-256 of the first certificate in `pem`.
std::string fingerprint(const std::filesystem::path& pem) {
  FILE* f = std::fopen(pem.c_str(), "r");
  if (!f) throw std::runtime_error("cannot read " + pem.string());
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  X509_free(cert);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

}  // namespace

TEST_F(TunnelTls, implicit_tls_from_the_ris_half_closes_through_both_tls_links_and_the_whole_reply_comes_back) {
  const std::string request = pattern(1 * kMiB, 3);
  const std::string reply = pattern(3 * kMiB, 5);
  std::promise<HalfCloseSeen> seen;
  tk::TlsScriptServer upstream(script_options(), read_all_then_reply(request, reply, seen));
  const std::uint16_t port = start(upstream);

  Client plain(port);
  TlsClient client(plain, ca(), &ris_a_);
  ASSERT_TRUE(client.ok()) << daemon_->log();
  ASSERT_TRUE(client.send(request));
  client.close_write();  // the RIS is done sending, not done reading
  bool clean = false;
  const std::string got = client.read_to_end(&clean);
  EXPECT_EQ(got.size(), reply.size());
  EXPECT_TRUE(got == reply) << "the reply arrives whole and in order";
  EXPECT_TRUE(clean) << "the upstream's end reaches the RIS as close_notify";

  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const HalfCloseSeen s = f.get();
  EXPECT_EQ(s.received, request.size());
  EXPECT_TRUE(s.equal);
  EXPECT_TRUE(s.clean_end) << "the RIS's close_notify becomes close_notify upstream";
  EXPECT_EQ(s.subject, world_->site(kA).identity("dmp").subject_dn) << "the site's certificate, not the RIS's";
}

TEST_F(TunnelTls, client_rule_matches_the_ris_certificate_and_another_ris_is_refused_before_any_upstream_connection) {
  config_.extra_yaml = "clients:\n  - name: ris-a\n    cert_sha256: \"" + fingerprint(ris_a_.chain) +
                       "\"\n    tenants: [\"" + kA + "\"]\n";
  tk::TlsScriptServer upstream(script_options(), [](tk::TlsScriptConn& c) {
    if (!c.start_tls()) return;
    bool ok = true;
    const std::string line = c.read_line(&ok);
    if (ok) c.write("echo " + line + "\n");
  });
  const std::uint16_t port = start(upstream);
  {
    // Control: RIS A's certificate is the client rule's.
    Client plain(port);
    TlsClient client(plain, ca(), &ris_a_);
    ASSERT_TRUE(client.ok()) << daemon_->log();
    client.send("ping\n");
    EXPECT_EQ(client.read_line(), "echo ping");
  }
  EXPECT_EQ(upstream.accepted(), 1u);
  {
    Client plain(port);
    TlsClient client(plain, ca(), &ris_b_);  // trusted (same PKI), but no client rule names it
    ASSERT_TRUE(client.ok()) << daemon_->log();
    client.send("ping\n");
    bool clean = false;
    EXPECT_EQ(client.read_to_end(&clean), "");
  }
  EXPECT_TRUE(daemon_->wait_for_log("client_not_allowed")) << daemon_->log();
  EXPECT_EQ(upstream.accepted(), 1u) << "no upstream connection for a refused RIS";
}

TEST_F(TunnelTls, a_ris_handshake_stalled_past_header_timeout_is_logged_as_header_timeout_and_a_broken_one_as_bad_request) {
  tk::TlsScriptServer upstream(script_options(), [](tk::TlsScriptConn& c) {
    if (!c.start_tls()) return;
    bool ok = true;
    const std::string line = c.read_line(&ok);
    if (ok) c.write("echo " + line + "\n");
  });
  const std::uint16_t port = start(upstream, "    header_timeout: 1500ms\n");
  {
    // Positive control: a RIS that completes its handshake in time is relayed.
    Client plain(port);
    TlsClient client(plain, ca(), &ris_a_);
    ASSERT_TRUE(client.ok()) << daemon_->log();
    client.send("ping\n");
    EXPECT_EQ(client.read_line(), "echo ping");
  }
  {
    // Half a ClientHello (a TLS record header announcing 512 bytes, then 5 of them), then silence.
    Client stalled(port);
    ASSERT_TRUE(stalled.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03", 10)));
    const auto sent = std::chrono::steady_clock::now();
    bool eof = false;
    EXPECT_EQ(stalled.read_to_eof(&eof), "") << "no byte for a handshake cut short";
    EXPECT_TRUE(eof) << "closed by orgproxy, not by the test's 60 s socket timeout";
    EXPECT_GE(std::chrono::steady_clock::now() - sent, 1s);
    ASSERT_TRUE(daemon_->wait_for_log("header_timeout: the client's TLS handshake did not complete")) << daemon_->log();
    EXPECT_TRUE(daemon_->wait_for_log("\"status\":408,\"error\":\"header_timeout\"")) << daemon_->log();
  }
  {
    // Control for the code: a handshake that fails (not TLS at all) stays the client's bad_request.
    Client broken(port);
    ASSERT_TRUE(broken.send("GET / HTTP/1.1\r\n\r\n"));
    bool eof = false;
    broken.read_to_eof(&eof);
    EXPECT_TRUE(daemon_->wait_for_log("bad_request: the client's TLS handshake failed")) << daemon_->log();
  }
  const std::string log = daemon_->log();
  EXPECT_EQ(log.find("bad_request: the client's TLS handshake did not complete"), std::string::npos) << log;
  EXPECT_EQ(upstream.accepted(), 1u) << "no upstream connection for a RIS that never finished its handshake";
}
