// The trust-store cache: one parse per CA bundle however many identities and TLS contexts use it, and a
// fresh parse when the bundle changes on disk (rotated by rename, or rewritten in place), each with its
// positive control. Real identities from a SoftHSM token, real chains from the test PKI.
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "keystore_world.hpp"
#include "orgproxy/keystore/trust_store.hpp"

namespace orgproxy::keystore::test {
namespace {

using testkit::KeyType;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

/// Replaces `target` the way operators and package managers rotate a bundle: write beside it, rename over.
void rotate_to(const fs::path& target, const fs::path& new_content) {
  fs::path next = target;
  next += ".new";
  write_all(next, read_all(new_content));
  fs::rename(next, target);
}

TEST(TrustStoreCache, bundle_shared_by_many_identities_is_parsed_once) {
  KeystoreWorld world;
  auto a = world.key(KeyType::ec_p256, 1);
  auto b = world.key(KeyType::ec_p256, 2);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(a), world.identity(b, kTenantB, "dmp", "CABINET B")});
  ASSERT_TRUE(loads[0].identity && loads[1].identity) << loads[0].error << loads[1].error;

  TrustStoreCache cache;
  const std::string bundle = world.pki.ca_bundle_pem().string();
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(verify_identity_chain(*loads[0].identity, bundle, cache), "");
    EXPECT_EQ(verify_identity_chain(*loads[1].identity, bundle, cache), "");
  }
  EXPECT_EQ(cache.parses(), 1u) << "ten verifications against one unchanged bundle";

  // Positive control of the counter: another bundle is another parse, and its verdict is its own.
  auto rogue = testkit::TestPki::rogue(world.tmp / "rogue");
  EXPECT_THAT(verify_identity_chain(*loads[0].identity, rogue.ca_bundle_pem().string(), cache),
              HasSubstr("chain does not verify to the CA bundle"));
  EXPECT_EQ(cache.parses(), 2u);
  EXPECT_EQ(verify_identity_chain(*loads[0].identity, bundle, cache), "") << "the first store is still cached";
  EXPECT_EQ(cache.parses(), 2u);
}

TEST(TrustStoreCache, rotated_bundle_is_read_again_and_its_new_anchors_decide) {
  KeystoreWorld world;
  auto key = world.key(KeyType::ec_p256, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  auto rogue = testkit::TestPki::rogue(world.tmp / "rogue");

  const fs::path bundle = world.tmp / "upstream-ca.pem";
  fs::copy_file(world.pki.ca_bundle_pem(), bundle);
  TrustStoreCache cache;
  EXPECT_EQ(verify_identity_chain(*loads[0].identity, bundle.string(), cache), "") << "positive control";
  EXPECT_EQ(cache.parses(), 1u);

  // Rotated by rename to a bundle of another PKI: a cache that kept the old store would still say "".
  rotate_to(bundle, rogue.ca_bundle_pem());
  EXPECT_THAT(verify_identity_chain(*loads[0].identity, bundle.string(), cache),
              HasSubstr("chain does not verify to the CA bundle"));
  EXPECT_EQ(cache.parses(), 2u);

  // Rewritten in place (same inode) with the right anchors again: read again, trusted again.
  write_all(bundle, read_all(world.pki.ca_bundle_pem()));
  EXPECT_EQ(verify_identity_chain(*loads[0].identity, bundle.string(), cache), "");
  EXPECT_EQ(cache.parses(), 3u);
  EXPECT_EQ(verify_identity_chain(*loads[0].identity, bundle.string(), cache), "");
  EXPECT_EQ(cache.parses(), 3u) << "unchanged since the last parse";
}

TEST(TrustStoreCache, unreadable_bundle_names_the_file_and_is_not_cached) {
  KeystoreWorld world;
  auto key = world.key(KeyType::ec_p256, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;

  const fs::path bundle = world.tmp / "later-ca.pem";
  TrustStoreCache cache;
  EXPECT_THAT(verify_identity_chain(*loads[0].identity, bundle.string(), cache),
              HasSubstr("cannot read CA file " + bundle.string()));
  write_all(bundle, "not a certificate\n");
  EXPECT_THAT(verify_identity_chain(*loads[0].identity, bundle.string(), cache),
              HasSubstr("cannot load CA file " + bundle.string()));
  EXPECT_EQ(cache.parses(), 0u) << "failures are not cached";
  // Positive control: once the file holds the bundle, the same path verifies.
  write_all(bundle, read_all(world.pki.ca_bundle_pem()));
  EXPECT_EQ(verify_identity_chain(*loads[0].identity, bundle.string(), cache), "");
  EXPECT_EQ(cache.parses(), 1u);
}

TEST(TrustStoreCache, client_contexts_of_one_upstream_share_one_store) {
  KeystoreWorld world;
  auto a = world.key(KeyType::ec_p256, 1);
  auto b = world.key(KeyType::rsa2048, 2);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(a), world.identity(b, kTenantB, "dmp", "CABINET B")});
  ASSERT_TRUE(loads[0].identity && loads[1].identity) << loads[0].error << loads[1].error;

  TlsClientOptions dmp;
  dmp.ca_file = world.pki.ca_bundle_pem().string();
  auto ctx_a = make_client_context(*keystore, *loads[0].identity, dmp);
  auto ctx_b = make_client_context(*keystore, *loads[1].identity, dmp);
  ASSERT_NE(SSL_CTX_get_cert_store(ctx_a.get()), nullptr);
  EXPECT_EQ(SSL_CTX_get_cert_store(ctx_a.get()), SSL_CTX_get_cert_store(ctx_b.get()));

  // Positive control: another upstream's bundle gives its contexts another store.
  auto rogue = testkit::TestPki::rogue(world.tmp / "rogue");
  TlsClientOptions other = dmp;
  other.ca_file = rogue.ca_bundle_pem().string();
  auto ctx_c = make_client_context(*keystore, *loads[0].identity, other);
  EXPECT_NE(SSL_CTX_get_cert_store(ctx_c.get()), SSL_CTX_get_cert_store(ctx_a.get()));
  // The store outlives a context that shared it: the bundle's root is still there for the other.
  ctx_a.reset();
  STACK_OF(X509_OBJECT)* anchors = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx_b.get()));
  ASSERT_NE(anchors, nullptr);
  ASSERT_EQ(sk_X509_OBJECT_num(anchors), 1);
  EXPECT_EQ(X509_cmp(X509_OBJECT_get0_X509(sk_X509_OBJECT_value(anchors, 0)), world.pki.root_certificate()), 0);
}

}  // namespace
}  // namespace orgproxy::keystore::test
