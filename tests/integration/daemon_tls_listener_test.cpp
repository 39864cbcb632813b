// Downstream TLS listener (issue 4 point 1), against the real daemon and the real curl: HTTPS with
// http/1.1 in ALPN, TLS 1.1 refused, a required client certificate absent or untrusted refused at the
// handshake, and a listener key held in the token.
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>

#include <algorithm>

#include "daemon_tls_listener_world.hpp"
#include "orgproxy/testkit/loopback_client.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

const std::string& kA = kTlsA;
const std::string& kB = kTlsB;

/// A serverAuth certificate (SAN IP 127.0.0.1) for `public_key`, issued by a fresh software CA: a listener
/// certificate whose key lives in the token. Writes `dir`/listener-ca.pem and `dir`/listener.pem.
void issue_listener_cert_for(EVP_PKEY* public_key, const std::filesystem::path& dir) {
  auto ca_key = tk::generate_software_key(tk::KeyType::ec_p256);
  auto make = [](const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long serial,
                 std::vector<std::pair<int, const char*>> exts) {
    tk::CertHandle c(X509_new());
    X509_set_version(c.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
    X509_set_pubkey(c.get(), key);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer : c.get(), c.get(), nullptr, nullptr, 0);
    for (auto [nid, value] : exts) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      if (!ext) throw std::runtime_error("extension " + std::string(value));
      X509_add_ext(c.get(), ext, -1);
      X509_EXTENSION_free(ext);
    }
    if (X509_sign(c.get(), issuer_key, EVP_sha256()) == 0) throw std::runtime_error("X509_sign");
    return c;
  };
  auto ca = make("Listener Test CA", ca_key.get(), nullptr, ca_key.get(), 1,
                 {{NID_basic_constraints, "critical,CA:TRUE"}, {NID_key_usage, "critical,keyCertSign"}});
  auto leaf = make("localhost", public_key, ca.get(), ca_key.get(), 2,
                   {{NID_basic_constraints, "critical,CA:FALSE"},
                    {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                    {NID_ext_key_usage, "serverAuth"},
                    {NID_subject_alt_name, "IP:127.0.0.1"}});
  auto write = [](const std::filesystem::path& file, X509* cert) {
    FILE* f = std::fopen(file.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + file.string());
    PEM_write_X509(f, cert);
    std::fclose(f);
  };
  write(dir / "listener-ca.pem", ca.get());
  write(dir / "listener.pem", leaf.get());
}

}  // namespace

TEST_F(DaemonTlsListener, tls_listener_serves_https_with_http11_alpn_and_refuses_tls_1_1) {
  TlsDaemon proxy(tmp_.subdir("proxy"), config({"header"}), tls_yaml(false, false));

  auto ok = curl(proxy.url("/dmp/registry"), nullptr, {"-H", "X-Orgproxy-Tenant: " + kA});
  ASSERT_EQ(ok.exit_code, 0) << ok.output << proxy.log();
  EXPECT_EQ(ok.response.status, 200);
  EXPECT_EQ(ok.response.header("X-Client-DN"), dn_of(a_));
  EXPECT_EQ(upstream_->requests(), 1u);

  // curl offers h2 and http/1.1 in ALPN: the listener picks http/1.1.
  auto alpn = curl(proxy.url("/dmp/registry"), nullptr, {"--http2", "-H", "X-Orgproxy-Tenant: " + kA, "-v"});
  ASSERT_EQ(alpn.exit_code, 0) << alpn.output;
  EXPECT_EQ(alpn.response.status, 200);
  EXPECT_NE(alpn.output.find("ALPN: server accepted http/1.1"), std::string::npos) << alpn.output;

  // The client's own policy is lowered (SECLEVEL=0 allows TLS 1.1), so the refusal is the listener's.
  const std::vector<std::string> weak_client{"--ciphers", "DEFAULT@SECLEVEL=0", "-H", "X-Orgproxy-Tenant: " + kA};
  auto v12 = weak_client;
  v12.insert(v12.end(), {"--tlsv1.2", "--tls-max", "1.2"});
  auto tls12 = curl(proxy.url("/dmp/registry"), nullptr, v12);
  ASSERT_EQ(tls12.exit_code, 0) << tls12.output;  // positive control: same client, TLS 1.2
  EXPECT_EQ(tls12.response.status, 200);
  auto v11 = weak_client;
  v11.insert(v11.end(), {"--tlsv1.1", "--tls-max", "1.1"});
  auto tls11 = curl(proxy.url("/dmp/registry"), nullptr, v11);
  EXPECT_NE(tls11.exit_code, 0) << tls11.output;
  EXPECT_EQ(tls11.response.status, 0);
  EXPECT_TRUE(proxy.wait_for_log("TLS handshake from 127.0.0.1 refused")) << proxy.log();
  EXPECT_EQ(upstream_->requests(), 3u);

  // Plain HTTP on the TLS port gets no HTTP answer.
  auto plain = tk::run_curl(tmp_.subdir("curl"), {"--max-time", "30", "-H", "X-Orgproxy-Tenant: " + kA,
                                                  "http://127.0.0.1:" + std::to_string(proxy.port()) + "/dmp/x"});
  EXPECT_EQ(plain.response.status, 0) << plain.output;
  EXPECT_EQ(upstream_->requests(), 3u);
}

