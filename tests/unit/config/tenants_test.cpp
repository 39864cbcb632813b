// Tenants: identifiers in context, sectors, RPPS, départements, identities, duplicates.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::SizeIs;

const std::string kHead = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
tenants:
)");  // tenants start at line 3

const std::string kIdentity = R"(identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }] })";

TEST(Tenants, full_tenant_is_read) {
  auto r = load_ok(kHead + yaml(R"(
  - id: "499700270616011"
    name: Cabinet de radiologie Exemple
    sector: SA07
    departement: "2A"
    responsible_rpps: "99700270616"
    legal_representative: Dr Exemple
    identities:
      dmp:
        - { cert: certs/old.pem, key: "pkcs11:token=orgproxy;id=%01;type=private" }
        - { cert: certs/new.pem, key: "pkcs11:token=orgproxy;id=%02;type=private" }
      insi-auto: [{ cert: /etc/orgproxy/insi.pem, key: "pkcs11:token=orgproxy;object=insi" }]
      vihf-sign: [{ cert: sign.pem, key: "pkcs11:token=orgproxy;object=sign" }]
pkcs11: { pin_file: pin }
)"));
  ASSERT_TRUE(r.config);
  const Tenant* t = r.config->find_tenant("499700270616011");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->name, "Cabinet de radiologie Exemple");
  EXPECT_EQ(t->sector, "SA07");
  EXPECT_EQ(t->departement, "2A");
  EXPECT_EQ(t->responsible_rpps, "99700270616");
  EXPECT_EQ(t->legal_representative, "Dr Exemple");
  EXPECT_EQ(t->mark.str(), "t.yaml:3:5");
  ASSERT_EQ(t->identities.size(), 3u);
  const auto& dmp = t->identities.at(Purpose::dmp);
  ASSERT_THAT(dmp, SizeIs(2));  // renewal overlap: both kept, in order
  EXPECT_EQ(dmp[0].cert_file, "/cfg/certs/old.pem");
  EXPECT_EQ(dmp[1].key, "pkcs11:token=orgproxy;id=%02;type=private");
  EXPECT_EQ(t->identities.at(Purpose::insi_auto)[0].cert_file, "/etc/orgproxy/insi.pem");
  EXPECT_EQ(t->identities.at(Purpose::vihf_sign)[0].cert_file, "/cfg/sign.pem");
  EXPECT_THAT(r.warnings, SizeIs(0));
}

