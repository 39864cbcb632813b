// A second load on an open keystore re-indexes the token, and another PKCS#11 user in the same process
// (here the SoftHsmToken fixture, as the admin commands will be) never logs the keystore out.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "keystore_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using testkit::KeyType;
using ::testing::HasSubstr;

/// Signs and verifies with the identity's key, in the keystore's library context.
bool signs(const Keystore& keystore, const Identity& identity) {
  const unsigned char message[] = "VIHF canonical form";
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  std::vector<unsigned char> sig(static_cast<size_t>(EVP_PKEY_get_size(identity.private_key())));
  size_t length = sig.size();
  if (EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", keystore.libctx(), nullptr, identity.private_key(),
                            nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &length, message, sizeof message) != 1)
    return false;
  EvpMdCtxPtr verify(EVP_MD_CTX_new());
  return EVP_DigestVerifyInit_ex(verify.get(), nullptr, "SHA256", nullptr, nullptr,
                                 X509_get0_pubkey(identity.certificate()), nullptr) == 1 &&
         EVP_DigestVerify(verify.get(), sig.data(), length, message, sizeof message) == 1;
}

TEST(KeystoreReload, key_added_while_open_is_found_by_the_next_load_and_old_keys_keep_signing) {
  KeystoreWorld world;
  auto first = world.key(KeyType::rsa2048, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(first)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;

  // The fixture opens its own session on the module the keystore holds, logs in (CKR_USER_ALREADY_LOGGED_IN),
  // generates, closes its session and finalises its p11-kit reference.
  auto second = world.key(KeyType::ec_p256, 2);
  auto spec2 = world.identity(second, kTenantB, "dmp", "CABINET B");
  EXPECT_TRUE(signs(*keystore, *loads[0].identity)) << "the keystore is still logged in";
  auto reload = keystore->load_identities({world.identity(first), spec2});
  ASSERT_TRUE(reload[0].identity) << reload[0].error;
  ASSERT_TRUE(reload[1].identity) << reload[1].error;
  EXPECT_TRUE(signs(*keystore, *reload[1].identity));
  EXPECT_TRUE(signs(*keystore, *loads[0].identity)) << "identities of the previous load stay valid";
}

// Field case C21 (d), the keystore's side: a load naming a token no module lists re-initialises the module
// (SoftHSM reads its token directory only at C_Initialize), except on the first load after open() (the list is
// fresh); keys loaded before keep signing, their handles looked up again after the re-initialisation.
TEST(KeystoreReload, load_naming_an_unlisted_token_reinitialises_the_module_and_loaded_keys_keep_signing) {
  KeystoreWorld world;
  auto first = world.key(KeyType::rsa2048, 1);
  IdentitySpec missing = world.identity(first, kTenantB, "dmp", "CABINET B");
  missing.key = "pkcs11:token=Cabinet%20absent;object=nothing;type=private";
  auto keystore = Keystore::open(world.options());
  const auto reinitialisations = [&] {
    auto r = keystore->stats().recoveries;
    return r.count("module_reinitialised") ? r["module_reinitialised"] : 0;
  };
  // First load after open(): the slot list was just read; nothing is re-initialised.
  auto loads = keystore->load_identities({world.identity(first), missing});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  EXPECT_THAT(loads[1].error, HasSubstr("no token matches pkcs11:token=Cabinet%20absent"));
  EXPECT_EQ(reinitialisations(), 0u);
  ASSERT_TRUE(signs(*keystore, *loads[0].identity));

  // Positive control: a reload whose tokens are all listed re-initialises nothing either.
  auto same = keystore->load_identities({world.identity(first)});
  ASSERT_TRUE(same[0].identity) << same[0].error;
  EXPECT_EQ(reinitialisations(), 0u);

  LogCapture log;
  auto reload = keystore->load_identities({world.identity(first), missing});
  EXPECT_EQ(reinitialisations(), 1u);
  EXPECT_THAT(log.text(), HasSubstr("re-initialised to find new tokens"));
  EXPECT_THAT(reload[1].error, HasSubstr("no token matches"));
  ASSERT_TRUE(reload[0].identity) << reload[0].error;
  EXPECT_TRUE(signs(*keystore, *reload[0].identity));
  // Identities of the loads before the re-initialisation: their sessions died with C_Finalize, their handles
  // were renumbered; they sign again without any reload of theirs.
  EXPECT_TRUE(signs(*keystore, *loads[0].identity));
  EXPECT_TRUE(signs(*keystore, *same[0].identity));
  EXPECT_TRUE(loads[0].identity->usable());
}

TEST(KeystoreReload, pem_key_file_is_accepted_only_when_allowed) {
  KeystoreWorld world;
  testkit::OrgCertOptions cert;
  cert.subject = {"75", "CABINET A", kTenantA, "CABINET A"};
  auto files = world.pki.issue_org_cert_with_key(cert);
  IdentitySpec spec{kTenantA, "dmp", files.chain.string(), files.key.string()};
  auto refused = Keystore::open(world.options())->load_identities({spec});
  EXPECT_THAT(refused[0].error, HasSubstr("PEM key files are not allowed"));
  auto options = world.options();
  options.allow_key_files = true;
  auto keystore = Keystore::open(options);
  auto loads = keystore->load_identities({spec});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  EXPECT_TRUE(signs(*keystore, *loads[0].identity));
  TlsClientOptions tls;
  tls.ca_file = world.pki.ca_bundle_pem().string();
  EXPECT_NO_THROW(make_client_context(*keystore, *loads[0].identity, tls));
}

}  // namespace
}  // namespace orgproxy::keystore::test
