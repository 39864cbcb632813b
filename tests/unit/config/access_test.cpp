// The group schema: tenant_groups, clients (who may act for which tenants), admin, logging, crl_files.
#include <arpa/inet.h>

#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

const std::string kA = "312345678200002", kB = "498765432103017", kC = "499700270616011";

// Three sites, a public listener, one upstream; clients are appended from line 13.
const std::string kGroupHead = yaml(R"(
listeners: [{ name: ris, address: 0.0.0.0, port: 8080 }]
upstreams:
  dmp: { url: "https://d.example", ca_file: ca.pem, environment: test, purpose: dmp }
  insi: { url: "https://i.example", ca_file: ca.pem, environment: test, purpose: insi-auto }
tenants:
  - { id: "312345678200002" }
  - { id: "498765432103017" }
  - { id: "499700270616011" }
tenant_groups:
  paris: ["312345678200002", "498765432103017"]
  lyon: ["499700270616011"]
clients:
)");

const std::string kHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";  // sha256("test")

std::array<std::uint8_t, 16> v6(const char* text) {
  std::array<std::uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1);
  return a;
}
std::array<std::uint8_t, 4> v4(const char* text) {
  std::array<std::uint8_t, 4> a{};
  EXPECT_EQ(inet_pton(AF_INET, text, a.data()), 1);
  return a;
}

