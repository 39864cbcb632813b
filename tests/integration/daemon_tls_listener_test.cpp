// Downstream TLS listener, the client_cert selector and client authorization by client certificate
// (issue 4 points 1–3), against the real daemon, the real curl (its own TLS stack) and a real mTLS upstream
// that reports which site certificate it saw.
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>

#include <cstdio>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon_world.hpp"
#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/curl.hpp"
#include "orgproxy/testkit/net.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;

const std::string kA = "312345678200002";  // 3 + SIRET
const std::string kB = "498765432103017";  // 4 + RPPS + rang

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

/// The daemon started on `cfg` with `listener_yaml` inserted in its listener (the test kit's model has no
/// `tls`), on a free loopback port; killed at destruction, whatever the test's outcome.
class TlsDaemon {
 public:
  TlsDaemon(const std::filesystem::path& dir, tk::OrgproxyConfig cfg, const std::string& listener_yaml)
      : dir_(dir), cfg_(std::move(cfg)), listener_yaml_(listener_yaml) {
    std::filesystem::create_directories(dir_);
    cfg_.port = tk::free_loopback_port();
    write();
    process_ = std::make_unique<tk::ChildProcess>(
        tk::ProcessSpec{{ORGPROXY_BINARY, "run", "--config", (dir_ / "orgproxy.yaml").string()},
                        {},
                        (dir_ / "orgproxy.log").string(),
                        {}});
    if (!tk::wait_for_port("127.0.0.1", cfg_.port, 30s, [this] { return process_->running(); }))
      throw std::runtime_error("orgproxy did not listen:\n" + process_->log());
  }
  std::uint16_t port() const { return cfg_.port; }
  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(cfg_.port) + path;
  }
  std::string log() const { return process_->log(); }
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = 20s) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  /// Rewrites the configuration (same port) and sends SIGHUP.
  void reload(tk::OrgproxyConfig cfg) {
    auto port = cfg_.port;
    cfg_ = std::move(cfg);
    cfg_.port = port;
    write();
    process_->send_signal(SIGHUP);
  }

 private:
  void write() const {
    std::string yaml = cfg_.yaml();
    auto at = yaml.find("\nupstreams:");
    if (at == std::string::npos) throw std::runtime_error("no upstreams section in the test config");
    yaml.insert(at + 1, listener_yaml_);
    tk::write_file(dir_ / "orgproxy.yaml", yaml);
  }
  std::filesystem::path dir_;
  tk::OrgproxyConfig cfg_;
  std::string listener_yaml_;
  std::unique_ptr<tk::ChildProcess> process_;
};

class DaemonTlsListener : public DaemonWorld {
 protected:
  void SetUp() override {
    DaemonWorld::SetUp();
    upstream_ = std::make_unique<tk::HashUpstream>(hash_options());
    listener_cert_ = pki_->issue_server_cert("listener", {"localhost"}, {"127.0.0.1"});
    a_ = make_identity(kA, "dmp", kA, "Cabinet A");
    b_ = make_identity(kB, "dmp", kB, "Cabinet B");
    // RIS client certificates: one per site (OU = the site), one of a RIS serving no single site, and one
    // from an unrelated PKI.
    ris_a_ = client_cert(*pki_, kA, "RIS A");
    ris_b_ = client_cert(*pki_, kB, "RIS B");
    ris_lyon_ = client_cert(*pki_, "RIS-LYON", "RIS LYON");
    rogue_pki_ = std::make_unique<tk::TestPki>(tk::TestPki::rogue(tmp_.subdir("rogue")));
    ris_rogue_ = client_cert(*rogue_pki_, kA, "RIS A");
  }

  static tk::IssuedFiles client_cert(tk::TestPki& pki, const std::string& ou, const std::string& cn) {
    tk::OrgCertOptions o;
    o.subject = {"75", "Groupe Exemple", ou, cn};
    o.file_stem = "ris-client-" + ou;
    return pki.issue_org_cert_with_key(o);
  }

  tk::OrgproxyConfig config(std::vector<std::string> selectors) const {
    auto cfg = base_config(upstream_->url("/base"));
    cfg.selectors = std::move(selectors);
    add_tenant(cfg, kA, {{"dmp", a_}});
    add_tenant(cfg, kB, {{"dmp", b_}});
    return cfg;
  }

  /// The listener's `tls` mapping.
  std::string tls_yaml(bool client_ca, bool required) const {
    std::string y = "    tls:\n      cert: \"" + listener_cert_.chain.string() + "\"\n      key: \"" +
                    listener_cert_.key.string() + "\"\n";
    if (client_ca) y += "      client_ca: \"" + pki_->ca_bundle_pem().string() + "\"\n";
    if (required) y += "      require_client_cert: true\n";
    return y;
  }

