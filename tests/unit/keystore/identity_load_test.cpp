// Loading identities from real SoftHSM tokens: what loads, and each reason an identity is refused, each with
// its positive control.
#include <chrono>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "keystore_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using testkit::KeyType;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(KeystoreLoad, loads_rsa_and_ec_identities_whose_keys_stay_in_the_token) {
  KeystoreWorld world;
  auto rsa = world.key(KeyType::rsa2048, 1, "dmp-a");
  auto p256 = world.key(KeyType::ec_p256, 2, "dmp-b");
  auto p384 = world.key(KeyType::ec_p384, 3);
  std::vector<IdentitySpec> specs = {world.identity(rsa, kTenantA), world.identity(p256, kTenantB, "dmp", "CABINET B"),
                                     world.identity(p384, kTenantB, "mssante", "CABINET B MSS")};
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities(specs);
  ASSERT_EQ(loads.size(), 3u);
  for (const auto& l : loads) ASSERT_TRUE(l.identity) << l.error;

  const Identity& a = *loads[0].identity;
  EXPECT_EQ(a.tenant_id(), kTenantA);
  EXPECT_EQ(a.purpose(), "dmp");
  EXPECT_THAT(a.subject(), HasSubstr("OU=312345678200002"));
  EXPECT_FALSE(a.serial_hex().empty());
  EXPECT_TRUE(a.usable());
  EXPECT_TRUE(a.supports_pss());
  ASSERT_EQ(sk_X509_num(a.intermediates()), 1);
  EXPECT_EQ(X509_cmp(sk_X509_value(a.intermediates(), 0), world.pki.intermediate_certificate()), 0);
  EXPECT_LT(a.not_before(), std::chrono::system_clock::now());
  EXPECT_GT(a.not_after(), std::chrono::system_clock::now());
  EXPECT_TRUE(EVP_PKEY_is_a(a.private_key(), "RSA"));
  EXPECT_EQ(EVP_PKEY_get_bits(a.private_key()), 2048);
  EXPECT_TRUE(EVP_PKEY_is_a(loads[1].identity->private_key(), "EC"));
  EXPECT_EQ(EVP_PKEY_get_bits(loads[2].identity->private_key()), 384);

  // The private key cannot be exported from the provider (it is not there to export).
  OSSL_PARAM* params = nullptr;
  EXPECT_NE(EVP_PKEY_todata(a.private_key(), EVP_PKEY_KEYPAIR, &params), 1);
  OSSL_PARAM_free(params);
  // Its public part can, and it is the certificate's.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(a.certificate()), a.private_key()), 1);
}

TEST(KeystoreLoad, chain_file_listing_the_intermediate_first_is_reordered_leaf_first) {
  KeystoreWorld world;
  auto rsa = world.key(KeyType::rsa2048, 1);
  testkit::OrgCertOptions options;
  options.layout = testkit::ChainLayout::intermediate_then_leaf;
  auto spec = world.identity(rsa, kTenantA, "dmp", "CABINET A", options);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({spec});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  EXPECT_THAT(loads[0].identity->subject(), HasSubstr("CN=CABINET A"));
  ASSERT_EQ(sk_X509_num(loads[0].identity->intermediates()), 1);
  EXPECT_EQ(verify_identity_chain(*loads[0].identity, world.pki.ca_bundle_pem().string()), "");
}

