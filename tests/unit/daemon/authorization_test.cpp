// Client authorization and the `source` selector's longest-prefix match (DESIGN.md "Client").
#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>

#include "orgproxy/daemon/authorization.hpp"

namespace orgproxy::daemon {
namespace {

namespace http = boost::beast::http;
const std::string kA = "312345678200002";
const std::string kB = "498765432103017";

config::IpNetwork net(const std::string& addr, unsigned prefix) {
  config::IpNetwork n;
  auto a = boost::asio::ip::make_address(addr);
  auto p = PeerAddress::from(a);
  std::copy(p.bytes.begin(), p.bytes.end(), n.bytes.begin());
  n.v6 = a.is_v6();
  n.prefix_len = prefix;
  n.text = addr + "/" + std::to_string(prefix);
  return n;
}

PeerAddress peer(const std::string& addr) { return PeerAddress::from(boost::asio::ip::make_address(addr)); }

config::Client client(std::string name, std::vector<config::IpNetwork> cidrs, std::vector<std::string> tenants) {
  config::Client c;
  c.name = std::move(name);
  c.cidrs = std::move(cidrs);
  c.tenants = std::move(tenants);
  c.all_upstreams = true;
  return c;
}

TEST(ClientAuthorization, no_rules_allow_everything_under_the_loopback_rule) {
  http::fields f;
  auto d = authorize_client({}, peer("127.0.0.1"), f, kA, "dmp");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.client, nullptr);
}

TEST(ClientAuthorization, first_matching_rule_decides_and_default_is_deny) {
  std::vector<config::Client> rules{client("site-a-lan", {net("10.1.0.0", 16)}, {kA}),
                                    client("group-lan", {net("10.0.0.0", 8)}, {kA, kB})};
  http::fields f;
  auto a = authorize_client(rules, peer("10.1.2.3"), f, kA, "dmp");
  EXPECT_TRUE(a.allowed);
  ASSERT_NE(a.client, nullptr);
  EXPECT_EQ(a.client->name, "site-a-lan");
  // The first match is final: site A's LAN may not act for B even though a later rule would allow it.
  auto forged = authorize_client(rules, peer("10.1.2.3"), f, kB, "dmp");
  EXPECT_FALSE(forged.allowed);
  EXPECT_EQ(forged.client->name, "site-a-lan");
  EXPECT_TRUE(authorize_client(rules, peer("10.2.0.1"), f, kB, "dmp").allowed);
  auto stranger = authorize_client(rules, peer("192.168.1.1"), f, kA, "dmp");
  EXPECT_FALSE(stranger.allowed);
  EXPECT_EQ(stranger.client, nullptr);
}

TEST(ClientAuthorization, ipv4_mapped_peers_match_ipv4_networks) {
  std::vector<config::Client> rules{client("lan", {net("10.1.0.0", 16)}, {kA})};
  http::fields f;
  EXPECT_TRUE(authorize_client(rules, peer("::ffff:10.1.0.9"), f, kA, "dmp").allowed);
}

TEST(ClientAuthorization, bearer_token_is_matched_by_its_sha256_and_every_criterion_must_hold) {
  auto c = client("ris", {net("10.1.0.0", 16)}, {kA});
  c.bearer_sha256 = {sha256_hex("s3cret-token")};
  std::vector<config::Client> rules{c};
  http::fields good;
  good.set(http::field::authorization, "Bearer s3cret-token");
  auto d = authorize_client(rules, peer("10.1.0.5"), good, kA, "dmp");
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.used_bearer);
  EXPECT_FALSE(authorize_client(rules, peer("10.9.0.5"), good, kA, "dmp").allowed);  // right token, wrong net
  http::fields bad;
  bad.set(http::field::authorization, "Bearer s3cret-tokeN");
  EXPECT_FALSE(authorize_client(rules, peer("10.1.0.5"), bad, kA, "dmp").allowed);
  http::fields none;
  EXPECT_FALSE(authorize_client(rules, peer("10.1.0.5"), none, kA, "dmp").allowed);
}

TEST(ClientAuthorization, upstream_restrictions_apply) {
  auto c = client("insi-only", {net("10.1.0.0", 16)}, {kA});
  c.all_upstreams = false;
  c.upstreams = {"insi"};
  std::vector<config::Client> rules{c};
  http::fields f;
  EXPECT_TRUE(authorize_client(rules, peer("10.1.0.5"), f, kA, "insi").allowed);
  EXPECT_FALSE(authorize_client(rules, peer("10.1.0.5"), f, kA, "dmp").allowed);
}

TEST(SourceSelector, longest_prefix_wins) {
  std::vector<config::SourceTenantRule> rules{{net("10.0.0.0", 8), kB, {}}, {net("10.1.0.0", 16), kA, {}}};
  EXPECT_EQ(source_tenant(rules, peer("10.1.2.3")), kA);
  EXPECT_EQ(source_tenant(rules, peer("10.2.2.3")), kB);
  EXPECT_EQ(source_tenant(rules, peer("11.1.2.3")), "");
}

TEST(ClientLimits, request_rate_allows_the_burst_then_refills_at_the_rate) {
  std::vector<config::Client> rules{client("ris", {net("10.0.0.0", 8)}, {kA})};
  rules[0].rate = 10;  // one request per 100 ms
  rules[0].burst = 2;
  ClientLimiter limits(rules);
  const std::int64_t t0 = 1'000'000'000'000;
  EXPECT_TRUE(limits.admit_request(rules[0], t0));
  EXPECT_TRUE(limits.admit_request(rules[0], t0));
  EXPECT_FALSE(limits.admit_request(rules[0], t0));
  EXPECT_FALSE(limits.admit_request(rules[0], t0 + 50'000'000));
  EXPECT_TRUE(limits.admit_request(rules[0], t0 + 100'000'000));
  EXPECT_FALSE(limits.admit_request(rules[0], t0 + 100'000'000));
  EXPECT_TRUE(limits.admit_request(rules[0], t0 + 10'000'000'000));  // long idle: the burst is back
  EXPECT_TRUE(limits.admit_request(rules[0], t0 + 10'000'000'000));
}

TEST(ClientLimits, clients_without_limits_are_never_refused) {
  std::vector<config::Client> rules{client("ris", {net("10.0.0.0", 8)}, {kA})};
  ClientLimiter limits(rules);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limits.admit_request(rules[0], 1));
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limits.open_connection(rules[0]));
}

TEST(ClientLimits, max_connections_counts_per_client) {
  std::vector<config::Client> rules{client("a", {net("10.1.0.0", 16)}, {kA}), client("b", {net("10.2.0.0", 16)}, {kB})};
  rules[0].max_connections = 2;
  rules[1].max_connections = 1;
  ClientLimiter limits(rules);
  EXPECT_TRUE(limits.open_connection(rules[0]));
  EXPECT_TRUE(limits.open_connection(rules[0]));
  EXPECT_FALSE(limits.open_connection(rules[0]));
  EXPECT_TRUE(limits.open_connection(rules[1]));  // another client's budget is separate
  limits.close_connection(rules[0]);
  EXPECT_TRUE(limits.open_connection(rules[0]));
}

TEST(Sha256Hex, matches_the_known_vector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace orgproxy::daemon
