// Field case C15 at the wire: the client Certificate message the daemon sends upstream holds exactly
// [leaf, intermediate], in that order, never the root, with TLS 1.2 and TLS 1.3 (read on the upstream's side
// after the handshake: in TLS 1.3 the message is encrypted on the wire). (b) a chain file listing the
// intermediate first, or carrying the root too, sends the same two certificates; (c) a chain file without
// the intermediate (and none on the token) makes the identity unavailable at load, with a message naming
// the tenant and purpose, and no connection reaches the upstream. The upstream trusts the root only.
// Real daemon, keys in a SoftHSM token, an L4 tunnel listener to a TLS script server.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "l4_world.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/tls_script_server.hpp"

namespace tk = orgproxy::testkit;
using namespace orgproxy::l4test;
using namespace std::chrono_literals;

namespace {

using Subjects = std::vector<std::string>;

/// The PEM certificate blocks of `file`, in file order.
std::vector<std::string> pem_blocks(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  const std::string begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----";
  std::vector<std::string> blocks;
  for (auto at = text.find(begin); at != std::string::npos; at = text.find(begin, at + 1)) {
    const auto stop = text.find(end, at);
    if (stop == std::string::npos) break;
    blocks.push_back(text.substr(at, stop + end.size() - at) + "\n");
  }
  return blocks;
}

class ClientChain : public L4Fixture {
 protected:
  ClientChain() : L4Fixture("client-chain") {}
  void SetUp() override {
    L4Fixture::SetUp();
    leaf_ = world_->site(kA).identity("dmp").subject_dn;
    intermediate_ = tk::cert_subject_rfc2253(world_->pki().intermediate_pem());
    root_ = tk::cert_subject_rfc2253(world_->pki().root_pem());
  }
  /// A TLS script server (at most `max_version`) that records each client's Certificate message, then
  /// answers "ok" and closes.
  std::unique_ptr<tk::TlsScriptServer> recording_upstream(int max_version) {
    return std::make_unique<tk::TlsScriptServer>(script_options(max_version), [this](tk::TlsScriptConn& c) {
      const bool ok = c.start_tls();
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(ok ? c.peer_chain_subjects() : Subjects{});
        versions_.push_back(c.version());
      }
      if (!ok) return;
      c.write("ok\n");
      c.close_notify();
      c.shut_wr();
    });
  }
  /// The mssante identity of `site` reads its chain from `file`.
  void use_chain_file(const std::string& site, const std::filesystem::path& file) {
    for (auto& t : config_.tenants)
      if (t.id == site)
        for (auto& id : t.identities)
          if (id.purpose == "mssante") id.cert_file = file.string();
  }
  /// The dmp chain file of `site` rewritten as the PEM blocks `order` picks (0 = leaf, 1 = intermediate),
  /// optionally followed by the root.
  std::filesystem::path chain_file(const std::string& site, const std::string& name, const std::vector<int>& order,
                                   bool with_root) {
    const auto blocks = pem_blocks(world_->site(site).identity("dmp").cert_file);
    EXPECT_EQ(blocks.size(), 2u) << "the test PKI writes leaf then intermediate";
    const auto path = tmp_.subdir("chains") / name;
    std::ofstream out(path);
    for (int i : order) out << blocks.at(static_cast<std::size_t>(i));
    if (with_root) out << pem_blocks(world_->pki().root_pem()).at(0);
    return path;
  }
  /// Tunnel listener `name` of `tenant` to `server`.
  void add_tunnel(const std::string& name, const std::string& tenant, const tk::TlsScriptServer& server) {
    config_.upstreams.push_back(l4_upstream(name, server.port(), ca()));
    config_.l4_listeners.push_back({name, "tunnel", tenant, name, 0, "", 0, ""});
  }
  void start() { start_daemon(); }
  std::string exchange(const std::string& listener) {
    for (const auto& l : daemon_->config().l4_listeners)
      if (l.name == listener) {
        Client client(l.port);
        client.shut_wr();
        bool eof = false;
        return client.read_to_eof(&eof);
      }
    ADD_FAILURE() << "no listener " << listener;
    return {};
  }
  Subjects seen(std::size_t i) {
    std::lock_guard lock(mutex_);
    return i < seen_.size() ? seen_[i] : Subjects{};
  }
  std::string version(std::size_t i) {
    std::lock_guard lock(mutex_);
    return i < versions_.size() ? versions_[i] : "";
  }

