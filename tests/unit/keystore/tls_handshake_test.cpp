// Real TLS handshakes, client side = make_client_context (or the shared context + present_identity) with
// the token key, server side = an in-process OpenSSL server (memory BIO pair) that requires a client
// certificate and trusts only the test root.
// Asserts what the server saw: the client's certificate, its chain, and the signature scheme used.
#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "keystore_world.hpp"
#include "orgproxy/keystore/shared_tls.hpp"

namespace orgproxy::keystore::test {
namespace {

using testkit::KeyType;
using ::testing::HasSubstr;

struct ServerOptions {
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  std::string client_sigalgs;  ///< signature algorithms the server accepts for the client's CertificateVerify
};

SslCtxPtr make_server(const KeystoreWorld& world, const testkit::IssuedFiles& server, const ServerOptions& o) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx.get(), server.chain.c_str()), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), server.key.c_str(), SSL_FILETYPE_PEM), 1);
  EXPECT_EQ(SSL_CTX_load_verify_file(ctx.get(), world.pki.root_pem().c_str()), 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx.get(), 2);
  SSL_CTX_set_min_proto_version(ctx.get(), o.min_version);
  SSL_CTX_set_max_proto_version(ctx.get(), o.max_version);
  if (!o.client_sigalgs.empty()) {
    EXPECT_EQ(SSL_CTX_set1_client_sigalgs_list(ctx.get(), o.client_sigalgs.c_str()), 1);
  }
  return ctx;
}

struct Handshake {
  bool ok = false;
  std::string error;
  X509Ptr client_cert_seen;  ///< by the server
  X509Ptr intermediate_seen;  ///< the server's peer chain holds only what came after the leaf
  long verify_result = -1;
  int client_signature_type = NID_undef;  ///< NID_rsassaPss, NID_rsaEncryption, NID_X9_62_id_ecPublicKey
  int client_signature_digest = NID_undef;
  std::string version;
};

/// Drives both ends over a BIO pair until both finish (or fail); never blocks. With `present`, the client
/// connection gets that identity with present_identity (a shared context carries none).
Handshake handshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx, const Identity* present = nullptr) {
  Handshake h;
  SSL* client = SSL_new(client_ctx);
  if (present != nullptr) {
    const std::string why = present_identity(client, *present, TLS1_2_VERSION);
    EXPECT_EQ(why, "");
  }
  SSL* server = SSL_new(server_ctx);
  BIO *client_bio = nullptr, *server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  bool client_done = false, server_done = false;
  for (int round = 0; round < 100 && !(client_done && server_done); ++round) {
    for (auto [ssl, done, side] : {std::tuple{client, &client_done, "client"}, std::tuple{server, &server_done, "server"}}) {
      if (*done) continue;
      int rc = SSL_do_handshake(ssl);
      if (rc == 1) {
        *done = true;
        continue;
      }
      int err = SSL_get_error(ssl, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        h.error = std::string(side) + ": " + buf;
        round = 100;
        break;
      }
    }
  }
  // TLS 1.3: the server checks the client's certificate after the client is done; one read settles it.
  if (h.error.empty() && client_done && server_done) {
    unsigned char byte = 'x';
    SSL_write(client, &byte, 1);
    SSL_read(server, &byte, 1);
    h.ok = true;
    h.client_cert_seen.reset(SSL_get1_peer_certificate(server));
    // On a server, SSL_get_peer_cert_chain() excludes the leaf: it is exactly the intermediates sent.
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(server);
    if (chain != nullptr && sk_X509_num(chain) == 1) {
      X509_up_ref(sk_X509_value(chain, 0));
      h.intermediate_seen.reset(sk_X509_value(chain, 0));
    }
    h.verify_result = SSL_get_verify_result(server);
    SSL_get_peer_signature_type_nid(server, &h.client_signature_type);
    SSL_get_peer_signature_nid(server, &h.client_signature_digest);
    h.version = SSL_get_version(server);
  }
  ERR_clear_error();
  SSL_free(client);
  SSL_free(server);
  return h;
}

class TlsHandshake : public ::testing::Test {
 protected:
  KeystoreWorld world;
  testkit::IssuedFiles server = world.pki.issue_server_cert("upstream", {"dmp.test.local"}, {"127.0.0.1"});

  TlsClientOptions client_options(int min = TLS1_2_VERSION, int max = TLS1_3_VERSION) const {
    TlsClientOptions o;
    o.ca_file = world.pki.ca_bundle_pem().string();
    o.min_version = min;
    o.max_version = max;
    return o;
  }

  void expect_server_saw(const Handshake& h, const Identity& identity) {
    ASSERT_TRUE(h.ok) << h.error;
    ASSERT_TRUE(h.client_cert_seen);
    EXPECT_EQ(X509_cmp(h.client_cert_seen.get(), identity.certificate()), 0);
    ASSERT_TRUE(h.intermediate_seen) << "the client sends its leaf and exactly one intermediate";
    EXPECT_EQ(X509_cmp(h.intermediate_seen.get(), world.pki.intermediate_certificate()), 0);
    EXPECT_EQ(h.verify_result, X509_V_OK);
  }
};