TEST(KeystoreLoad, identities_of_one_load_share_one_copy_of_their_intermediate) {
  KeystoreWorld world;
  auto a_key = world.key(KeyType::ec_p256, 1, "dmp-a");
  auto b_key = world.key(KeyType::ec_p256, 2, "dmp-b");
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities(
      {world.identity(a_key, kTenantA), world.identity(b_key, kTenantB, "dmp", "CABINET B")});
  ASSERT_TRUE(loads[0].identity && loads[1].identity) << loads[0].error << loads[1].error;
  const Identity& a = *loads[0].identity;
  const Identity& b = *loads[1].identity;
  ASSERT_EQ(sk_X509_num(a.intermediates()), 1);
  ASSERT_EQ(sk_X509_num(b.intermediates()), 1);
  // One parsed object for the intermediate both files carry; each leaf stays its own.
  EXPECT_EQ(sk_X509_value(a.intermediates(), 0), sk_X509_value(b.intermediates(), 0));
  EXPECT_EQ(X509_cmp(sk_X509_value(a.intermediates(), 0), world.pki.intermediate_certificate()), 0);
  EXPECT_NE(X509_cmp(a.certificate(), b.certificate()), 0);
  EXPECT_EQ(verify_identity_chain(b, world.pki.ca_bundle_pem().string()), "");
  // Control: separate loads parse their own copies (the sharing is the load's, not a process-wide cache).
  auto again = keystore->load_identities({world.identity(a_key, kTenantA)});
  ASSERT_TRUE(again[0].identity) << again[0].error;
  EXPECT_NE(sk_X509_value(again[0].identity->intermediates(), 0), sk_X509_value(a.intermediates(), 0));
  EXPECT_EQ(X509_cmp(sk_X509_value(again[0].identity->intermediates(), 0), sk_X509_value(a.intermediates(), 0)), 0);
}

TEST(KeystoreLoad, certificate_whose_ou_is_not_the_tenant_is_refused) {
  KeystoreWorld world;
  auto rsa = world.key(KeyType::rsa2048, 1);
  auto good = world.identity(rsa, kTenantA);
  auto wrong = good;
  wrong.tenant_id = kTenantB;  // the certificate says A
  auto padded = good;
  padded.tenant_id = std::string("0") + kTenantA;  // never normalised: exact text compare
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({good, wrong, padded});
  EXPECT_TRUE(loads[0].identity) << loads[0].error;
  EXPECT_FALSE(loads[1].identity);
  EXPECT_THAT(loads[1].error, HasSubstr("tenant 498765432103017, purpose dmp"));
  EXPECT_THAT(loads[1].error, HasSubstr("OU '312345678200002' is not the tenant id '498765432103017'"));
  EXPECT_FALSE(loads[2].identity);
}

TEST(KeystoreLoad, key_that_does_not_match_the_certificate_is_refused) {
  KeystoreWorld world;
  auto key1 = world.key(KeyType::rsa2048, 1);
  auto key2 = world.key(KeyType::rsa2048, 2);
  auto ec1 = world.key(KeyType::ec_p256, 3);
  auto ec2 = world.key(KeyType::ec_p256, 4);
  auto rsa_mismatch = world.identity(key1, kTenantA);
  rsa_mismatch.key = key2.uri;
  auto ec_mismatch = world.identity(ec1, kTenantA);
  ec_mismatch.key = ec2.uri;
  auto type_mismatch = world.identity(key1, kTenantA);
  type_mismatch.key = ec1.uri;
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({rsa_mismatch, ec_mismatch, type_mismatch, world.identity(key2, kTenantA)});
  EXPECT_THAT(loads[0].error, HasSubstr("does not match the certificate (RSA modulus differs)"));
  EXPECT_THAT(loads[1].error, HasSubstr("does not match the certificate (EC point differs)"));
  EXPECT_THAT(loads[2].error, HasSubstr("token key is EC, certificate key is not"));
  EXPECT_TRUE(loads[3].identity) << loads[3].error;  // positive control
}

TEST(KeystoreLoad, extractable_key_is_refused_unless_allowed) {
  KeystoreWorld world;
  auto key = world.key(KeyType::rsa2048, 1, "leaky", /*extractable=*/true);
  auto spec = world.identity(key, kTenantA);
  {
    auto keystore = Keystore::open(world.options());
    auto loads = keystore->load_identities({spec});
    EXPECT_FALSE(loads[0].identity);
    EXPECT_THAT(loads[0].error, HasSubstr("tenant 312345678200002, purpose dmp"));
    EXPECT_THAT(loads[0].error, HasSubstr("CKA_EXTRACTABLE=true"));
  }
  auto options = world.options();
  options.allow_extractable = true;
  auto keystore = Keystore::open(options);
  auto loads = keystore->load_identities({spec});
  EXPECT_TRUE(loads[0].identity) << loads[0].error;
}

