// Field case C25: YAML turns numeric-looking identifiers into numbers (octal, overflow, floats).
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::SizeIs;

// The tenants of the field case, each with an identity (the daemon compares the id with the OU as text).
const std::string kTenants = yaml(R"(
listeners:
  - { name: ris, address: 127.0.0.1, port: 8080 }
tenants:
  - id: 0751234567
    identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] }
  - id: 0891234567
    identities: { dmp: [{ cert: b.pem, key: "pkcs11:token=t;object=b" }] }
  - id: 312345678200002
    identities: { dmp: [{ cert: c.pem, key: "pkcs11:token=t;object=c" }] }
  - id: "498765432103017"
    identities: { dmp: [{ cert: d.pem, key: "pkcs11:token=t;object=d" }] }
  - id: '0751234568'
    identities: { dmp: [{ cert: e.pem, key: "pkcs11:token=t;object=e" }] }
)");

TEST(FieldCaseC25, numeric_looking_ids_are_kept_as_their_exact_text) {
  auto r = load_ok(kTenants);
  ASSERT_TRUE(r.config);
  const auto& t = r.config->tenants;
  ASSERT_THAT(t, SizeIs(5));
  EXPECT_EQ(t[0].id, "0751234567");  // every digit octal: as<int> would have given 0x7A1D77 = 128008567
  EXPECT_EQ(t[1].id, "0891234567");
  EXPECT_EQ(t[2].id, "312345678200002");  // above 2^32
  EXPECT_EQ(t[3].id, "498765432103017");
  EXPECT_EQ(t[4].id, "0751234568");
  // Lookups are exact text comparisons, as with a certificate OU.
  EXPECT_NE(r.config->find_tenant("0751234567"), nullptr);
  EXPECT_EQ(r.config->find_tenant("751234567"), nullptr);
  EXPECT_EQ(r.config->find_tenant("128008567"), nullptr);
}

TEST(FieldCaseC25, float_looking_id_is_rejected_at_its_position_unquoted) {
  auto d = load_errors(kTenants + yaml(R"(
  - id: 3.1234567890e14
)"));
  EXPECT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(14, 9, "'3.1234567890e14' looks like a number")));
}

TEST(FieldCaseC25, float_looking_id_is_rejected_at_its_position_quoted) {
  auto d = load_errors(kTenants + yaml(R"(
  - { name: X, id: "3.1234567890e14" }
)"));
  EXPECT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(14, 20, "looks like a number")));
}

TEST(FieldCaseC25, leading_zero_port_is_rejected_with_the_decimal_spelling) {
  auto d = load_errors(yaml(R"(
listeners:
  - name: ris
    address: 127.0.0.1
    port: 08443
)"));
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(4, 11, "write 8443, not 08443")));
  // Positive control: the same listener with a decimal port loads.
  auto ok = load_ok(yaml(R"(
listeners:
  - name: ris
    address: 127.0.0.1
    port: 8443
)"));
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->listeners.at(0).port, 8443);
}

TEST(FieldCaseC25, leading_zero_integer_is_never_read_as_octal) {
  auto d = load_errors(kBase + yaml(R"(
settings:
  workers: 0010
)"));
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(14, 12, "leading zero: numbers are decimal here (never octal), write 10, not 0010")));
  auto ok = load_ok(kBase + "settings:\n  workers: 10\n");
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->settings.workers, 10u);
}

TEST(FieldCaseC25, leading_zero_duration_is_rejected) {
  const std::string head = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
upstreams:
  dmp:
    url: https://x.example
    ca_file: ca.pem
    environment: test
    purpose: dmp
)");
  auto d = load_errors(head + "    connect_timeout: 0010s\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(8, 22, "write 10s, not 0010s")));
  auto ok = load_ok(head + "    connect_timeout: 10s\n");
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->upstreams.at("dmp").connect_timeout, std::chrono::seconds(10));
}

TEST(FieldCaseC25, yaml11_boolean_spellings_are_rejected_naming_the_allowed_ones) {
  for (const char* spelling : {"no", "yes", "on", "off", "y", "n", "No", "TRUE", "True", "1"}) {
    auto d = load_errors(kBase + "pkcs11:\n  allow_key_files: " + spelling + "\n");
    ASSERT_THAT(errors_only(d), SizeIs(1)) << spelling;
    EXPECT_THAT(d, Contains(ErrorAt(14, 20, "write true or false"))) << spelling;
  }
  for (const char* spelling : {"true", "false"}) {
    auto r = load_ok(kBase + "pkcs11:\n  allow_key_files: " + spelling + "\n");
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->pkcs11.allow_key_files, std::string(spelling) == "true");
  }
}

TEST(FieldCaseC25, field_case_excerpt_reports_every_problem_at_once) {
  // The excerpt of the field case, with the schema's key names.
  auto d = load_errors(yaml(R"(
listeners:
  - { name: ris, address: 127.0.0.1, port: 8080 }
tenants:
  - id: 0751234567
  - id: 0891234567
  - id: 312345678200002
  - id: 3.1234567890e14
  - id: "498765432103017"
upstreams:
  dmp:
    url: https://127.0.0.1:8443/dmp
    ca_file: ca.pem
    environment: test
    purpose: dmp
    connect_timeout: 0010
    port: 08443
    verify: no
)"));
  const auto errors = errors_only(d);
  EXPECT_THAT(errors, SizeIs(4));
  EXPECT_THAT(d, Contains(ErrorAt(7, 9, "looks like a number")));
  EXPECT_THAT(d, Contains(ErrorAt(15, 22, "'0010' has a leading zero")));
  EXPECT_THAT(d, Contains(ErrorAt(16, 5, "unknown key 'port'")));
  EXPECT_THAT(d, Contains(ErrorAt(17, 5, "unknown key 'verify'")));
}

}  // namespace
}  // namespace orgproxy::config::test