TEST_F(TlsHandshake, tls12_rsa_pkcs1_client_auth_signs_in_the_token) {
  auto key = world.key(KeyType::rsa2048, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  auto client = make_client_context(*keystore, *loads[0].identity, client_options(TLS1_2_VERSION, TLS1_2_VERSION));
  auto srv = make_server(world, server, {TLS1_2_VERSION, TLS1_2_VERSION, "RSA+SHA256"});
  Handshake h = handshake(client.get(), srv.get());
  expect_server_saw(h, *loads[0].identity);
  EXPECT_EQ(h.version, "TLSv1.2");
  EXPECT_EQ(h.client_signature_type, NID_rsaEncryption);
  EXPECT_EQ(h.client_signature_digest, NID_sha256);
}

TEST_F(TlsHandshake, tls13_rsa_client_auth_uses_pss_in_the_token) {
  auto key = world.key(KeyType::rsa2048, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  auto client = make_client_context(*keystore, *loads[0].identity, client_options());
  auto srv = make_server(world, server, {TLS1_3_VERSION, TLS1_3_VERSION, "rsa_pss_rsae_sha256"});
  Handshake h = handshake(client.get(), srv.get());
  expect_server_saw(h, *loads[0].identity);
  EXPECT_EQ(h.version, "TLSv1.3");
  EXPECT_EQ(h.client_signature_type, NID_rsassaPss);
  EXPECT_EQ(h.client_signature_digest, NID_sha256);
}

TEST_F(TlsHandshake, ecdsa_p256_client_auth_on_tls12_and_tls13) {
  auto key = world.key(KeyType::ec_p256, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    auto client = make_client_context(*keystore, *loads[0].identity, client_options(version, version));
    auto srv = make_server(world, server, {version, version, ""});
    Handshake h = handshake(client.get(), srv.get());
    expect_server_saw(h, *loads[0].identity);
    EXPECT_EQ(h.version, version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3");
    EXPECT_EQ(h.client_signature_type, NID_X9_62_id_ecPublicKey);
  }
}

TEST_F(TlsHandshake, ecdsa_p384_client_auth_on_tls13) {
  auto key = world.key(KeyType::ec_p384, 7);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  auto client = make_client_context(*keystore, *loads[0].identity, client_options(TLS1_3_VERSION, TLS1_3_VERSION));
  auto srv = make_server(world, server, {TLS1_3_VERSION, TLS1_3_VERSION, "ecdsa_secp384r1_sha384"});
  Handshake h = handshake(client.get(), srv.get());
  expect_server_saw(h, *loads[0].identity);
  EXPECT_EQ(h.client_signature_digest, NID_sha384);
}

TEST_F(TlsHandshake, server_trusting_a_rogue_root_rejects_the_client_and_a_rogue_server_is_rejected) {
  auto key = world.key(KeyType::ec_p256, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  auto client = make_client_context(*keystore, *loads[0].identity, client_options());
  auto rogue = testkit::TestPki::rogue(world.tmp / "rogue");
  auto rogue_server = rogue.issue_server_cert("rogue-upstream", {"dmp.test.local"}, {});
  KeystoreWorld* w = &world;
  auto srv = make_server(*w, rogue_server, {});
  Handshake h = handshake(client.get(), srv.get());
  EXPECT_FALSE(h.ok);
  EXPECT_THAT(h.error, HasSubstr("certificate verify failed"));
  auto good = make_server(world, server, {});
  EXPECT_TRUE(handshake(client.get(), good.get()).ok);  // positive control
}

TEST_F(TlsHandshake, two_threads_handshake_concurrently_with_keys_on_the_same_token) {
  auto rsa = world.key(KeyType::rsa2048, 1);
  auto ec = world.key(KeyType::ec_p256, 2);
  auto options = world.options();
  options.max_concurrent_signs = 2;
  auto keystore = Keystore::open(options);
  auto loads = keystore->load_identities({world.identity(rsa, kTenantA), world.identity(ec, kTenantB, "dmp", "CABINET B")});
  ASSERT_TRUE(loads[0].identity && loads[1].identity);
  auto srv = make_server(world, server, {});
  std::atomic<int> wrong{0}, failed{0};
  auto worker = [&](const Identity& identity, int rounds) {
    auto client = make_client_context(*keystore, identity, client_options());
    for (int i = 0; i < rounds; ++i) {
      Handshake h = handshake(client.get(), srv.get());
      if (!h.ok) {
        ++failed;
      } else if (X509_cmp(h.client_cert_seen.get(), identity.certificate()) != 0) {
        ++wrong;
      }
    }
  };
  const auto start = std::chrono::steady_clock::now();
  std::thread a(worker, std::cref(*loads[0].identity), 40);
  std::thread b(worker, std::cref(*loads[1].identity), 40);
  a.join();
  b.join();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  std::cout << "[ measure  ] 80 mTLS handshakes (RSA TLS 1.3 + P-256) on 2 threads: " << ms.count() << " ms\n";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
}

// A SoftHSM token whose RSA keys cannot sign PSS (every PSS mechanism disabled).
testkit::SoftHsmConfig softhsm_without_pss() {
  testkit::SoftHsmConfig config;
  config.mechanisms =
      "-CKM_RSA_PKCS_PSS,CKM_RSA_PKCS_PSS,CKM_SHA1_RSA_PKCS_PSS,CKM_SHA224_RSA_PKCS_PSS,CKM_SHA256_RSA_PKCS_PSS,"
      "CKM_SHA384_RSA_PKCS_PSS,CKM_SHA512_RSA_PKCS_PSS";
  // softhsm2.conf(5): one leading '-' makes it a list of disabled mechanisms. SoftHSM 2.6.1 ignores the first
  // entry of such a list (measured with pkcs11-tool -M), hence CKM_RSA_PKCS_PSS twice.
  return config;
}

TEST(TlsHandshakeWithoutPss, token_without_pss_caps_rsa_identity_at_tls12_pkcs1) {
  KeystoreWorld world(softhsm_without_pss());
  auto server = world.pki.issue_server_cert("upstream", {"dmp.test.local"}, {});
  auto key = world.key(KeyType::rsa2048, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  EXPECT_FALSE(loads[0].identity->supports_pss());

  TlsClientOptions o;
  o.ca_file = world.pki.ca_bundle_pem().string();
  auto client = make_client_context(*keystore, *loads[0].identity, o);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(client.get()), TLS1_2_VERSION);
  // A server offering TLS 1.3 and PSS first still gets a TLS 1.2 PKCS#1 signature.
  auto srv = make_server(world, server, {TLS1_2_VERSION, TLS1_3_VERSION, "rsa_pss_rsae_sha256:RSA+SHA256"});
  Handshake h = handshake(client.get(), srv.get());
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.version, "TLSv1.2");
  EXPECT_EQ(h.client_signature_type, NID_rsaEncryption);
  // An upstream that demands TLS 1.3 gets a clear error at context creation, not a failed handshake later.
  o.min_version = TLS1_3_VERSION;
  try {
    make_client_context(*keystore, *loads[0].identity, o);
    ADD_FAILURE() << "TLS 1.3-only context built without PSS";
  } catch (const KeystoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("lacks CKM_RSA_PKCS_PSS"));
    EXPECT_THAT(e.what(), HasSubstr("tenant 312345678200002"));
  }
}

// One context per upstream shared by every identity (the daemon's HTTP path): each connection presents the
// identity set on it, never another's, and the context alone presents none.
TEST_F(TlsHandshake, shared_context_presents_each_connections_own_identity) {
  auto rsa = world.key(KeyType::rsa2048, 1);
  auto ec = world.key(KeyType::ec_p256, 2);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(rsa, kTenantA), world.identity(ec, kTenantB, "dmp", "CABINET B")});
  ASSERT_TRUE(loads[0].identity && loads[1].identity) << loads[0].error << loads[1].error;
  auto shared = make_shared_client_context(*keystore, client_options());
  auto srv = make_server(world, server, {});
  // Negative: the shared context carries no certificate, so a server requiring one refuses the client.
  Handshake none = handshake(shared.get(), srv.get());
  EXPECT_FALSE(none.ok);
  for (int round = 0; round < 2; ++round) {
    for (const auto& load : loads) {
      Handshake h = handshake(shared.get(), srv.get(), load.identity.get());
      expect_server_saw(h, *load.identity);
      EXPECT_EQ(h.version, "TLSv1.3");
    }
  }
}