TEST(KeystoreLoad, missing_key_and_missing_certificate_are_reported_per_identity) {
  KeystoreWorld world;
  auto key = world.key(KeyType::ec_p256, 1);
  auto good = world.identity(key, kTenantA);
  auto no_key = good;
  no_key.key = world.token.uri_for(std::string("\x09", 1));
  auto no_token = good;
  no_token.key = "pkcs11:token=absent;id=%01;type=private";
  auto no_cert = good;
  no_cert.cert_file = (world.tmp / "missing.pem").string();
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({no_key, no_token, no_cert, good});
  EXPECT_THAT(loads[0].error, HasSubstr("no private key matches pkcs11:token=orgproxy;id=%09;type=private"));
  EXPECT_THAT(loads[1].error, HasSubstr("no token matches"));
  EXPECT_THAT(loads[2].error, HasSubstr("cannot read certificate file"));
  EXPECT_TRUE(loads[3].identity) << loads[3].error;  // one bad identity never stops the others
}

// Certificate files are read on a second thread while the token is indexed (CertificatePrefetch): a load
// of many specs, good and bad mixed, must give each spec exactly the outcome it gets loaded on its own
// (one spec: no thread), in spec order.
TEST(KeystoreLoad, certificate_files_read_ahead_give_each_identity_the_outcome_of_its_own_load) {
  KeystoreWorld world;
  auto key = world.key(KeyType::ec_p256, 1);
  auto good = world.identity(key, kTenantA);
  auto wrong_ou = good;
  wrong_ou.tenant_id = kTenantB;
  auto no_cert = good;
  no_cert.cert_file = (world.tmp / "missing.pem").string();
  auto no_key = good;
  no_key.key = world.token.uri_for(std::string("\x09", 1));
  std::vector<IdentitySpec> specs;
  for (int i = 0; i < 12; ++i)
    for (const IdentitySpec* s : {&good, &wrong_ou, &no_cert, &good, &no_key}) specs.push_back(*s);
  auto keystore = Keystore::open(world.options());
  auto together = keystore->load_identities(specs);
  ASSERT_EQ(together.size(), specs.size());
  int loaded = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto alone = keystore->load_identities({specs[i]});
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(static_cast<bool>(together[i].identity), static_cast<bool>(alone[0].identity)) << "spec " << i;
    EXPECT_EQ(together[i].error, alone[0].error) << "spec " << i;
    if (together[i].identity) {
      ++loaded;
      EXPECT_EQ(X509_cmp(together[i].identity->certificate(), alone[0].identity->certificate()), 0);
    }
  }
  EXPECT_EQ(loaded, 24) << "positive control: the good specs load";
  EXPECT_THAT(together[1].error, HasSubstr("OU '312345678200002' is not the tenant id '498765432103017'"));
  EXPECT_THAT(together[2].error, HasSubstr("cannot read certificate file"));
  EXPECT_THAT(together[4].error, HasSubstr("no private key matches"));
}

TEST(KeystoreLoad, expired_and_not_yet_valid_certificates_are_refused) {
  KeystoreWorld world;
  auto key = world.key(KeyType::rsa2048, 1);
  const auto now = std::chrono::system_clock::now();
  testkit::OrgCertOptions expired;
  expired.not_before = now - std::chrono::hours(48);
  expired.not_after = now - std::chrono::hours(1);
  testkit::OrgCertOptions future;
  future.not_before = now + std::chrono::hours(1);
  future.not_after = now + std::chrono::hours(48);
  testkit::OrgCertOptions current;
  current.not_before = now - std::chrono::minutes(5);
  current.not_after = now + std::chrono::minutes(5);
  auto keystore_specs = std::vector<IdentitySpec>{world.identity(key, kTenantA, "dmp", "A", expired),
                                                  world.identity(key, kTenantA, "dmp", "A", future),
                                                  world.identity(key, kTenantA, "dmp", "A", current)};
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities(keystore_specs);
  EXPECT_THAT(loads[0].error, HasSubstr("expired"));
  EXPECT_THAT(loads[1].error, HasSubstr("not valid yet"));
  EXPECT_TRUE(loads[2].identity) << loads[2].error;
}

