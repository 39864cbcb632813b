// Shared by the downstream TLS listener tests (issue 4 points 1–3): the daemon started with a `tls` mapping
// in its listener, a hash upstream reporting the site certificate it saw, the sites' identities, and RIS
// client certificates (one per site, one serving no single site, one from an unrelated PKI); curl (its own
// TLS stack) as the client.
#pragma once

#include <signal.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "daemon_world.hpp"
#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/curl.hpp"
#include "orgproxy/testkit/net.hpp"

namespace orgproxy::daemon_it {

inline const std::string kTlsA = "312345678200002";  // 3 + SIRET
inline const std::string kTlsB = "498765432103017";  // 4 + RPPS + rang

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
    if (!tk::wait_for_port("127.0.0.1", cfg_.port, std::chrono::seconds(30), [this] { return process_->running(); }))
      throw std::runtime_error("orgproxy did not listen:\n" + process_->log());
  }
  std::uint16_t port() const { return cfg_.port; }
  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(cfg_.port) + path;
  }
  std::string log() const { return process_->log(); }
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
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
    a_ = make_identity(kTlsA, "dmp", kTlsA, "Cabinet A");
    b_ = make_identity(kTlsB, "dmp", kTlsB, "Cabinet B");
    // RIS client certificates: one per site (OU = the site), one of a RIS serving no single site, and one
    // from an unrelated PKI.
    ris_a_ = client_cert(*pki_, kTlsA, "RIS A");
    ris_b_ = client_cert(*pki_, kTlsB, "RIS B");
    ris_lyon_ = client_cert(*pki_, "RIS-LYON", "RIS LYON");
    rogue_pki_ = std::make_unique<tk::TestPki>(tk::TestPki::rogue(tmp_.subdir("rogue")));
    ris_rogue_ = client_cert(*rogue_pki_, kTlsA, "RIS A");
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
    add_tenant(cfg, kTlsA, {{"dmp", a_}});
    add_tenant(cfg, kTlsB, {{"dmp", b_}});
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

}  // namespace orgproxy::daemon_it