TEST_F(DaemonTlsListener, a_head_stalled_after_the_tls_handshake_is_answered_408_header_timeout) {
  auto cfg = config({"header"});
  cfg.listener_header_timeout = "1500ms";
  TlsDaemon proxy(tmp_.subdir("proxy"), cfg, tls_yaml(false, false));
  const std::string ca = pki_->ca_bundle_pem().string();
  const std::string head = "GET /dmp/registry HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Orgproxy-Tenant: " + kA +
                           "\r\nConnection: close\r\n\r\n";
  {
    // Positive control: the same head, complete and in time, over the same kind of TLS connection.
    tk::LoopbackClient plain(proxy.port());
    tk::LoopbackTlsClient tls(plain, ca, nullptr, "http/1.1");
    ASSERT_TRUE(tls.ok()) << proxy.log();
    ASSERT_TRUE(tls.send(head));
    bool clean = false;
    const std::string answer = tls.read_to_end(&clean);
    EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  }
  EXPECT_EQ(upstream_->requests(), 1u);
  {
    // The handshake completes, then the head stops half-way through a header line.
    tk::LoopbackClient plain(proxy.port());
    tk::LoopbackTlsClient tls(plain, ca, nullptr, "http/1.1");
    ASSERT_TRUE(tls.ok()) << proxy.log();
    ASSERT_TRUE(tls.send(head.substr(0, head.find("X-Orgproxy-Tenant") + 8)));
    const auto sent = std::chrono::steady_clock::now();
    bool clean = false;
    const std::string answer = tls.read_to_end(&clean);
    EXPECT_GE(std::chrono::steady_clock::now() - sent, 1s) << "not before header_timeout";
    EXPECT_EQ(answer.rfind("HTTP/1.1 408", 0), 0u) << answer << proxy.log();
    EXPECT_NE(answer.find("X-Orgproxy-Error: header_timeout\r\n"), std::string::npos) << answer;
    EXPECT_NE(answer.find("X-Request-Id: "), std::string::npos) << answer;
  }
  EXPECT_EQ(upstream_->requests(), 1u) << "a stalled head reaches no upstream";
}