TEST(KeystoreLoad, insi_purposes_need_the_exact_common_name) {
  KeystoreWorld world;
  auto key = world.key(KeyType::rsa2048, 1);
  auto keystore_specs = std::vector<IdentitySpec>{
      world.identity(key, kTenantA, "insi-auto", "INSI-AUTO"), world.identity(key, kTenantA, "insi-manu", "INSI-MANU"),
      world.identity(key, kTenantA, "insi-auto", "insi-auto"), world.identity(key, kTenantA, "insi-manu", "INSI-AUTO"),
      world.identity(key, kTenantA, "insi-auto", "CABINET A")};
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities(keystore_specs);
  EXPECT_TRUE(loads[0].identity) << loads[0].error;
  EXPECT_TRUE(loads[1].identity) << loads[1].error;
  EXPECT_THAT(loads[2].error, HasSubstr("purpose insi-auto needs CN exactly 'INSI-AUTO', certificate has CN 'insi-auto'"));
  EXPECT_THAT(loads[3].error, HasSubstr("purpose insi-manu needs CN exactly 'INSI-MANU'"));
  EXPECT_FALSE(loads[4].identity);
}

TEST(KeystoreLoad, certificate_without_ou_or_with_foreign_chain_is_refused) {
  KeystoreWorld world;
  auto key = world.key(KeyType::rsa2048, 1);
  testkit::OrgCertOptions no_ou;
  no_ou.subject = {"75", "X", "", "NO OU"};
  IdentitySpec spec{kTenantA, "dmp", world.pki.issue_org_cert(key.public_key.get(), no_ou).string(), key.uri};
  // A file holding two unrelated leaves is not a chain.
  testkit::OrgCertOptions other_options;
  other_options.subject = {"75", "Y", kTenantA, "OTHER"};
  auto other = world.pki.issue_org_cert_with_key(other_options);
  std::ifstream a(world.identity(key).cert_file), b(other.chain);
  std::ofstream mixed(world.tmp / "mixed.pem");
  mixed << a.rdbuf() << b.rdbuf();
  mixed.close();
  IdentitySpec mixed_spec{kTenantA, "dmp", (world.tmp / "mixed.pem").string(), key.uri};
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({spec, mixed_spec});
  EXPECT_THAT(loads[0].error, HasSubstr("no OU (not an ORG certificate)"));
  EXPECT_THAT(loads[1].error, HasSubstr("do not form one chain"));
}

TEST(KeystoreLoad, identity_chain_verifies_to_its_root_and_not_to_a_rogue_one) {
  KeystoreWorld world;
  auto key = world.key(KeyType::ec_p256, 1);
  testkit::OrgCertOptions leaf_only;
  leaf_only.layout = testkit::ChainLayout::leaf_only;
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key), world.identity(key, kTenantA, "dmp", "A", leaf_only)});
  ASSERT_TRUE(loads[0].identity && loads[1].identity);
  auto rogue = testkit::TestPki::rogue(world.tmp / "rogue");
  EXPECT_EQ(verify_identity_chain(*loads[0].identity, world.pki.ca_bundle_pem().string()), "");
  EXPECT_THAT(verify_identity_chain(*loads[0].identity, rogue.ca_bundle_pem().string()),
              HasSubstr("chain does not verify to the CA bundle"));
  // Field case C15 (c): the intermediate is missing: a load-time message, not a mystery at the upstream.
  EXPECT_THAT(verify_identity_chain(*loads[1].identity, world.pki.ca_bundle_pem().string()),
              HasSubstr("unable to get local issuer certificate"));
}

}  // namespace
}  // namespace orgproxy::keystore::test
