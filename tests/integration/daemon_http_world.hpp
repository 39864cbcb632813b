// Fixture of the HTTP-semantics integration tests: the real daemon in front of a scripted upstream that
// writes exact bytes (daemon_scripted_upstream.hpp), tenant A routed /dmp → the upstream under /base.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "daemon_scripted_upstream.hpp"
#include "daemon_world.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {

using namespace std::chrono_literals;
inline const std::string kA(tk::kSiteA);

class DaemonHttp : public DaemonWorld {
 protected:
  /// Starts the daemon in front of `scripts` (tenant A, route /dmp → the scripted upstream under /base).
  void start(std::vector<ScriptedUpstream::Script> scripts, unsigned workers = 1,
             const std::string& header_timeout = "", const std::string& idle_timeout = "") {
    auto a = make_identity(kA, "dmp", kA, "Cabinet A");
    up_ = std::make_unique<ScriptedUpstream>(server_.chain.string(), server_.key.string(),
                                             pki_->ca_bundle_pem().string(), std::move(scripts));
    auto cfg = base_config(up_->url("/base"));
    cfg.workers = workers;
    cfg.upstreams[0].first_byte_timeout = "10s";
    cfg.listener_header_timeout = header_timeout;
    cfg.listener_idle_timeout = idle_timeout;
    add_tenant(cfg, kA, {{"dmp", a}});
    proxy_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("proxy"), cfg);
  }
  std::string request_head(const std::string& method, const std::string& extra = "") const {
    return method + " /dmp/x HTTP/1.1\r\nHost: orgproxy.local\r\nX-Orgproxy-Tenant: " + kA + "\r\n" + extra +
           "\r\n";
  }
  void TearDown() override {
    proxy_.reset();  // the daemon first: it holds connections to the upstream
    up_.reset();
  }
  std::unique_ptr<ScriptedUpstream> up_;
  std::unique_ptr<tk::OrgproxyProcess> proxy_;
};

inline const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: 5\r\n\r\nhello";

}  // namespace orgproxy::daemon_it