TEST_F(DaemonTlsListener, required_client_certificate_absent_or_untrusted_refuses_the_handshake) {
  TlsDaemon proxy(tmp_.subdir("proxy"), config({"header"}), tls_yaml(true, true));

  auto good = curl(proxy.url("/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kA});
  ASSERT_EQ(good.exit_code, 0) << good.output << proxy.log();
  EXPECT_EQ(good.response.status, 200);

  for (const char* version : {"1.2", "1.3"}) {
    SCOPED_TRACE(version);
    std::vector<std::string> pin{"--tlsv" + std::string(version), "--tls-max", version, "-H", "X-Orgproxy-Tenant: " + kA};
    auto none = curl(proxy.url("/dmp/x"), nullptr, pin);
    EXPECT_NE(none.exit_code, 0) << none.output;
    EXPECT_EQ(none.response.status, 0);
    auto rogue = curl(proxy.url("/dmp/x"), &ris_rogue_, pin);
    EXPECT_NE(rogue.exit_code, 0) << rogue.output;
    EXPECT_EQ(rogue.response.status, 0);
    auto again = curl(proxy.url("/dmp/x"), &ris_a_, pin);  // positive control at this version
    EXPECT_EQ(again.response.status, 200) << again.output;
  }
  EXPECT_EQ(upstream_->requests(), 3u);
}

TEST_F(DaemonTlsListener, listener_key_in_the_token_signs_the_handshake_and_a_missing_one_refuses_the_start) {
  tk::TokenKeyOptions k;
  k.id = "\x70";
  k.label = "listener-ris";
  tk::TokenKey key = token_->generate_key(k);
  const auto dir = tmp_.subdir("listener-token");
  issue_listener_cert_for(key.public_key.get(), dir);
  const std::string tls = "    tls:\n      cert: \"" + (dir / "listener.pem").string() + "\"\n      key: \"" + key.uri + "\"\n";
  TlsDaemon proxy(tmp_.subdir("proxy"), config({"header"}), tls);

  for (const char* version : {"1.2", "1.3"}) {
    SCOPED_TRACE(version);
    auto r = tk::run_curl(tmp_.subdir("curl"), {"--cacert", (dir / "listener-ca.pem").string(), "--max-time", "30",
                                                "--tlsv" + std::string(version), "--tls-max", version, "-H",
                                                "X-Orgproxy-Tenant: " + kA, proxy.url("/dmp/x")});
    ASSERT_EQ(r.exit_code, 0) << r.output << proxy.log();
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.header("X-Client-DN"), dn_of(a_));
  }

  // A token key that does not exist: the start is refused with the listener named.
  auto cfg = config({"header"});
  cfg.port = tk::free_loopback_port();
  std::string yaml = cfg.yaml();
  yaml.insert(yaml.find("\nupstreams:") + 1,
              "    tls:\n      cert: \"" + (dir / "listener.pem").string() +
                  "\"\n      key: \"pkcs11:token=orgproxy-it;id=%7F;type=private\"\n");
  const auto file = tmp_.file("missing-key.yaml");
  tk::write_file(file, yaml);
  auto refused = tk::run_command({ORGPROXY_BINARY, "run", "--config", file}, {}, 60s);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("listener ris: server certificate and token key"), std::string::npos)
      << refused.output;
}

TEST_F(DaemonTlsListener, a_missing_listener_certificate_refuses_the_start_at_the_line_of_its_setting) {
  auto cfg = config({"header"});
  cfg.port = tk::free_loopback_port();
  const auto missing = tmp_.path() / "no-such-listener.pem";
  auto write_config = [&](const std::string& name, const std::string& cert) {
    std::string yaml = cfg.yaml();
    const auto at = yaml.find("\nupstreams:") + 1;
    yaml.insert(at, "    tls:\n      cert: \"" + cert + "\"\n      key: \"" + listener_cert_.key.string() + "\"\n");
    const auto file = tmp_.file(name);
    tk::write_file(file, yaml);
    // The cert value's position: the line after "tls:", after `      cert: `.
    const int line = 1 + static_cast<int>(std::count(yaml.begin(), yaml.begin() + static_cast<long>(at), '\n')) + 1;
    return std::pair{file, file + ":" + std::to_string(line) + ":13: "};
  };
  auto [bad, where] = write_config("missing-cert.yaml", missing.string());
  auto refused = tk::run_command({ORGPROXY_BINARY, "run", "--config", bad}, {}, 60s);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find(where + "listener 'ris': tls: cert: cannot read '" + missing.string() +
                                "': no such file"),
            std::string::npos)
      << "expected " << where << " in:\n" << refused.output;
  EXPECT_EQ(refused.output.find("system lib"), std::string::npos) << "no raw OpenSSL message: " << refused.output;

  // Positive control: the same configuration with the certificate in place starts and serves.
  auto good = config({"header"});
  TlsDaemon proxy(tmp_.subdir("proxy"), good, tls_yaml(false, false));
  auto ok = curl(proxy.url("/dmp/x"), nullptr, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(ok.response.status, 200) << ok.output << proxy.log();
}

}  // namespace orgproxy::daemon_it
