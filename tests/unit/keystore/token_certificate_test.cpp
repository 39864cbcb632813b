// Identities without a certificate file take their certificate from the token (the X.509 object with the key's
// CKA_ID, as `orgproxy keys install-cert` stores it) and their intermediates from the token's CA objects.
#include <chrono>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "keystore_world.hpp"
#include "orgproxy/testkit/files.hpp"

namespace orgproxy::keystore::test {
namespace {

using ::testing::HasSubstr;
using std::chrono::hours;
using Clock = std::chrono::system_clock;

/// Issues a certificate of tenant A for `key` valid over [not_before, not_after) and stores it on the token
/// under `id`; returns its serial as nginx and Identity::serial_hex() print it.
std::string store_issued(KeystoreWorld& w, const testkit::TokenKey& key, const std::string& id,
                         Clock::time_point not_before, Clock::time_point not_after) {
  testkit::OrgCertOptions o;
  o.not_before = not_before;
  o.not_after = not_after;
  const auto spec = w.identity(key, kTenantA, "dmp", "CABINET A", o);
  auto cert = testkit::read_pem_certificate(spec.cert_file);
  w.token.store_certificate(cert.get(), id, "cert");
  return testkit::cert_serial_hex(spec.cert_file);
}

TEST(TokenCertificate, newest_valid_certificate_with_the_keys_id_is_used_with_its_chain_from_the_token) {
  KeystoreWorld w;
  auto key = w.key(testkit::KeyType::rsa2048, 0x0a, "site-a");
  const auto now = Clock::now();
  const std::string old_serial = store_issued(w, key, key.id, now - hours(240), now + hours(24 * 300));
  const std::string current_serial = store_issued(w, key, key.id, now - hours(1), now + hours(24 * 365));
  store_issued(w, key, key.id, now + hours(24), now + hours(24 * 400));  // not valid yet: never chosen
  w.token.store_certificate(w.pki.intermediate_certificate(), "ca-1", "ORGANISATIONS");
  w.token.store_certificate(w.pki.root_certificate(), "ca-0", "RACINE");

  auto keystore = Keystore::open(w.options());
  IdentitySpec spec{kTenantA, "dmp", "", key.uri};
  auto loads = keystore->load_identities({spec});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  const Identity& identity = *loads[0].identity;
  EXPECT_EQ(identity.serial_hex(), current_serial);
  EXPECT_NE(identity.serial_hex(), old_serial);
  ASSERT_EQ(sk_X509_num(identity.intermediates()), 1) << "the intermediate only: the root is the peer's anchor";
  EXPECT_EQ(X509_cmp(sk_X509_value(identity.intermediates(), 0), w.pki.intermediate_certificate()), 0);
  EXPECT_EQ(verify_identity_chain(identity, w.pki.ca_bundle_pem().string()), "");
}

TEST(TokenCertificate, key_without_its_certificate_on_the_token_is_unavailable_and_says_why) {
  KeystoreWorld w;
  auto with_cert = w.key(testkit::KeyType::ec_p256, 0x01, "with-cert");
  auto without = w.key(testkit::KeyType::rsa2048, 0x02, "without");
  auto foreign = w.key(testkit::KeyType::rsa2048, 0x03, "foreign");
  const auto now = Clock::now();
  store_issued(w, with_cert, with_cert.id, now - hours(1), now + hours(24));
  // A certificate filed under the key's CKA_ID but issued for another key is not taken for it.
  store_issued(w, with_cert, foreign.id, now - hours(1), now + hours(24));

  auto keystore = Keystore::open(w.options());
  auto loads = keystore->load_identities(
      {{kTenantA, "dmp", "", with_cert.uri}, {kTenantA, "dmp", "", without.uri}, {kTenantA, "dmp", "", foreign.uri}});
  EXPECT_TRUE(loads[0].identity) << loads[0].error;  // positive control
  EXPECT_FALSE(loads[1].identity);
  EXPECT_THAT(loads[1].error, HasSubstr("no certificate on the token has the key's CKA_ID"));
  EXPECT_FALSE(loads[2].identity);
  EXPECT_THAT(loads[2].error, HasSubstr("none for this key"));
}

}  // namespace
}  // namespace orgproxy::keystore::test
