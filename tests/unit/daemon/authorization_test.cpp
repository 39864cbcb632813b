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

namespace orgproxy::daemon {
namespace {

PeerCertificate cert_of(std::string sha256, std::string subject, std::vector<std::string> ous) {
  return {std::move(sha256), std::move(subject), std::move(ous)};
}

TEST(ClientAuthorization, certificate_criteria_match_only_the_presented_certificate) {
  const std::string fp_a(64, 'a');
  auto by_fp = client("ris-a", {}, {kA});
  by_fp.cert_sha256 = {fp_a};
  auto by_subject = client("ris-b", {}, {kB});
  by_subject.cert_subjects = {"CN=RIS B,OU=" + kB + ",O=Groupe Exemple,C=FR"};
  std::vector<config::Client> rules{by_fp, by_subject};
  http::fields f;
  const auto a = cert_of(fp_a, "CN=RIS A,OU=" + kA + ",O=Groupe Exemple,C=FR", {kA});
  const auto b = cert_of(std::string(64, 'b'), "CN=RIS B,OU=" + kB + ",O=Groupe Exemple,C=FR", {kB});

  auto a_for_a = authorize_client(rules, peer("10.0.0.1"), f, kA, "dmp", &a);
  EXPECT_TRUE(a_for_a.allowed);
  ASSERT_NE(a_for_a.client, nullptr);
  EXPECT_EQ(a_for_a.client->name, "ris-a");
  EXPECT_FALSE(authorize_client(rules, peer("10.0.0.1"), f, kB, "dmp", &a).allowed);
  EXPECT_TRUE(authorize_client(rules, peer("10.0.0.1"), f, kB, "dmp", &b).allowed);
  EXPECT_FALSE(authorize_client(rules, peer("10.0.0.1"), f, kA, "dmp", &b).allowed);
  // No certificate: certificate rules never match (default deny).
  auto none = authorize_client(rules, peer("10.0.0.1"), f, kA, "dmp", nullptr);
  EXPECT_FALSE(none.allowed);
  EXPECT_EQ(none.client, nullptr);
  // A subject differing only in order or spacing is another subject.
  const auto reordered = cert_of(std::string(64, 'c'), "C=FR,O=Groupe Exemple,OU=" + kB + ",CN=RIS B", {kB});
  EXPECT_FALSE(authorize_client(rules, peer("10.0.0.1"), f, kB, "dmp", &reordered).allowed);
}

TEST(ClientAuthorization, certificate_and_cidr_must_both_hold) {
  auto c = client("ris-a-lan", {net("10.1.0.0", 16)}, {kA});
  c.cert_sha256 = {std::string(64, 'a')};
  std::vector<config::Client> rules{c};
  http::fields f;
  const auto a = cert_of(std::string(64, 'a'), "CN=x", {});
  EXPECT_TRUE(authorize_client(rules, peer("10.1.0.9"), f, kA, "dmp", &a).allowed);
  EXPECT_FALSE(authorize_client(rules, peer("10.2.0.9"), f, kA, "dmp", &a).allowed);
  EXPECT_FALSE(authorize_client(rules, peer("10.1.0.9"), f, kA, "dmp", nullptr).allowed);
}

TEST(ClientCertSelector, rules_by_fingerprint_and_ou_vote_and_disagreement_is_a_conflict) {
  config::ClientCertTenantRule fp_rule{config::ClientCertTenantRule::Match::sha256, std::string(64, 'f'), kB, {}};
  config::ClientCertTenantRule ou_rule{config::ClientCertTenantRule::Match::ou, kA, kA, {}};
  std::vector<config::ClientCertTenantRule> rules{fp_rule, ou_rule};
  const auto lyon = cert_of(std::string(64, 'f'), "CN=RIS LYON", {"RIS-LYON"});
  EXPECT_EQ(client_cert_tenant(rules, &lyon).tenant, kB);
  const auto a = cert_of(std::string(64, '1'), "CN=RIS A", {kA});
  EXPECT_EQ(client_cert_tenant(rules, &a).tenant, kA);
  const auto both = cert_of(std::string(64, 'f'), "CN=odd", {kA});  // fingerprint says B, OU says A
  EXPECT_TRUE(client_cert_tenant(rules, &both).conflict);
  const auto unknown = cert_of(std::string(64, '2'), "CN=RIS B", {kB});
  EXPECT_TRUE(client_cert_tenant(rules, &unknown).tenant.empty());
  EXPECT_TRUE(client_cert_tenant(rules, nullptr).tenant.empty());
}

TEST(ClientCertSelector, without_rules_the_ou_is_the_tenant) {
  const auto a = cert_of(std::string(64, '1'), "CN=RIS A", {kA});
  auto r = client_cert_tenant({}, &a);
  EXPECT_EQ(r.tenant, kA);
  EXPECT_FALSE(r.conflict);
  const auto two = cert_of(std::string(64, '1'), "CN=RIS", {kA, kB});
  EXPECT_TRUE(client_cert_tenant({}, &two).conflict);
}

TEST(ClientLimits, a_reload_keeps_counters_by_client_name_and_applies_the_new_limits) {
  std::vector<config::Client> old_rules{client("ris", {net("10.0.0.0", 8)}, {kA}), client("gone", {}, {kA})};
  old_rules[0].rate = 10;
  old_rules[0].burst = 2;
  old_rules[0].max_connections = 1;
  ClientLimiter old_limits(old_rules);
  const std::int64_t t0 = 1'000'000'000'000;
  EXPECT_TRUE(old_limits.admit_request(old_rules[0], t0));
  EXPECT_TRUE(old_limits.admit_request(old_rules[0], t0));
  EXPECT_TRUE(old_limits.open_connection(old_rules[0]));

  // The new snapshot lists the client elsewhere in the file, with a wider connection limit.
  std::vector<config::Client> new_rules{client("new", {}, {kB}), old_rules[0]};
  new_rules[1].max_connections = 2;
  ClientLimiter new_limits(new_rules, &old_limits);
  EXPECT_FALSE(new_limits.admit_request(new_rules[1], t0)) << "the reload refilled the bucket";
  EXPECT_EQ(new_limits.connections(new_rules[1]), 1u);
  EXPECT_TRUE(new_limits.open_connection(new_rules[1]));
  EXPECT_FALSE(new_limits.open_connection(new_rules[1]));
  old_limits.close_connection(old_rules[0]);  // a connection counted under the old snapshot ends
  EXPECT_EQ(new_limits.connections(new_rules[1]), 1u);
  EXPECT_TRUE(new_limits.admit_request(new_rules[1], t0 + 100'000'000));  // refills at the rate
  // A client new in this snapshot starts afresh (positive control for the handover).
  new_rules[0].max_connections = 1;
  EXPECT_TRUE(new_limits.open_connection(new_rules[0]));
}

}  // namespace
}  // namespace orgproxy::daemon
