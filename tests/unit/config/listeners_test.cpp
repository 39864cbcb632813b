// Listeners: addresses, selectors, fixed tenant, the loopback rule (DESIGN.md "Client").
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::SizeIs;

const std::string kTenant = yaml(R"(
tenants:
  - { id: "312345678200002", identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] } }
listeners:
)");  // listeners start at line 4

TEST(Listeners, selectors_and_header_are_read_in_order) {
  auto r = load_ok(kTenant +
                   "  - { name: ris, address: \"::1\", port: 8080, selectors: [vihf, header, path], "
                   "tenant_header: X-Site }\n");
  ASSERT_TRUE(r.config);
  const Listener& l = r.config->listeners[0];
  EXPECT_EQ(l.address, "::1");
  EXPECT_THAT(l.selectors, ElementsAre(SelectorKind::vihf, SelectorKind::header, SelectorKind::path));
  EXPECT_EQ(l.tenant_header, "X-Site");
}

TEST(Listeners, vihf_max_bytes_defaults_to_64KiB_and_is_bounded) {
  auto r = load_ok(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080 }\n"
                             "  - { name: big, address: 127.0.0.1, port: 8081, vihf_max_bytes: 256KiB }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->listeners[0].vihf_max_bytes, 64u * 1024);
  EXPECT_EQ(r.config->listeners[1].vihf_max_bytes, 256u * 1024);

  auto d = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, vihf_max_bytes: 100 }\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_EQ(errors_only(d)[0].mark.line, 4);
  EXPECT_NE(errors_only(d)[0].message.find("vihf_max_bytes"), std::string::npos) << errors_only(d)[0].message;
}

TEST(Listeners, default_selector_is_the_header) {
  auto r = load_ok(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080 }\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.config->listeners[0].selectors, ElementsAre(SelectorKind::header));
}

TEST(Listeners, unknown_duplicate_and_empty_selectors_are_refused) {
  auto d = load_errors(kTenant +
                       "  - { name: a, address: 127.0.0.1, port: 8080, selectors: [headers, path, path] }\n"
                       "  - { name: b, address: 127.0.0.1, port: 8081, selectors: [] }\n");
  EXPECT_THAT(errors_only(d), SizeIs(3));
  EXPECT_THAT(d, Contains(ErrorAt(4, 60, "unknown selector 'headers' (did you mean 'header'?)")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 75, "'path' is listed twice")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 59, "the list is empty")));
}

TEST(Listeners, fixed_selector_needs_a_configured_tenant) {
  auto ok = load_ok(
      kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, selectors: [fixed], tenant: \"312345678200002\" }\n");
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->listeners[0].fixed_tenant, "312345678200002");
  auto d = load_errors(
      kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, selectors: [fixed], tenant: \"312345678200003\" }\n");
  EXPECT_THAT(d, Contains(ErrorAt(4, 78, "no tenant with id '312345678200003' (did you mean '312345678200002'?)")));
  auto d2 = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, selectors: [fixed] }\n");
  EXPECT_THAT(d2, Contains(ErrorAt(4, 5, "the 'fixed' selector needs 'tenant: <id>'")));
  auto d3 = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, tenant: \"312345678200002\" }\n");
  EXPECT_THAT(d3, Contains(ErrorAt(4, 58, "a fixed tenant needs the 'fixed' selector")));
}

TEST(Listeners, non_loopback_listener_requires_client_rules) {
  for (const char* address : {"0.0.0.0", "192.168.1.10", "::"}) {
    auto d = load_errors(kTenant + "  - { name: ris, address: \"" + address + "\", port: 8080 }\n");
    ASSERT_THAT(errors_only(d), SizeIs(1)) << address;
    EXPECT_THAT(d, Contains(ErrorAt(4, 5, "which is not loopback: client rules are required"))) << address;
  }
  // Positive control: loopback in all its spellings needs none.
  for (const char* address : {"127.0.0.1", "127.8.9.10", "::1", "localhost", "::ffff:127.0.0.1"}) {
    auto r = load_ok(kTenant + "  - { name: ris, address: \"" + address + "\", port: 8080 }\n");
    EXPECT_TRUE(r.config) << address;
  }
}

TEST(Listeners, address_must_be_an_ip_or_localhost) {
  auto d = load_errors(kTenant +
                       "  - { name: a, address: ris.local, port: 8080 }\n"
                       "  - { name: b, address: \"[::1]\", port: 8081 }\n");
  EXPECT_THAT(d, Contains(ErrorAt(4, 25, "'ris.local' is not an IP address (or localhost)")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 25, "write the IPv6 address without brackets: ::1")));
}

TEST(Listeners, duplicate_names_and_ports_are_refused) {
  auto d = load_errors(kTenant +
                       "  - { name: ris, address: 127.0.0.1, port: 8080 }\n"
                       "  - { name: ris, address: 127.0.0.1, port: 8080 }\n");
  EXPECT_THAT(d, Contains(ErrorAt(5, 13, "listener 'ris' is already defined at t.yaml:4:5")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 5, "127.0.0.1 port 8080 is already used by listener 'ris' at t.yaml:4:5")));
}

TEST(Listeners, port_is_required_and_invalid_header_name_refused) {
  auto d = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, tenant_header: \"X Site\" }\n");
  EXPECT_THAT(d, Contains(ErrorAt(4, 5, "missing required key 'port'")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 53, "'X Site' is not a valid HTTP header name")));
}

