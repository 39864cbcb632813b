// Many identities on one token load in one pass, and signing through the provider keeps the token's pace
// (kept object handles, one session per signer). Prints what it measures; asserts only correctness.
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/rsa.h>

#include "keystore_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using testkit::KeyType;
using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point start) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

bool sign_once(const Keystore& keystore, EVP_PKEY* key, bool pss) {
  const unsigned char message[] = "handshake transcript stand-in";
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  unsigned char sig[512];
  size_t length = sizeof sig;
  if (EVP_DigestSignInit_ex(ctx.get(), &pctx, "SHA256", keystore.libctx(), nullptr, key, nullptr) != 1) return false;
  if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
    return false;
  return EVP_DigestSign(ctx.get(), sig, &length, message, sizeof message) == 1;
}

TEST(KeystoreScale, sixty_identities_on_one_token_load_in_one_pass_and_sign_at_token_speed) {
  KeystoreWorld world;
  std::vector<IdentitySpec> specs;
  std::vector<testkit::TokenKey> keys;
  for (int i = 0; i < 56; ++i) keys.push_back(world.key(KeyType::ec_p256, static_cast<unsigned char>(i + 1)));
  for (int i = 0; i < 4; ++i) keys.push_back(world.key(KeyType::rsa2048, static_cast<unsigned char>(100 + i)));
  for (auto& key : keys) specs.push_back(world.identity(key));
  auto options = world.options();
  options.max_concurrent_signs = 2;
  auto keystore = Keystore::open(options);

  auto start = Clock::now();
  auto loads = keystore->load_identities(specs);
  std::cout << "[ measure  ] load_identities of 60 identities (56 P-256, 4 RSA) on one token: " << ms_since(start)
            << " ms\n";
  for (const auto& l : loads) ASSERT_TRUE(l.identity) << l.error;

  const Identity& rsa = *loads.back().identity;
  const Identity& ec = *loads.front().identity;
  for (auto [name, key, pss, n] : {std::tuple{"RSA-2048 PKCS#1", rsa.private_key(), false, 300},
                                   std::tuple{"RSA-2048 PSS", rsa.private_key(), true, 300},
                                   std::tuple{"P-256 ECDSA", ec.private_key(), false, 1000}}) {
    int ok = 0;
    start = Clock::now();
    for (int i = 0; i < n; ++i) ok += sign_once(*keystore, key, pss);
    const long one = std::max(1L, ms_since(start));
    std::atomic<int> ok2{0};
    start = Clock::now();
    std::thread a([&] { for (int i = 0; i < n; ++i) ok2 += sign_once(*keystore, key, pss); });
    std::thread b([&] { for (int i = 0; i < n; ++i) ok2 += sign_once(*keystore, key, pss); });
    a.join();
    b.join();
    const long two = std::max(1L, ms_since(start));
    std::cout << "[ measure  ] " << name << " signs/s through the provider: 1 thread " << n * 1000 / one
              << ", 2 threads " << 2 * n * 1000 / two << "\n";
    EXPECT_EQ(ok, n);
    EXPECT_EQ(ok2.load(), 2 * n);
  }
}

}  // namespace
}  // namespace orgproxy::keystore::test