TEST(Tenants, bare_siret_id_is_refused_showing_the_full_form) {
  auto d = load_errors(kHead + "  - { id: 12345678200002, " + kIdentity + " }\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(3, 11, "write the full structure identifier '312345678200002' (3 + SIRET)")));
}

TEST(Tenants, bare_rpps_id_is_refused_showing_the_full_form) {
  auto d = load_errors(kHead + "  - { id: \"98765432103\", " + kIdentity + " }\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(3, 11, "'498765432103NNN' (4 + RPPS + the 3-digit rang of the activity)")));
}

TEST(Tenants, duplicate_id_names_both_places) {
  auto d = load_errors(kHead + "  - { id: \"312345678200002\", " + kIdentity + " }\n" + "  - { id: 312345678200002, " +
                       kIdentity + " }\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(4, 11, "tenant id '312345678200002' is defined twice: here and at t.yaml:3:11")));
}

TEST(Tenants, ids_differing_only_by_leading_zero_are_distinct) {
  auto r = load_ok(kHead + "  - { id: \"0751234567\", " + kIdentity + " }\n" + "  - { id: 0751234568, " + kIdentity +
                   " }\n");
  ASSERT_TRUE(r.config);
  EXPECT_NE(r.config->find_tenant("0751234567"), r.config->find_tenant("0751234568"));
}

TEST(Tenants, sector_that_does_not_fit_the_id_type_is_a_warning) {
  auto r = load_ok(kHead + "  - { id: \"312345678200002\", sector: SA07, " + kIdentity + " }\n" +
                   "  - { id: \"498765432103017\", sector: SA09, " + kIdentity + " }\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.warnings, Contains(WarningAt(3, 38, "SA07 (cabinet libéral) is usually identified by an RPPS rang")));
  EXPECT_THAT(r.warnings, Contains(WarningAt(4, 38, "SA09 (société d'exercice) is usually identified by a SIRET")));
  // Positive control: matching sectors draw no warning.
  auto ok = load_ok(kHead + "  - { id: \"312345678200002\", sector: SA09, " + kIdentity + " }\n" +
                    "  - { id: \"498765432103017\", sector: SA08, " + kIdentity + " }\n" + "pkcs11: { pin_file: pin }\n");
  EXPECT_THAT(ok.warnings, SizeIs(0));
}

TEST(Tenants, malformed_sector_rpps_and_departement_are_errors) {
  auto d = load_errors(kHead + yaml(R"(
  - id: "312345678200002"
    sector: S09
    responsible_rpps: 99700270617
    departement: 20
)"));
  EXPECT_THAT(errors_only(d), SizeIs(3));
  EXPECT_THAT(d, Contains(ErrorAt(4, 13, "'S09' is not an RPPS activity sector")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 23, "'99700270617' is not an RPPS number (11 digits with a valid Luhn key)")));
  EXPECT_THAT(d, Contains(ErrorAt(6, 18, "'20' is not a département code")));
}

TEST(Tenants, person_identifier_as_responsible_rpps_is_explained) {
  auto d = load_errors(kHead + "  - { id: \"312345678200002\", responsible_rpps: 899700270616, " + kIdentity + " }\n");
  EXPECT_THAT(d, Contains(ErrorAt(3, 48, "is a person identifier (8 + RPPS): write the 11-digit RPPS 99700270616")));
}

TEST(Tenants, departements_with_leading_zero_and_overseas_are_accepted) {
  for (const char* dep : {"01", "09", "2B", "75", "95", "971", "976"}) {
    auto r = load_ok(kHead + "  - { id: \"312345678200002\", departement: " + dep + ", " + kIdentity + " }\n");
    ASSERT_TRUE(r.config) << dep;
    EXPECT_EQ(r.config->tenants[0].departement, dep);
  }
}

TEST(Tenants, unknown_purpose_is_refused_with_a_suggestion) {
  auto d = load_errors(kHead + yaml(R"(
  - id: "312345678200002"
    identities:
      insi_manu: [{ cert: a.pem, key: "pkcs11:token=t;object=a" }]
      dmp: { cert: a.pem, key: "pkcs11:token=t;object=a" }
)"));
  EXPECT_THAT(d, Contains(ErrorAt(5, 7, "unknown purpose 'insi_manu' (did you mean 'insi-manu'?)")));
  EXPECT_THAT(d, Contains(ErrorAt(6, 12, "identity dmp: expected a sequence")));
}

TEST(Tenants, identity_needs_cert_and_key) {
  auto d = load_errors(kHead + "  - { id: \"312345678200002\", identities: { dmp: [{ cert: a.pem }] } }\n");
  EXPECT_THAT(d, Contains(ErrorAt(3, 50, "identity dmp #1: missing required key 'key'")));
}

TEST(Tenants, tenant_without_identities_is_a_warning) {
  auto r = load_ok(kHead + "  - { id: \"312345678200002\" }\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.warnings, Contains(WarningAt(3, 5, "no identities")));
}

TEST(Tenants, pem_key_file_is_refused_unless_allowed_then_warned) {
  const std::string tenant =
      "  - { id: \"312345678200002\", identities: { dmp: [{ cert: a.pem, key: keys/a.key }] } }\n";
  auto d = load_errors(kHead + tenant);
  EXPECT_THAT(d, Contains(ErrorAt(3, 70, "must be a pkcs11: URI (RFC 7512)")));
  auto r = load_ok(kHead + tenant + "pkcs11: { allow_key_files: true }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tenants[0].identities.at(Purpose::dmp)[0].key, "/cfg/keys/a.key");
  EXPECT_THAT(r.warnings, Contains(WarningAt(3, 70, "a PEM key file is used instead of a PKCS#11 token")));
}

}  // namespace
}  // namespace orgproxy::config::test
