// The world the daemon's own integration tests run in: a test PKI, a SoftHSM token holding one non-extractable
// key per site, ORG certificates for those keys, and helpers to write the daemon's configuration.
// Everything lives in one TempDir; servers listen on loopback ports chosen at run time.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/nginx_upstream.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/site_ids.hpp"
#include "orgproxy/testkit/softhsm_token.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace orgproxy::daemon_it {

namespace tk = orgproxy::testkit;

/// One site's identity: certificate chain file (leaf + intermediate) and the pkcs11: URI of its key.
struct SiteIdentity {
  std::string tenant;
  std::string chain;
  std::string key_uri;
};

class DaemonWorld : public ::testing::Test {
 protected:
  /// Options of a HashUpstream presenting the test server certificate and trusting the test root.
  tk::HashUpstreamOptions hash_options() const {
    return {server_.chain.string(), server_.key.string(), pki_->ca_bundle_pem().string()};
  }
  /// The nginx upstream `dmp`: presenting `server` (the test server certificate by default), requiring a
  /// client certificate that chains to the test root.
  tk::NginxServerOptions nginx_options(const tk::IssuedFiles& server) const {
    tk::NginxServerOptions s;
    s.name = "dmp";
    s.cert_file = server.chain.string();
    s.key_file = server.key.string();
    s.client_ca_file = pki_->ca_bundle_pem().string();
    return s;
  }
  tk::NginxServerOptions nginx_options() const { return nginx_options(server_); }
  /// A GET of `target` naming `tenant` in the selection header.
  static tk::HttpRequest get(const std::string& tenant, const std::string& target) {
    tk::HttpRequest r;
    r.target = target;
    r.headers = {{"X-Orgproxy-Tenant", tenant}};
    return r;
  }

  void SetUp() override {
    // The token first: SoftHSM reads its configuration at the first C_Initialize of this process.
    token_ = std::make_unique<tk::SoftHsmToken>(tmp_.subdir("token"), "orgproxy-it", "it-pin-1234");
    pki_ = std::make_unique<tk::TestPki>(tmp_.subdir("pki"));
    server_ = pki_->issue_server_cert("upstream", {"localhost", "dmp.test.local"}, {"127.0.0.1"});
  }

  /// Generates a key in the token and issues an ORG certificate for it with OU = `ou` (the tenant id
  /// unless a test wants a mismatch).
  SiteIdentity make_identity(const std::string& tenant, const std::string& purpose, const std::string& ou,
                             const std::string& cn) {
    tk::TokenKeyOptions k;
    k.id = std::string(1, static_cast<char>(++key_counter_));
    k.label = tenant + "-" + purpose;
    tk::TokenKey key = token_->generate_key(k);
    tk::OrgCertOptions o;
    o.subject = {"75", "Cabinet " + tenant, ou, cn};
    o.file_stem = tenant + "-" + purpose + "-" + std::to_string(key_counter_);
    auto chain = pki_->issue_org_cert(key.public_key.get(), o);
    return {tenant, chain.string(), key.uri};
  }

  /// A config with one listener (header and path selectors), the given upstream and a /dmp route.
  tk::OrgproxyConfig base_config(const std::string& upstream_url) const {
    tk::OrgproxyConfig c;
    c.selectors = {"header", "path"};
    c.pin_file = token_->pin_file().string();
    c.workers = 2;
    tk::ConfigUpstream u;
    u.name = "dmp";
    u.url = upstream_url;
    u.ca_file = pki_->ca_bundle_pem().string();
    u.purpose = "dmp";
    u.environment = "test";
    c.upstreams.push_back(u);
    c.routes.push_back({"/dmp", "dmp"});
    return c;
  }

  static void add_tenant(tk::OrgproxyConfig& c, const std::string& id,
                         std::vector<std::pair<std::string, SiteIdentity>> identities) {
    tk::ConfigTenant t;
    t.id = id;
    t.name = "Cabinet " + id;
    for (auto& [purpose, ident] : identities) t.identities.push_back({purpose, ident.chain, ident.key_uri});
    c.tenants.push_back(std::move(t));
  }

  tk::TempDir tmp_{"daemon-it"};
  std::unique_ptr<tk::SoftHsmToken> token_;
  std::unique_ptr<tk::TestPki> pki_;
  tk::IssuedFiles server_;
  int key_counter_ = 0;
};

}  // namespace orgproxy::daemon_it