TEST(Clients, client_rules_satisfy_the_non_loopback_listener_rule) {
  auto d = load_errors(kGroupHead.substr(0, kGroupHead.rfind("clients:")));
  EXPECT_THAT(d, Contains(ErrorAt(1, 13, "which is not loopback: client rules are required")));
  auto r = load_ok(kGroupHead + "  - { name: ris-main, cidr: [10.1.0.0/16], tenants: \"*\" }\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.config->clients, SizeIs(1));
}

TEST(Clients, groups_expand_to_tenant_ids_and_upstreams_are_restricted) {
  auto r = load_ok(kGroupHead + yaml(R"(
  - name: ris-paris
    cidr: [10.1.0.0/16, "fd00:1::/32"]
    groups: [paris]
    tenants: ["499700270616011"]
    upstreams: [dmp]
    max_connections: 200
    rate: 50
  - name: batch
    bearer_sha256: 9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:F0:0A:08
    groups: lyon
    rate: 5
    burst: 20
)"));
  ASSERT_TRUE(r.config);
  const auto& c = r.config->clients;
  ASSERT_THAT(c, SizeIs(2));
  EXPECT_THAT(c[0].tenants, UnorderedElementsAre(kA, kB, kC));
  EXPECT_TRUE(c[0].allows_tenant(kB));
  EXPECT_TRUE(c[0].allows_upstream("dmp"));
  EXPECT_FALSE(c[0].allows_upstream("insi"));
  EXPECT_EQ(c[0].max_connections, 200u);
  EXPECT_EQ(c[0].rate, 50u);
  EXPECT_EQ(c[0].burst, 50u);  // defaults to the rate
  ASSERT_THAT(c[0].cidrs, SizeIs(2));
  EXPECT_TRUE(c[0].cidrs[0].contains(v4("10.1.200.3")));
  EXPECT_FALSE(c[0].cidrs[0].contains(v4("10.2.0.1")));
  EXPECT_TRUE(c[0].cidrs[0].contains(v6("::ffff:10.1.0.9")));  // dual-stack socket view of an IPv4 peer
  EXPECT_TRUE(c[0].cidrs[1].contains(v6("fd00:1:ffff::1")));
  EXPECT_FALSE(c[0].cidrs[1].contains(v6("fd00:2::1")));
  EXPECT_FALSE(c[0].cidrs[1].contains(v4("10.1.0.1")));
  EXPECT_THAT(c[1].bearer_sha256, ElementsAre(kHash));  // normalised: lower-case, no ':'
  EXPECT_THAT(c[1].tenants, ElementsAre(kC));
  EXPECT_FALSE(c[1].allows_tenant(kA));
  EXPECT_TRUE(c[1].allows_upstream("insi"));  // no upstreams key: all
  EXPECT_EQ(c[1].burst, 20u);
  EXPECT_EQ(r.config->tenant_groups.at("paris"), (std::vector<std::string>{kA, kB}));
}

TEST(Clients, star_means_every_tenant_and_must_stand_alone) {
  auto r = load_ok(kGroupHead + "  - { name: admin-ris, cidr: 127.0.0.1, tenants: \"*\", upstreams: \"*\" }\n");
  ASSERT_TRUE(r.config);
  EXPECT_TRUE(r.config->clients[0].allows_tenant("anything"));
  auto d = load_errors(kGroupHead + "  - { name: x, cidr: 127.0.0.1, tenants: [\"*\", \"312345678200002\"] }\n");
  EXPECT_THAT(d, Contains(ErrorAt(13, 43, "'*' must stand alone")));
  EXPECT_THAT(errors_only(d), SizeIs(1));
}

TEST(Clients, references_to_unknown_tenants_groups_and_upstreams_are_errors) {
  auto d = load_errors(kGroupHead +
                       "  - { name: x, cidr: 127.0.0.1, tenants: [\"312345678200003\"], groups: [pari], "
                       "upstreams: [dnp] }\n");
  EXPECT_THAT(errors_only(d), SizeIs(3));
  EXPECT_THAT(d, Contains(ErrorAt(13, 43, "client 'x': tenants: no tenant with id '312345678200003'")));
  EXPECT_THAT(d, Contains(ErrorAt(13, 72, "no tenant group named 'pari' (did you mean 'paris'?)")));
  EXPECT_THAT(d, Contains(ErrorAt(13, 91, "no upstream named 'dnp' (did you mean 'dmp'?)")));
}

TEST(Clients, a_client_must_say_who_it_is_and_what_it_may_do) {
  auto d = load_errors(kGroupHead + "  - { name: x }\n");
  EXPECT_THAT(d, Contains(ErrorAt(13, 5, "needs at least one of cidr, cert_sha256, cert_subject, bearer_sha256")));
  EXPECT_THAT(d, Contains(ErrorAt(13, 5, "say which tenants the client may act for")));
}

TEST(Clients, bearer_token_pasted_instead_of_its_hash_is_refused_without_echo) {
  auto d = load_errors(kGroupHead + "  - { name: x, bearer_sha256: s3cr3t-t0ken, tenants: \"*\" }\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(13, 31, "the SHA-256 of the token (never the token itself) as 64 hex digits")));
  EXPECT_THAT(d[0].message, Not(HasSubstr("s3cr3t")));
}

TEST(Clients, cidr_with_host_bits_and_bad_limits_are_refused) {
  auto d = load_errors(kGroupHead +
                       "  - { name: x, cidr: 10.1.2.3/16, tenants: \"*\", rate: 0, max_connections: 01 }\n"
                       "  - { name: y, cidr: 10.1.0.0/16, tenants: \"*\", burst: 5 }\n");
  EXPECT_THAT(errors_only(d), SizeIs(4));
  EXPECT_THAT(d, Contains(ErrorAt(13, 22, "address bits are set beyond the /16 prefix")));
  EXPECT_THAT(d, Contains(ErrorAt(13, 55, "'0' is out of range: allowed 1 to 1000000")));
  EXPECT_THAT(d, Contains(ErrorAt(13, 75, "write 1, not 01")));
  EXPECT_THAT(d, Contains(ErrorAt(14, 56, "burst needs a rate")));
}

TEST(Clients, certificate_rules_without_a_listener_requesting_certificates_are_warned) {
  auto r = load_ok(kGroupHead + "  - { name: x, cert_subject: \"CN=ris,O=Groupe,C=FR\", tenants: \"*\" }\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.warnings, Contains(WarningAt(13, 5, "no listener has tls with client_ca")));
}

TEST(Clients, duplicate_client_names_and_groups_are_refused) {
  auto d = load_errors(
      kGroupHead +
      "  - { name: x, cidr: 127.0.0.1, tenants: \"*\" }\n  - { name: x, cidr: 127.0.0.2, tenants: \"*\" }\n");
  EXPECT_THAT(d, Contains(ErrorAt(14, 13, "client 'x' is already defined at t.yaml:13:5")));
}

TEST(TenantGroups, members_must_be_configured_tenants_listed_once) {
  auto d = load_errors(yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
tenants: [{ id: "312345678200002" }]
tenant_groups:
  paris: ["312345678200002", "312345678200002", "498765432103017"]
  empty: {}
)"));
  EXPECT_THAT(d, Contains(ErrorAt(4, 30, "'312345678200002' is listed twice")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 49, "tenant group 'paris': no tenant with id '498765432103017'")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 10, "tenant group 'empty': expected a list of tenant ids, found a mapping")));
}

TEST(Admin, endpoint_is_read_and_needs_a_token_beyond_loopback) {
  auto r = load_ok(kBase + "admin: { port: 9090, bearer_sha256: [" + kHash + "] }\n");
  ASSERT_TRUE(r.config);
  ASSERT_TRUE(r.config->admin);
  EXPECT_EQ(r.config->admin->address, "127.0.0.1");
  EXPECT_EQ(r.config->admin->port, 9090);
  EXPECT_THAT(r.config->admin->bearer_sha256, ElementsAre(kHash));
  auto d = load_errors(kBase + "admin: { address: 0.0.0.0, port: 9090 }\n");
  EXPECT_THAT(d, Contains(ErrorAt(13, 19, "the admin endpoint on 0.0.0.0 (not loopback) needs bearer_sha256")));
  auto d2 = load_errors(kBase + "admin: { port: 8080 }\n");
  EXPECT_THAT(d2, Contains(ErrorAt(13, 8, "port 8080 is already used by listener 'ris'")));
  EXPECT_FALSE(load_ok(kBase).config->admin.has_value());
}

TEST(Logging, access_log_file_with_rotation_resolves_relative_to_the_file) {
  auto r = load_ok(kBase + "logging: { access_log: log/access.log, rotate_size: 100MiB, rotate_count: 7 }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->logging.access_log, "/cfg/log/access.log");
  EXPECT_EQ(r.config->logging.rotate_size, 100u << 20);
  EXPECT_EQ(r.config->logging.rotate_count, 7u);
  EXPECT_EQ(load_ok(kBase).config->logging.access_log, "stdout");
}

TEST(Logging, rotation_of_stdout_is_refused) {
  auto d = load_errors(kBase + "logging: { access_log: stdout, rotate_size: 1MiB }\n");
  EXPECT_THAT(d, Contains(ErrorAt(13, 45, "rotation applies to an access log file, not stdout")));
}

TEST(CrlFiles, paths_are_resolved) {
  auto r = load_ok(kBase + "crl_files: [crl/igc-sante.crl, /etc/orgproxy/test.crl]\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.config->crl_files, ElementsAre("/cfg/crl/igc-sante.crl", "/etc/orgproxy/test.crl"));
}

}  // namespace
}  // namespace orgproxy::config::test
