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
  auto r = load_ok(kTenant + "  - { name: ris, address: \"::1\", port: 8080, selectors: [vihf, header, path], "
                             "tenant_header: X-Site }\n");
  ASSERT_TRUE(r.config);
  const Listener& l = r.config->listeners[0];
  EXPECT_EQ(l.address, "::1");
  EXPECT_THAT(l.selectors, ElementsAre(SelectorKind::vihf, SelectorKind::header, SelectorKind::path));
  EXPECT_EQ(l.tenant_header, "X-Site");
}

TEST(Listeners, default_selector_is_the_header) {
  auto r = load_ok(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080 }\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.config->listeners[0].selectors, ElementsAre(SelectorKind::header));
}

TEST(Listeners, unknown_duplicate_and_empty_selectors_are_refused) {
  auto d = load_errors(kTenant + "  - { name: a, address: 127.0.0.1, port: 8080, selectors: [headers, path, path] }\n"
                                 "  - { name: b, address: 127.0.0.1, port: 8081, selectors: [] }\n");
  EXPECT_THAT(errors_only(d), SizeIs(3));
  EXPECT_THAT(d, Contains(ErrorAt(4, 60, "unknown selector 'headers' (did you mean 'header'?)")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 75, "'path' is listed twice")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 59, "the list is empty")));
}

TEST(Listeners, fixed_selector_needs_a_configured_tenant) {
  auto ok = load_ok(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, selectors: [fixed], tenant: \"312345678200002\" }\n");
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->listeners[0].fixed_tenant, "312345678200002");
  auto d = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080, selectors: [fixed], tenant: \"312345678200003\" }\n");
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
  auto d = load_errors(kTenant + "  - { name: a, address: ris.local, port: 8080 }\n"
                                 "  - { name: b, address: \"[::1]\", port: 8081 }\n");
  EXPECT_THAT(d, Contains(ErrorAt(4, 25, "'ris.local' is not an IP address (or localhost)")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 25, "write the IPv6 address without brackets: ::1")));
}

TEST(Listeners, duplicate_names_and_ports_are_refused) {
  auto d = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, port: 8080 }\n"
                                 "  - { name: ris, address: 127.0.0.1, port: 8080 }\n");
  EXPECT_THAT(d, Contains(ErrorAt(5, 13, "listener 'ris' is already defined at t.yaml:4:5")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 5, "127.0.0.1 port 8080 is already used by listener 'ris' at t.yaml:4:5")));
}

TEST(Listeners, port_is_required_and_invalid_header_name_refused) {
  auto d = load_errors(kTenant + "  - { name: ris, address: 127.0.0.1, tenant_header: \"X Site\" }\n");
  EXPECT_THAT(d, Contains(ErrorAt(4, 5, "missing required key 'port'")));
  EXPECT_THAT(d, Contains(ErrorAt(4, 53, "'X Site' is not a valid HTTP header name")));
}

}  // namespace
}  // namespace orgproxy::config::test