TEST(Listeners, source_selector_maps_networks_to_tenants) {
  auto r = load_ok(kTenant + yaml(R"(
  - name: ris
    address: 127.0.0.1
    port: 8080
    selectors:
      - header
      - source: { "10.1.2.0/24": "312345678200002", "fd00::5": "312345678200002" }
)"));
  ASSERT_TRUE(r.config);
  const Listener& l = r.config->listeners[0];
  EXPECT_THAT(l.selectors, ElementsAre(SelectorKind::header, SelectorKind::source));
  ASSERT_THAT(l.source_tenants, SizeIs(2));
  EXPECT_EQ(l.source_tenants[0].network.text, "10.1.2.0/24");
  EXPECT_EQ(l.source_tenants[0].network.prefix_len, 24u);
  EXPECT_EQ(l.source_tenants[0].tenant, "312345678200002");
  EXPECT_TRUE(l.source_tenants[1].network.v6);
  EXPECT_EQ(l.source_tenants[1].network.prefix_len, 128u);
}

TEST(Listeners, source_rule_lookup_takes_the_longest_prefix) {
  auto r = load_ok(yaml(R"(
tenants:
  - { id: "312345678200002" }
  - { id: "498765432103017" }
listeners:
  - name: ris
    address: 127.0.0.1
    port: 8080
    selectors:
      - source: { "10.1.0.0/16": "312345678200002", "10.1.2.0/24": "498765432103017", "fd00::/8": "312345678200002" }
)"));
  ASSERT_TRUE(r.config);
  const Listener& l = r.config->listeners[0];
  auto tenant_of = [&](std::vector<std::uint8_t> a) {
    const SourceTenantRule* rule = l.source_rule_for(a);
    return rule ? rule->tenant : std::string("(none)");
  };
  EXPECT_EQ(tenant_of({10, 1, 2, 9}), "498765432103017");
  EXPECT_EQ(tenant_of({10, 1, 3, 9}), "312345678200002");
  EXPECT_EQ(tenant_of({10, 2, 2, 9}), "(none)");
  EXPECT_EQ(tenant_of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 9}), "498765432103017");
  EXPECT_EQ(tenant_of({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), "312345678200002");
  EXPECT_EQ(tenant_of({0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), "(none)");
}

TEST(Listeners, source_selector_without_rules_or_with_bad_rules_is_refused) {
  auto d = load_errors(
      kTenant +
      "  - { name: a, address: 127.0.0.1, port: 8080, selectors: [source] }\n"
      "  - { name: b, address: 127.0.0.1, port: 8081, selectors: [{ source: { \"10.1.2.3/24\": \"312345678200002\", "
      "\"10.9.0.0/16\": \"499700270616011\" } }] }\n"
      "  - { name: c, address: 127.0.0.1, port: 8082, selectors: [{ header: { a: b } }] }\n");
  EXPECT_THAT(errors_only(d), SizeIs(4));
  EXPECT_THAT(d, Contains(ErrorAt(4, 60, "'source' needs its rules")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 72, "address bits are set beyond the /24 prefix")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 121, "no tenant with id '499700270616011'")));
  EXPECT_THAT(d, Contains(ErrorAt(6, 60, "'header' takes no rules")));
}

TEST(Listeners, client_cert_selector_needs_tls_with_a_client_ca) {
  const std::string fp =
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
  auto r = load_ok(kTenant + yaml(R"(
  - name: ris-tls
    address: 127.0.0.1
    port: 8443
    vihf_check: false
    tls: { cert: tls/server.pem, key: tls/server.key, client_ca: tls/ris-ca.pem, require_client_cert: true }
    selectors:
      - client_cert:
          "OU=312345678200002": "312345678200002"
)") + "          \"" +
                   fp + "\": \"312345678200002\"\n");
  ASSERT_TRUE(r.config);
  const Listener& l = r.config->listeners[0];
  ASSERT_TRUE(l.tls);
  EXPECT_EQ(l.tls->cert_file, "/cfg/tls/server.pem");
  EXPECT_EQ(l.tls->key, "/cfg/tls/server.key");
  EXPECT_EQ(l.tls->client_ca_file, "/cfg/tls/ris-ca.pem");
  EXPECT_TRUE(l.tls->require_client_cert);
  EXPECT_FALSE(l.vihf_check);
  ASSERT_THAT(l.client_cert_tenants, SizeIs(2));
  EXPECT_EQ(l.client_cert_tenants[0].match, ClientCertTenantRule::Match::ou);
  EXPECT_EQ(l.client_cert_tenants[0].value, "312345678200002");
  EXPECT_EQ(l.client_cert_tenants[1].match, ClientCertTenantRule::Match::sha256);
  EXPECT_EQ(l.client_cert_tenants[1].value, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");

  auto d = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, selectors: [client_cert] }\n");
  EXPECT_THAT(d, Contains(ErrorAt(4, 61, "the client_cert selector needs tls with client_ca")));
  auto d2 = load_errors(kTenant +
                        "  - { name: ris, address: 127.0.0.1, port: 8080, tls: { cert: c.pem, key: k.pem, "
                        "require_client_cert: true } }\n");
  EXPECT_THAT(d2, Contains(ErrorAt(4, 103, "client certificates need client_ca")));
  auto d3 = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, tls: { cert: c.pem } }\n");
  EXPECT_THAT(d3, Contains(ErrorAt(4, 55, "tls: missing required key 'key'")));
}

}  // namespace
}  // namespace orgproxy::config::test