TEST(TlsHandshakeWithoutPss, shared_context_caps_an_rsa_identity_without_pss_per_connection) {
  KeystoreWorld world(softhsm_without_pss());
  auto server = world.pki.issue_server_cert("upstream", {"dmp.test.local"}, {});
  auto key = world.key(KeyType::rsa2048, 1);
  auto keystore = Keystore::open(world.options());
  auto loads = keystore->load_identities({world.identity(key)});
  ASSERT_TRUE(loads[0].identity) << loads[0].error;
  TlsClientOptions o;
  o.ca_file = world.pki.ca_bundle_pem().string();
  auto shared = make_shared_client_context(*keystore, o);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(shared.get()), TLS1_3_VERSION);  // the context is not capped
  auto srv = make_server(world, server, {TLS1_2_VERSION, TLS1_3_VERSION, "rsa_pss_rsae_sha256:RSA+SHA256"});
  Handshake h = handshake(shared.get(), srv.get(), loads[0].identity.get());
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.version, "TLSv1.2");  // the connection is
  EXPECT_EQ(h.client_signature_type, NID_rsaEncryption);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(shared.get()), &SSL_free);
  EXPECT_THAT(present_identity(ssl.get(), *loads[0].identity, TLS1_3_VERSION), HasSubstr("lacks CKM_RSA_PKCS_PSS"));
  EXPECT_EQ(present_identity(ssl.get(), *loads[0].identity, TLS1_2_VERSION), "");  // positive control
}

}  // namespace
}  // namespace orgproxy::keystore::test
