// TLS client contexts presenting an identity, and verification of an identity's chain.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"
#include "orgproxy/keystore/shared_tls.hpp"
#include "orgproxy/keystore/trust_store.hpp"

namespace orgproxy::keystore {
namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string who(const Identity& identity) {
  return "tenant " + identity.tenant_id() + ", purpose " + identity.purpose();
}

}  // namespace

namespace {

// Trust, verification and session-cache settings common to the per-identity and the shared contexts.
void set_trust_and_sessions(SSL_CTX* ctx, const Keystore& keystore, const TlsClientOptions& options,
                            const std::string& context) {
  // Trust: the upstream's CA bundle only, never the default paths. One parsed store per file set is shared
  // by every context (10,000 sites would otherwise hold 10,000 copies of the same bundle).
  if (options.ca_file.empty()) throw KeystoreError(context + ": no CA file for the upstream");
  std::string store_error;
  X509StorePtr store = TrustStoreCache::shared().get(keystore.libctx(), options.ca_file, options.crl_files, store_error);
  if (!store) throw KeystoreError(context + ": " + store_error);
  SSL_CTX_set1_cert_store(ctx, store.get());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // OpenSSL keeps no client sessions of its own; the new-session callback still fires (TLS 1.3 tickets),
  // so the daemon can key its own cache by (tenant, identity, upstream).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
}

}  // namespace

SslCtxPtr make_shared_client_context(const Keystore& keystore, const TlsClientOptions& options) {
  const std::string context = "upstream TLS context (CA file " + options.ca_file + ")";
  SslCtxPtr ctx(SSL_CTX_new_ex(keystore.libctx(), nullptr, TLS_client_method()));
  if (!ctx) throw KeystoreError(context + ": SSL_CTX_new_ex failed: " + openssl_error());
  if (SSL_CTX_set_min_proto_version(ctx.get(), options.min_version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), options.max_version) != 1)
    throw KeystoreError(context + ": bad TLS version bounds");
  set_trust_and_sessions(ctx.get(), keystore, options, context);
  return ctx;
}

std::string present_identity(SSL* ssl, const Identity& identity, int min_version) {
  const bool rsa = EVP_PKEY_is_a(identity.private_key(), "RSA");
  if (rsa && !identity.supports_pss()) {
    // As make_client_context: TLS 1.3 signs with RSA only through PSS (RFC 8446 §4.2.3).
    if (min_version > TLS1_2_VERSION)
      return who(identity) + ": the token lacks CKM_RSA_PKCS_PSS, so TLS 1.3 (required by this upstream) "
                             "cannot be used with this RSA key";
    if (SSL_set_max_proto_version(ssl, TLS1_2_VERSION) != 1 ||
        SSL_set1_client_sigalgs_list(ssl, "RSA+SHA256:RSA+SHA384:RSA+SHA512") != 1)
      return who(identity) + ": cannot restrict client signature algorithms: " + openssl_error();
  }
  // The key was matched to the certificate at load (public parts or a test signature), so the per-connection
  // EVP_PKEY_eq of SSL_use_cert_and_key would only repeat it; it still runs, and costs microseconds.
  if (SSL_use_cert_and_key(ssl, identity.certificate(), identity.private_key(), identity.intermediates(), 1) != 1)
    return who(identity) + ": cannot present the certificate and token key: " + openssl_error();
  return {};
}

SslCtxPtr make_client_context(const Keystore& keystore, const Identity& identity, const TlsClientOptions& options) {
  const std::string context = who(identity);
  SslCtxPtr ctx(SSL_CTX_new_ex(keystore.libctx(), nullptr, TLS_client_method()));
  if (!ctx) throw KeystoreError(context + ": SSL_CTX_new_ex failed: " + openssl_error());

  int max_version = options.max_version;
  const bool rsa = EVP_PKEY_is_a(identity.private_key(), "RSA");
  if (rsa && !identity.supports_pss()) {
    // TLS 1.3 signs with RSA only through PSS (RFC 8446 §4.2.3); without it in the token, stay at TLS 1.2
    // and offer only PKCS#1 v1.5 signature algorithms for the client certificate.
    if (options.min_version > TLS1_2_VERSION)
      throw KeystoreError(context + ": the token lacks CKM_RSA_PKCS_PSS, so TLS 1.3 (required by this upstream) "
                                    "cannot be used with this RSA key");
    max_version = std::min(max_version, TLS1_2_VERSION);
    if (SSL_CTX_set1_client_sigalgs_list(ctx.get(), "RSA+SHA256:RSA+SHA384:RSA+SHA512") != 1)
      throw KeystoreError(context + ": cannot restrict client signature algorithms: " + openssl_error());
  }
  if (SSL_CTX_set_min_proto_version(ctx.get(), options.min_version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), max_version) != 1)
    throw KeystoreError(context + ": bad TLS version bounds");

  set_trust_and_sessions(ctx.get(), keystore, options, context);

  if (SSL_CTX_use_certificate(ctx.get(), identity.certificate()) != 1)
    throw KeystoreError(context + ": SSL_CTX_use_certificate failed: " + openssl_error());
  STACK_OF(X509)* intermediates = identity.intermediates();
  for (int i = 0; intermediates != nullptr && i < sk_X509_num(intermediates); ++i)
    if (SSL_CTX_add1_chain_cert(ctx.get(), sk_X509_value(intermediates, i)) != 1)
      throw KeystoreError(context + ": SSL_CTX_add1_chain_cert failed: " + openssl_error());
  if (SSL_CTX_use_PrivateKey(ctx.get(), identity.private_key()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    throw KeystoreError(context + ": the token key does not fit the certificate: " + openssl_error());
  return ctx;
}

std::string verify_identity_chain(const Identity& identity, const std::string& ca_file) {
  return verify_identity_chain(identity, ca_file, TrustStoreCache::shared());
}

std::string verify_identity_chain(const Identity& identity, const std::string& ca_file, TrustStoreCache& cache) {
  std::string store_error;
  X509StorePtr store = cache.get(nullptr, ca_file, {}, store_error);
  if (!store) return who(identity) + ": " + store_error;
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), identity.certificate(), identity.intermediates()) != 1)
    return who(identity) + ": cannot set up chain verification";
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) == 1) return {};
  const int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return who(identity) + ": chain does not verify to the CA bundle " + ca_file + ": " +
         X509_verify_cert_error_string(err);
}

}  // namespace orgproxy::keystore
