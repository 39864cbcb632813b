// The PKI and token fixtures the whole suite relies on: certificates chain to the root through the
// intermediate, server SANs carry IP literals, token keys are really in the token and match their certificates.
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/softhsm_token.hpp"
#include "scratch_dir.hpp"

namespace orgproxy::keystore::test {
namespace {

using namespace orgproxy::testkit;

/// X509 verification of `leaf` with `untrusted` intermediates against `trusted` roots; returns the error code.
int verify(X509* leaf, const std::vector<X509*>& untrusted, X509* trusted) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, trusted);
  STACK_OF(X509)* chain = sk_X509_new_null();
  for (X509* c : untrusted) sk_X509_push(chain, c);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, chain);
  int ok = X509_verify_cert(ctx);
  int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  sk_X509_free(chain);
  X509_STORE_free(store);
  return err;
}

std::string subject_field(X509* cert, int nid) {
  X509_NAME* name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
}

OrgCertOptions site_a(const std::string& cn) {
  OrgCertOptions o;
  o.subject = {"75", "CABINET DE RADIOLOGIE A", "312345678200002", cn};
  return o;
}

TEST(TestPkiFixture, org_certificate_verifies_to_root_only_through_the_intermediate) {
  ScratchDir tmp;
  TestPki pki(tmp / "pki");
  IssuedFiles files = pki.issue_org_cert_with_key(site_a("CABINET A"));
  auto chain = read_pem_certificates(files.chain);
  ASSERT_EQ(chain.size(), 2u);
  X509* leaf = chain[0].get();
  EXPECT_EQ(X509_cmp(chain[1].get(), pki.intermediate_certificate()), 0);
  EXPECT_EQ(subject_field(leaf, NID_organizationalUnitName), "312345678200002");
  EXPECT_EQ(subject_field(leaf, NID_stateOrProvinceName), "75");
  EXPECT_EQ(subject_field(leaf, NID_commonName), "CABINET A");
  EXPECT_TRUE(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT);

  EXPECT_EQ(verify(leaf, {chain[1].get()}, pki.root_certificate()), X509_V_OK);
  // Without the intermediate the root alone cannot vouch for the leaf (the case of field case C15).
  EXPECT_EQ(verify(leaf, {}, pki.root_certificate()), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  // A rogue root does not either.
  TestPki rogue = TestPki::rogue(tmp / "rogue");
  EXPECT_NE(verify(leaf, {chain[1].get()}, rogue.root_certificate()), X509_V_OK);

  auto bundle = read_pem_certificates(pki.ca_bundle_pem());
  ASSERT_EQ(bundle.size(), 1u) << "the CA bundle holds the root only";
  EXPECT_EQ(X509_cmp(bundle[0].get(), pki.root_certificate()), 0);
}

TEST(TestPkiFixture, chain_file_layouts_and_validity_window_are_as_requested) {
  ScratchDir tmp;
  TestPki pki(tmp / "pki");
  auto options = site_a("CABINET A");
  options.layout = ChainLayout::intermediate_then_leaf;
  const auto past = std::chrono::system_clock::now() - std::chrono::hours(48);
  options.not_before = past - std::chrono::hours(24);
  options.not_after = past;
  auto reversed = read_pem_certificates(pki.issue_org_cert_with_key(options).chain);
  ASSERT_EQ(reversed.size(), 2u);
  EXPECT_EQ(X509_cmp(reversed[0].get(), pki.intermediate_certificate()), 0);
  EXPECT_EQ(verify(reversed[1].get(), {reversed[0].get()}, pki.root_certificate()), X509_V_ERR_CERT_HAS_EXPIRED);

  options.layout = ChainLayout::leaf_only;
  options.not_after = std::chrono::system_clock::now() + std::chrono::hours(1);
  EXPECT_EQ(read_pem_certificates(pki.issue_org_cert_with_key(options, KeyType::ec_p256).chain).size(), 1u);
}

TEST(TestPkiFixture, server_certificate_names_dns_and_ip_literals) {
  ScratchDir tmp;
  TestPki pki(tmp / "pki");
  IssuedFiles files = pki.issue_server_cert("dmp", {"dmp.test.local"}, {"127.0.0.1", "::1"});
  auto chain = read_pem_certificates(files.chain);
  ASSERT_EQ(chain.size(), 2u);
  X509* leaf = chain[0].get();
  EXPECT_EQ(X509_check_host(leaf, "dmp.test.local", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf, "other.test.local", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.2", 0), 0);
  EXPECT_TRUE(std::filesystem::exists(files.key));
}

TEST(SoftHsmTokenFixture, keys_generated_in_the_token_match_their_certificates) {
  ScratchDir tmp;
  TestPki pki(tmp / "pki");
  const auto start = std::chrono::steady_clock::now();
  SoftHsmToken token(tmp / "hsm", "orgproxy", "1234");
  std::vector<TokenKey> rsa;
  for (int i = 1; i <= 3; ++i)
    rsa.push_back(token.generate_key({KeyType::rsa2048, std::string(1, static_cast<char>(i)), "rsa-" + std::to_string(i)}));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  std::cout << "[ measure  ] token init + 3 RSA-2048 keys: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms\n";

  TokenKey p256 = token.generate_key({KeyType::ec_p256, std::string("\x01\xfe", 2), "ec p256"});
  TokenKey p384 = token.generate_key({KeyType::ec_p384, "\x10", "ec-p384"});
  EXPECT_EQ(rsa[0].uri, "pkcs11:token=orgproxy;id=%01;type=private");
  EXPECT_EQ(p256.uri, "pkcs11:token=orgproxy;id=%01%FE;type=private");
  EXPECT_EQ(EVP_PKEY_get_bits(rsa[0].public_key.get()), 2048);
  EXPECT_EQ(EVP_PKEY_get_bits(p256.public_key.get()), 256);
  EXPECT_EQ(EVP_PKEY_get_bits(p384.public_key.get()), 384);
  EXPECT_NE(EVP_PKEY_eq(rsa[0].public_key.get(), rsa[1].public_key.get()), 1) << "each key is fresh";

  for (const TokenKey* key : {&rsa[0], &p256, &p384}) {
    auto chain = read_pem_certificates(pki.issue_org_cert(key->public_key.get(), site_a("CABINET A")));
    PkeyHandle cert_key(X509_get_pubkey(chain[0].get()));
    EXPECT_EQ(EVP_PKEY_eq(cert_key.get(), key->public_key.get()), 1) << key->uri;
    EXPECT_EQ(verify(chain[0].get(), {chain[1].get()}, pki.root_certificate()), X509_V_OK);
  }
  auto chain = read_pem_certificates(pki.issue_org_cert(rsa[0].public_key.get(), site_a("CABINET A")));
  EXPECT_NO_THROW(token.store_certificate(chain[0].get(), rsa[0].id, "cert-1"));

  std::ifstream pin(token.pin_file());
  std::string content((std::istreambuf_iterator<char>(pin)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "1234\n");
  EXPECT_EQ(std::string(std::getenv("SOFTHSM2_CONF")), token.conf_path().string());
}

TEST(SoftHsmTokenFixture, two_tokens_can_share_one_directory_and_are_addressed_by_label) {
  ScratchDir tmp;
  SoftHsmToken a(tmp / "hsm", "Cabinet A", "1234");
  SoftHsmToken b(tmp / "hsm", "Cabinet B", "1234");
  EXPECT_EQ(a.conf_path(), b.conf_path());
  TokenKey ka = a.generate_key({KeyType::ec_p256, "\x01", "auth-key"});
  TokenKey kb = b.generate_key({KeyType::ec_p256, "\x01", "auth-key"});
  EXPECT_EQ(ka.uri, "pkcs11:token=Cabinet%20A;id=%01;type=private");
  EXPECT_NE(EVP_PKEY_eq(ka.public_key.get(), kb.public_key.get()), 1);
  EXPECT_THROW(SoftHsmToken(tmp / "hsm", std::string(33, 'x'), "1234"), std::invalid_argument);
}

}  // namespace
}  // namespace orgproxy::keystore::test