  std::string leaf_, intermediate_, root_;
  std::mutex mutex_;
  std::vector<Subjects> seen_;
  std::vector<std::string> versions_;
};

}  // namespace

TEST_F(ClientChain, certificate_message_is_exactly_leaf_then_intermediate_with_tls12_and_tls13) {
  auto tls12 = recording_upstream(TLS1_2_VERSION);
  auto tls13 = recording_upstream(0);
  add_tunnel("mss-tls12", kA, *tls12);
  add_tunnel("mss-tls13", kA, *tls13);
  start();

  ASSERT_EQ(exchange("mss-tls12"), "ok\n") << daemon_->log();
  ASSERT_EQ(exchange("mss-tls13"), "ok\n") << daemon_->log();
  ASSERT_EQ(version(0), "TLSv1.2");
  ASSERT_EQ(version(1), "TLSv1.3");
  const Subjects expected{leaf_, intermediate_};
  EXPECT_EQ(seen(0), expected) << "TLS 1.2";
  EXPECT_EQ(seen(1), expected) << "TLS 1.3";
  ASSERT_NE(root_, intermediate_);
  for (std::size_t i = 0; i < 2; ++i)
    for (const auto& s : seen(i)) EXPECT_NE(s, root_) << "the root is never sent";
}

TEST_F(ClientChain, chain_file_with_the_intermediate_first_or_the_root_appended_still_sends_leaf_then_intermediate) {
  auto reordered_upstream = recording_upstream(0);
  auto with_root_upstream = recording_upstream(TLS1_2_VERSION);
  add_tunnel("mss-reordered", kA, *reordered_upstream);
  add_tunnel("mss-with-root", kB, *with_root_upstream);
  use_chain_file(kA, chain_file(kA, "a-intermediate-then-leaf.pem", {1, 0}, false));
  use_chain_file(kB, chain_file(kB, "b-leaf-intermediate-root.pem", {0, 1}, true));
  start();

  ASSERT_EQ(exchange("mss-reordered"), "ok\n") << daemon_->log();
  ASSERT_EQ(exchange("mss-with-root"), "ok\n") << daemon_->log();
  EXPECT_EQ(seen(0), (Subjects{leaf_, intermediate_})) << "(b) reordered at load";
  EXPECT_EQ(seen(1), (Subjects{world_->site(kB).identity("dmp").subject_dn, intermediate_}))
      << "the root in the file is not sent";
}

TEST_F(ClientChain, chain_file_without_the_intermediate_makes_the_identity_unavailable_at_load_naming_tenant_and_purpose) {
  auto upstream = recording_upstream(0);
  auto control_upstream = recording_upstream(0);
  add_tunnel("mss-leaf-only", kA, *upstream);
  add_tunnel("mss-control", kB, *control_upstream);
  use_chain_file(kA, chain_file(kA, "leaf-only.pem", {0}, false));
  start();

  // At start, before any connection: the tenant, the purpose, the file, and why.
  EXPECT_TRUE(daemon_->wait_for_log("tenant " + std::string(kA) + " purpose mssante (" +
                                    (tmp_.path() / "chains" / "leaf-only.pem").string() +
                                    "): identity unavailable: chain does not verify to the CA bundle"))
      << daemon_->log();
  EXPECT_EQ(exchange("mss-leaf-only"), "");
  EXPECT_TRUE(daemon_->wait_for_log("identity_unavailable")) << daemon_->log();
  EXPECT_EQ(upstream->accepted(), 0u) << "no handshake with an incomplete chain";

  // Positive control: site B's complete chain on the same kind of listener.
  EXPECT_EQ(exchange("mss-control"), "ok\n") << daemon_->log();
  EXPECT_EQ(seen(0), (Subjects{world_->site(kB).identity("dmp").subject_dn, intermediate_}));
}
