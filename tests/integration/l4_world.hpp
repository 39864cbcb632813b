// Shared by the L4 listener tests (tunnel, STARTTLS): the sites' world with an `mssante` identity per site
// (its DMP certificate and key, as an MS Santé operator would accept one), blocking loopback clients.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <filesystem>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "orgproxy/testkit/loopback_client.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"
#include "orgproxy/testkit/tls_script_server.hpp"

namespace orgproxy::l4test {

namespace tk = orgproxy::testkit;

inline constexpr const char* kA = "312345678200002";
inline constexpr const char* kB = "498765432103017";

/// The blocking loopback clients of the test kit, under the names these tests use.
using Client = tk::LoopbackClient;
using TlsClient = tk::LoopbackTlsClient;

/// `size` bytes of a pattern that shifts with `seed`: a truncated or reordered relay cannot match.
inline std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 31 + seed + i / 4096) & 0xff);
  return s;
}

/// Open descriptors of process `pid` (entries of /proc/<pid>/fd).
inline std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto const& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

/// The test sites, each with an `mssante` identity (its DMP certificate and key).
inline tk::OrgproxyConfig config_with_mssante(const tk::SiteWorld& world) {
  tk::OrgproxyConfig config = world.base_config();
  for (auto& t : config.tenants) {
    std::vector<tk::ConfigIdentity> extra;
    for (auto const& id : t.identities)
      if (id.purpose == "dmp") extra.push_back({"mssante", id.cert_file, id.key});
    t.identities.insert(t.identities.end(), extra.begin(), extra.end());
  }
  return config;
}

/// An L4 upstream of purpose mssante at 127.0.0.1:port.
inline tk::ConfigUpstream l4_upstream(std::string name, std::uint16_t port, std::string ca) {
  tk::ConfigUpstream u = tk::make_upstream(std::move(name), "", std::move(ca), "mssante");
  u.address = "127.0.0.1:" + std::to_string(port);
  return u;
}

/// The fixture of the L4 listener tests: a temporary directory named `dir_name` (removed with the fixture),
/// the three test sites with their mssante identities, the configuration each test adds its upstreams and
/// listeners to, and the daemon once started (killed with the fixture, whatever the test's outcome).
class L4Fixture : public ::testing::Test {
 protected:
  explicit L4Fixture(std::string_view dir_name) : tmp_(dir_name) {}
  void SetUp() override {
    world_ = std::make_unique<tk::SiteWorld>(tmp_.subdir("world"), tk::three_test_sites());
    config_ = config_with_mssante(*world_);
  }
  /// The test PKI's root bundle (PEM path): what the upstreams and the RIS clients trust.
  std::string ca() const { return world_->pki().ca_bundle_pem().string(); }
  /// A scripted TLS upstream with the world's server certificate, requiring a client certificate of the
  /// test PKI; `max_version` caps its TLS version (0: none).
  tk::TlsScriptOptions script_options(int max_version = 0) const {
    const auto& server = world_->upstream_server_cert();
    return {server.chain.string(), server.key.string(), ca(), max_version};
  }
  /// Starts the daemon on config_; returns the port of its first L4 listener.
  std::uint16_t start_daemon() {
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config_, world_->daemon_start());
    return daemon_->config().l4_listeners.front().port;
  }

  tk::TempDir tmp_;
  std::unique_ptr<tk::SiteWorld> world_;
  tk::OrgproxyConfig config_;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
};

/// What a scripted upstream saw of one tunnel in the half-close tests (field case C22).
struct HalfCloseSeen {
  std::string subject;     ///< the client certificate's subject: the site's
  std::string version;     ///< the TLS version negotiated
  std::size_t received = 0;
  bool clean_end = false;  ///< the client's end arrived as close_notify, not a bare FIN
  bool equal = false;      ///< the bytes received were exactly `request`
};

/// The upstream of the C22 tests: handshakes, reads to the client's end first (as a request/response
/// protocol that half-closes does), only then answers `reply`, close_notify and FIN; reports to `seen`.
inline tk::TlsScriptServer::Script read_all_then_reply(const std::string& request, const std::string& reply,
                                                       std::promise<HalfCloseSeen>& seen) {
  return [&request, &reply, &seen](tk::TlsScriptConn& c) {
    HalfCloseSeen s;
    if (c.start_tls()) {
      s.subject = c.peer_subject();
      s.version = c.version();
      const std::string got = c.read_to_end(&s.clean_end);
      s.received = got.size();
      s.equal = got == request;
      c.write(reply);
      c.close_notify();
      c.shut_wr();
    }
    seen.set_value(s);
  };
}

}  // namespace orgproxy::l4test