  /// curl over TLS to `url`, trusting the test root, presenting `cert` when given, with `extra` arguments.
  tk::CurlResult curl(const std::string& url, const tk::IssuedFiles* cert, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--cacert", pki_->ca_bundle_pem().string(), "--max-time", "30"};
    if (cert) args.insert(args.end(), {"--cert", cert->chain.string(), "--key", cert->key.string()});
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(url);
    return tk::run_curl(tmp_.subdir("curl"), args);
  }

  /// SHA-256 fingerprint as `openssl x509 -fingerprint` prints it (AB:CD:... upper case).
  std::string fingerprint(const tk::IssuedFiles& cert) {
    auto r = tk::run_command({"openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert.chain.string()});
    auto eq = r.output.find('=');
    if (r.exit_code != 0 || eq == std::string::npos) throw std::runtime_error("openssl x509: " + r.output);
    auto fp = r.output.substr(eq + 1);
    while (!fp.empty() && (fp.back() == '\n' || fp.back() == '\r')) fp.pop_back();
    return fp;
  }

  std::string dn_of(const SiteIdentity& id) const { return tk::cert_subject_rfc2253(id.chain); }

  std::unique_ptr<tk::HashUpstream> upstream_;
  tk::IssuedFiles listener_cert_;
  SiteIdentity a_, b_;
  tk::IssuedFiles ris_a_, ris_b_, ris_lyon_, ris_rogue_;
  std::unique_ptr<tk::TestPki> rogue_pki_;
};

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

TEST_F(DaemonTlsListener, client_allowed_for_a_by_certificate_cannot_get_b_by_header_path_or_both) {
  auto cfg = config({"header", "path"});
  cfg.extra_yaml = "clients:\n"
                   "  - name: ris-a\n    cert_sha256: \"" + fingerprint(ris_a_) + "\"\n    tenants: [\"" + kA + "\"]\n"
                   "  - name: ris-b\n    cert_subject: \"CN=RIS B,OU=" + kB + ",O=Groupe Exemple,ST=75,C=FR\"\n"
                   "    tenants: [\"" + kB + "\"]\n";
  TlsDaemon proxy(tmp_.subdir("proxy"), cfg, tls_yaml(true, false));

  // Positive controls: each certificate reaches its own site, by header and by path.
  auto a = curl(proxy.url("/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kA});
  ASSERT_EQ(a.response.status, 200) << a.output << proxy.log();
  EXPECT_EQ(a.response.header("X-Client-DN"), dn_of(a_));
  auto a_path = curl(proxy.url("/sites/" + kA + "/dmp/x"), &ris_a_);
  EXPECT_EQ(a_path.response.status, 200) << a_path.output;
  auto b = curl(proxy.url("/sites/" + kB + "/dmp/x"), &ris_b_);
  ASSERT_EQ(b.response.status, 200) << b.output << proxy.log();
  EXPECT_EQ(b.response.header("X-Client-DN"), dn_of(b_));
  const unsigned forwarded = upstream_->requests();
  EXPECT_EQ(forwarded, 3u);

  struct Attempt {
    const char* what;
    std::string path;
    std::vector<std::string> headers;
  };
  const std::vector<Attempt> attempts{
      {"header", "/dmp/x", {"-H", "X-Orgproxy-Tenant: " + kB}},
      {"path", "/sites/" + kB + "/dmp/x", {}},
      {"header and path", "/sites/" + kB + "/dmp/x", {"-H", "X-Orgproxy-Tenant: " + kB}},
      {"two headers", "/dmp/x", {"-H", "X-Orgproxy-Tenant: " + kB, "-H", "X-Orgproxy-Tenant: " + kB}},
  };
  for (auto const& at : attempts) {
    SCOPED_TRACE(at.what);
    auto r = curl(proxy.url(at.path), &ris_a_, at.headers);
    EXPECT_EQ(r.response.status, 403) << r.output;
    EXPECT_EQ(r.response.header("X-Orgproxy-Error"), "client_not_allowed");
  }
  // Selectors disagreeing stay tenant_ambiguous (selection runs before authorization).
  auto mixed = curl(proxy.url("/sites/" + kA + "/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kB});
  EXPECT_EQ(mixed.response.status, 403);
  EXPECT_EQ(mixed.response.header("X-Orgproxy-Error"), "tenant_ambiguous");
  // No certificate (optional on this listener) matches no rule: default deny. A certificate of a client
  // rule of B does not reach A either.
  auto anonymous = curl(proxy.url("/dmp/x"), nullptr, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(anonymous.response.status, 403) << anonymous.output;
  EXPECT_EQ(anonymous.response.header("X-Orgproxy-Error"), "client_not_allowed");
  auto b_for_a = curl(proxy.url("/dmp/x"), &ris_b_, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(b_for_a.response.status, 403);
  EXPECT_EQ(upstream_->requests(), forwarded) << "a refused request reached the upstream";
}

TEST_F(DaemonTlsListener, client_cert_selector_picks_the_tenant_by_fingerprint_or_ou_and_conflicts_are_403) {
  // RIS LYON's certificate (OU "RIS-LYON") is mapped to B by its fingerprint; site certificates by OU.
  auto cfg = config({"header", "{client_cert: {\"" + fingerprint(ris_lyon_) + "\": \"" + kB + "\", \"OU=" + kA +
                                    "\": \"" + kA + "\"}}"});
  TlsDaemon proxy(tmp_.subdir("proxy"), cfg, tls_yaml(true, false));

  auto by_fp = curl(proxy.url("/dmp/x"), &ris_lyon_);
  ASSERT_EQ(by_fp.response.status, 200) << by_fp.output << proxy.log();
  EXPECT_EQ(by_fp.response.header("X-Client-DN"), dn_of(b_));
  auto by_ou = curl(proxy.url("/dmp/x"), &ris_a_);
  ASSERT_EQ(by_ou.response.status, 200) << by_ou.output;
  EXPECT_EQ(by_ou.response.header("X-Client-DN"), dn_of(a_));
  auto agreeing = curl(proxy.url("/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(agreeing.response.status, 200) << agreeing.output;
  const unsigned forwarded = upstream_->requests();
  EXPECT_EQ(forwarded, 3u);

  auto conflict = curl(proxy.url("/dmp/x"), &ris_a_, {"-H", "X-Orgproxy-Tenant: " + kB});
  EXPECT_EQ(conflict.response.status, 403) << conflict.output;
  EXPECT_EQ(conflict.response.header("X-Orgproxy-Error"), "tenant_ambiguous");
  auto conflict_fp = curl(proxy.url("/dmp/x"), &ris_lyon_, {"-H", "X-Orgproxy-Tenant: " + kA});
  EXPECT_EQ(conflict_fp.response.status, 403);
  EXPECT_EQ(conflict_fp.response.header("X-Orgproxy-Error"), "tenant_ambiguous");
  // A certificate no rule knows yields nothing: without a header, no tenant.
  auto unknown = curl(proxy.url("/dmp/x"), &ris_b_);
  EXPECT_EQ(unknown.response.status, 400);
  EXPECT_EQ(unknown.response.header("X-Orgproxy-Error"), "tenant_missing");
  EXPECT_EQ(upstream_->requests(), forwarded) << "an ambiguous request reached the upstream";
}

TEST_F(DaemonTlsListener, client_connection_limit_survives_a_reload) {
  auto cfg = config({"header"});
  cfg.extra_yaml = "clients:\n  - name: local\n    cidr: 127.0.0.1/32\n    tenants: \"*\"\n    max_connections: 1\n";
  TlsDaemon proxy(tmp_.subdir("proxy"), cfg, "");
  const std::string plain = "http://127.0.0.1:" + std::to_string(proxy.port()) + "/dmp/x";

  auto held = std::make_unique<tk::HttpClient>("127.0.0.1", proxy.port());
  ASSERT_EQ(held->request(get(kA, "/dmp/x")).status, 200) << proxy.log();
  EXPECT_EQ(tk::http_request(proxy.port(), get(kA, "/dmp/x")).status, 429);  // the one slot is taken

  // Same limits, new snapshot: the held connection still counts.
  proxy.reload(cfg);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 2")) << proxy.log();
  auto after = tk::http_request(proxy.port(), get(kA, "/dmp/x"));
  EXPECT_EQ(after.status, 429) << "the reload forgot the held connection";
  EXPECT_EQ(after.header("X-Orgproxy-Error"), "rate_limited");
  EXPECT_EQ(held->request(get(kA, "/dmp/x")).status, 200);  // the holder keeps working on the new snapshot

  // A new limit applies to the kept counter: 2 slots, one held.
  auto wider = cfg;
  wider.extra_yaml = "clients:\n  - name: local\n    cidr: 127.0.0.1/32\n    tenants: \"*\"\n    max_connections: 2\n";
  proxy.reload(wider);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 3")) << proxy.log();
  EXPECT_EQ(tk::http_request(proxy.port(), get(kA, "/dmp/x")).status, 200);

  // Positive control: once the holder leaves, its slot is free again.
  held.reset();
  proxy.reload(cfg);
  ASSERT_TRUE(proxy.wait_for_log("reloaded: generation 4")) << proxy.log();
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {  // the daemon sees the close asynchronously
    freed = tk::http_request(proxy.port(), get(kA, "/dmp/x")).status == 200;
    if (!freed) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(freed) << proxy.log();
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

}  // namespace
}  // namespace orgproxy::daemon_it
