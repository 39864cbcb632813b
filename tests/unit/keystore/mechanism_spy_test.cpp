// Field case C18: which mechanism the token is asked for, seen by OpenSC's pkcs11-spy placed between the
// keystore and SoftHSM. TLS 1.3 with an RSA key must use CKM_RSA_PKCS_PSS {SHA-256, MGF1-SHA256, salt 32};
// TLS 1.2 PKCS#1 uses CKM_RSA_PKCS; raw RSA (CKM_RSA_X_509) is never used. The same log shows the module
// initialised with CKF_OS_LOCKING_OK and a single object search for the load and both handshakes.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "keystore_world.hpp"

namespace orgproxy::keystore::test {
namespace {

using testkit::KeyType;
using ::testing::HasSubstr;
using ::testing::Not;

std::string spy_module() {
  for (const char* path : {"/usr/lib/x86_64-linux-gnu/pkcs11-spy.so", "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
                           "/usr/lib/aarch64-linux-gnu/pkcs11-spy.so", "/usr/lib/pkcs11-spy.so"})
    if (std::filesystem::exists(path)) return path;
  return {};
}

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Handshakes once over a BIO pair; returns the error text or "".
std::string handshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
  SSL* client = SSL_new(client_ctx);
  SSL* server = SSL_new(server_ctx);
  BIO *cb = nullptr, *sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(client, cb, cb);
  SSL_set_bio(server, sb, sb);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  int c = 0, s = 0;
  for (int i = 0; i < 50 && (c != 1 || s != 1); ++i) {
    if (c != 1) c = SSL_do_handshake(client);
    if (s != 1) s = SSL_do_handshake(server);
  }
  unsigned char byte = 'x';
  if (c == 1 && s == 1) {
    SSL_write(client, &byte, 1);
    SSL_read(server, &byte, 1);
  }
  std::string error = (c == 1 && s == 1 && SSL_get_verify_result(server) == X509_V_OK) ? "" : "handshake failed";
  SSL_free(client);
  SSL_free(server);
  return error;
}

TEST(TokenMechanism, tls13_rsa_signs_with_pkcs_pss_sha256_and_tls12_with_pkcs1_never_raw_rsa) {
  const std::string spy = spy_module();
  ASSERT_FALSE(spy.empty()) << "OpenSC's pkcs11-spy.so is needed (package opensc, scripts/install-deps.sh)";
  KeystoreWorld world;
  auto key = world.key(KeyType::rsa2048, 1);
  auto server_files = world.pki.issue_server_cert("upstream", {"dmp.test.local"}, {});
  const auto log = world.tmp / "pkcs11-spy.log";
  ::setenv("PKCS11SPY", testkit::SoftHsmToken::module_path().c_str(), 1);
  ::setenv("PKCS11SPY_OUTPUT", log.c_str(), 1);

  KeystoreOptions options = world.options();
  options.modules = {{"softhsm-behind-spy", spy}};
  {
    auto keystore = Keystore::open(options);
    auto loads = keystore->load_identities({world.identity(key)});
    ASSERT_TRUE(loads[0].identity) << loads[0].error;
    TlsClientOptions tls;
    tls.ca_file = world.pki.ca_bundle_pem().string();
    auto client = make_client_context(*keystore, *loads[0].identity, tls);
    for (auto [version, sigalgs] : {std::pair{TLS1_3_VERSION, "rsa_pss_rsae_sha256"}, std::pair{TLS1_2_VERSION, "RSA+SHA256"}}) {
      SslCtxPtr server(SSL_CTX_new(TLS_server_method()));
      SSL_CTX_use_certificate_chain_file(server.get(), server_files.chain.c_str());
      SSL_CTX_use_PrivateKey_file(server.get(), server_files.key.c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_load_verify_file(server.get(), world.pki.root_pem().c_str());
      SSL_CTX_set_verify(server.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      SSL_CTX_set_min_proto_version(server.get(), version);
      SSL_CTX_set_max_proto_version(server.get(), version);
      SSL_CTX_set1_client_sigalgs_list(server.get(), sigalgs);
      EXPECT_EQ(handshake(client.get(), server.get()), "") << sigalgs;
    }
  }
  ::unsetenv("PKCS11SPY");
  ::unsetenv("PKCS11SPY_OUTPUT");

  const std::string text = read(log);
  EXPECT_NE(text.find("CKF_OS_LOCKING_OK"), std::string::npos) << "p11-kit managed mode passes OS locking";
  size_t searches = 0;
  for (size_t at = text.find(": C_FindObjectsInit"); at != std::string::npos; at = text.find(": C_FindObjectsInit", at + 1))
    ++searches;
  EXPECT_EQ(searches, 1u) << "one object search per token per load, none per handshake";
  // Only the signing calls (the spy also lists the token's mechanisms, and prints the PIN: test log only).
  std::string sign_calls;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.find("pMechanism->") != std::string::npos) sign_calls += line + "\n";
  EXPECT_THAT(sign_calls, HasSubstr("pMechanism->type = CKM_RSA_PKCS_PSS "));
  EXPECT_THAT(sign_calls, HasSubstr("pMechanism->pParameter->hashAlg = CKM_SHA256 "));
  EXPECT_THAT(sign_calls, HasSubstr("pMechanism->pParameter->mgf = CKG_MGF1_SHA256"));
  EXPECT_THAT(sign_calls, HasSubstr("pMechanism->pParameter->sLen = 32"));
  EXPECT_THAT(sign_calls, HasSubstr("pMechanism->type = CKM_RSA_PKCS "));
  EXPECT_THAT(sign_calls, Not(HasSubstr("CKM_RSA_X_509")));
}

}  // namespace
}  // namespace orgproxy::keystore::test
