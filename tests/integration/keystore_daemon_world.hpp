// The world of the keystore's daemon-level tests: two SoftHSM tokens ("Cabinet A" and "Cabinet B", one user
// PIN, one softhsm2.conf) that the real daemon reaches through the project's fault-injecting PKCS#11 module
// (tests/support/p11shim), a test PKI, the real nginx as the mutual-TLS national endpoint, and helpers to
// command token faults and read the shim's call log (one line per C_Login / C_SignInit ..., never a PIN).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/site_ids.hpp"
#include "orgproxy/testkit/softhsm_token.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace orgproxy::keystore_it {

namespace tk = orgproxy::testkit;

inline constexpr const char* kUserPin = "keystore-it-pin-2468";

/// One site's `dmp` identity as the daemon's configuration names it and as nginx should report it.
struct TokenSite {
  std::string tenant;
  std::string chain;    ///< certificate chain file (leaf then intermediate)
  std::string key_uri;  ///< pkcs11: URI of the key in its token
  std::string dn;       ///< RFC 2253, nginx's $ssl_client_s_dn
  std::string serial;   ///< nginx's $ssl_client_serial
  std::string key_id;   ///< CKA_ID, raw bytes
};

/// A GET of `path` for `tenant` (selection header) on a fresh connection to the daemon.
inline tk::HttpResponse get(std::uint16_t port, const std::string& tenant, const std::string& path = "/dmp/x") {
  tk::HttpRequest r;
  r.target = path;
  r.headers = {{"X-Orgproxy-Tenant", tenant}};
  return tk::http_request(port, r);
}

class KeystoreDaemonWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    // Tokens first: SoftHSM reads its configuration at the first C_Initialize of this process.
    token_a_ = std::make_unique<tk::SoftHsmToken>(tmp_.subdir("hsm"), "Cabinet A", kUserPin);
    token_b_ = std::make_unique<tk::SoftHsmToken>(tmp_.subdir("hsm"), "Cabinet B", kUserPin);
    pki_ = std::make_unique<tk::TestPki>(tmp_.subdir("pki"));
    server_ = pki_->issue_server_cert("upstream", {"localhost"}, {"127.0.0.1"});
    control_ = tmp_.path() / "shim.control";
    shim_log_ = tmp_.path() / "shim.log";
  }

  /// Generates a key of `type` in `token` (non-extractable, sensitive) and issues its ORG certificate
  /// (OU = `tenant`, CN = `cn`).
  TokenSite make_site(tk::SoftHsmToken& token, const std::string& tenant, tk::KeyType type = tk::KeyType::rsa2048,
                      const std::string& cn = "Cabinet de radiologie") {
    tk::TokenKeyOptions k;
    k.type = type;
    k.id = std::string(1, static_cast<char>(++key_counter_));
    k.label = tenant + "-dmp";
    tk::TokenKey key = token.generate_key(k);
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet " + tenant, tenant, cn};
    o.file_stem = tenant + "-dmp-" + std::to_string(key_counter_);
    const auto chain = pki_->issue_org_cert(key.public_key.get(), o);
    return {tenant, chain.string(), key.uri, tk::cert_subject_rfc2253(chain), tk::cert_serial_hex(chain), k.id};
  }

  /// The real nginx requiring a client certificate from the test PKI; `extra` = raw server directives.
  std::unique_ptr<tk::NginxUpstream> start_nginx(tk::TlsProtocols protocols, const std::string& extra = {}) {
    tk::NginxServerOptions s;
    s.name = "dmp";
    s.cert_file = server_.chain.string();
    s.key_file = server_.key.string();
    s.client_ca_file = pki_->ca_bundle_pem().string();
    s.protocols = protocols;
    s.extra_directives = extra;
    return std::make_unique<tk::NginxUpstream>(tmp_.subdir("nginx-" + std::to_string(++nginx_counter_)), s);
  }

  /// Daemon configuration: the shim as the PKCS#11 module, one PIN file, one tenant per site, and
  /// `upstreams` upstreams dmp, dmp2, dmp3... all at `url`, routed from /dmp, /dmp2, /dmp3...
  /// Connections and TLS sessions are pooled per (tenant, identity, upstream), so a request through an
  /// upstream a tenant has not used yet always makes a full handshake, hence a signature in the token.
  tk::OrgproxyConfig config(const std::string& url, const std::vector<TokenSite>& sites, int upstreams = 1) const {
    tk::OrgproxyConfig c;
    c.module_path = ORGPROXY_P11SHIM;
    c.pin_file = token_a_->pin_file().string();
    c.workers = 2;
    for (int i = 1; i <= upstreams; ++i) {
      const std::string name = i == 1 ? "dmp" : "dmp" + std::to_string(i);
      c.upstreams.push_back(tk::make_upstream(name, url, pki_->ca_bundle_pem().string(), "dmp"));
      c.routes.push_back({"/" + name, name});
    }
    for (const auto& s : sites)
      c.tenants.push_back({s.tenant, "Cabinet " + s.tenant, "", "", {{"dmp", s.chain, s.key_uri}}});
    return c;
  }

  /// Start options: the tokens' softhsm2.conf, the shim's control file and call log.
  tk::OrgproxyStart start() const {
    tk::OrgproxyStart s;
    s.env.emplace_back("SOFTHSM2_CONF", token_a_->conf_path().string());
    s.env.emplace_back("ORGPROXY_P11SHIM_CONTROL", control_.string());
    s.env.emplace_back("ORGPROXY_P11SHIM_LOG", shim_log_.string());
    return s;
  }

  /// Replaces the shim's rules (a new file each time: its one-shot actions run once per version).
  void command(const std::string& rules) const {
    auto next = control_;
    next += ".new";
    tk::write_file(next, rules + "\n");
    std::filesystem::rename(next, control_);
  }

  /// Lines of the shim's call log for `function` on `token` ("" = any token).
  std::vector<std::string> shim_lines(const std::string& function, const std::string& token = {}) const {
    std::vector<std::string> out;
    std::ifstream in(shim_log_);
    for (std::string line; std::getline(in, line);)
      if (line.rfind(function + " ", 0) == 0 && (token.empty() || line.find(" " + token + " ") != std::string::npos))
        out.push_back(line);
    return out;
  }
  int shim_calls(const std::string& function, const std::string& token = {}) const {
    return static_cast<int>(shim_lines(function, token).size());
  }

  tk::TempDir tmp_{"keystore-it"};
  std::unique_ptr<tk::SoftHsmToken> token_a_, token_b_;
  std::unique_ptr<tk::TestPki> pki_;
  tk::IssuedFiles server_;
  std::filesystem::path control_, shim_log_;
  int key_counter_ = 0;
  int nginx_counter_ = 0;
};

}  // namespace orgproxy::keystore_it
