#include "orgproxy/daemon/downstream_tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "downstream_stream.hpp"
#include "orgproxy/keystore/keystore.hpp"
#include "orgproxy/keystore/ossl_ptr.hpp"

namespace orgproxy::daemon {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 keeps OpenSSL's defaults (all AEAD).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string last_openssl_error() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (!e) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

// RFC 7301 §3.2: pick http/1.1 when offered; a client that offers ALPN without it cannot talk to us.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void*) {
  static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  for (unsigned i = 0; i < inlen;) {
    unsigned len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == sizeof kHttp11 && std::memcmp(in + i + 1, kHttp11, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

std::string utf8_of(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int len = ASN1_STRING_to_UTF8(&out, s);
  if (len < 0) return {};
  std::string text(reinterpret_cast<const char*>(out), static_cast<std::size_t>(len));
  OPENSSL_free(out);
  return text;
}

}  // namespace

namespace {

[[noreturn]] void fail(std::string_view listener_name, const std::string& what) {
  throw ListenerTlsError("listener " + std::string(listener_name) + ": " + what + ": " + last_openssl_error());
}

// Everything but the server certificate and key.
void configure_server_context(SSL_CTX* c, const config::ListenerTls& tls, std::string_view listener_name) {
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  if (SSL_CTX_get_max_proto_version(c) == 0 || SSL_CTX_get_max_proto_version(c) > TLS1_3_VERSION)
    SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_SINGLE_ECDH_USE);
  SSL_CTX_set_security_level(c, 2);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1) fail(listener_name, "cipher list");
  SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);

  // Resumed sessions keep their verified peer certificate; the context id keeps them to this listener.
  std::string sid = "orgproxy/" + std::string(listener_name);
  sid.resize(std::min<std::size_t>(sid.size(), SSL_MAX_SID_CTX_LENGTH));
  SSL_CTX_set_session_id_context(c, reinterpret_cast<const unsigned char*>(sid.data()),
                                 static_cast<unsigned>(sid.size()));

  if (!tls.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, tls.client_ca_file.c_str(), nullptr) != 1)
      fail(listener_name, "cannot read client_ca " + tls.client_ca_file);
    // The CertificateRequest names these CAs, so a client holding several certificates picks ours.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str()))
      SSL_CTX_set_client_CA_list(c, names);
    else
      fail(listener_name, "no CA certificate in client_ca " + tls.client_ca_file);
    SSL_CTX_set_purpose(c, X509_PURPOSE_SSL_CLIENT);
    SSL_CTX_set_verify_depth(c, 4);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | (tls.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
}

}  // namespace

std::shared_ptr<ssl::context> make_listener_tls_context(const config::ListenerTls& tls,
                                                        std::string_view listener_name) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  configure_server_context(c, tls, listener_name);
  if (SSL_CTX_use_certificate_chain_file(c, tls.cert_file.c_str()) != 1)
    fail(listener_name, "cannot use certificate chain " + tls.cert_file);
  if (SSL_CTX_use_PrivateKey_file(c, tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
    fail(listener_name, "cannot use private key file " + tls.key);
  if (SSL_CTX_check_private_key(c) != 1)
    fail(listener_name, "key " + tls.key + " does not match certificate " + tls.cert_file);
  return ctx;
}

std::shared_ptr<ssl::context> make_listener_tls_context(const config::ListenerTls& tls,
                                                        std::string_view listener_name,
                                                        const keystore::Keystore& keystore,
                                                        keystore::IdentityPtr identity) {
  // In the keystore's library context, where the token-backed key lives (notes/pkcs11-bridge.md).
  keystore::SslCtxPtr owned(SSL_CTX_new_ex(keystore.libctx(), nullptr, TLS_server_method()));
  if (!owned) fail(listener_name, "SSL_CTX_new_ex");
  SSL_CTX* c = owned.get();
  if (!identity->supports_pss() && EVP_PKEY_is_a(identity->private_key(), "RSA")) {
    // TLS 1.3 signs RSA with PSS only (RFC 8446 §4.2.3): without PSS in the token, stay on TLS 1.2 and
    // PKCS#1 v1.5 signatures.
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    if (SSL_CTX_set1_sigalgs_list(c, "RSA+SHA256:RSA+SHA384:RSA+SHA512") != 1) fail(listener_name, "sigalgs");
  }
  configure_server_context(c, tls, listener_name);
  if (SSL_CTX_use_certificate(c, identity->certificate()) != 1)
    fail(listener_name, "cannot use certificate " + tls.cert_file);
  STACK_OF(X509)* chain = identity->intermediates();
  for (int i = 0; chain && i < sk_X509_num(chain); ++i)
    if (SSL_CTX_add1_chain_cert(c, sk_X509_value(chain, i)) != 1)
      fail(listener_name, "cannot add the intermediates of " + tls.cert_file);
  if (SSL_CTX_use_PrivateKey(c, identity->private_key()) != 1)
    fail(listener_name, "cannot use the token key " + tls.key);
  // The SSL_CTX must go before the identity (which keeps the library context alive): the deleter holds it.
  auto* ctx = new ssl::context(owned.release());
  return std::shared_ptr<ssl::context>(ctx, [identity = std::move(identity)](ssl::context* p) { delete p; });
}

std::optional<PeerCertificate> peer_certificate(SSL* ssl) {
  keystore::X509Ptr cert(SSL_get1_peer_certificate(ssl));
  // SSL_VERIFY_PEER already refused a certificate that does not verify; this guards a context without it.
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  PeerCertificate out;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &len) != 1) return std::nullopt;
  static constexpr char kHex[] = "0123456789abcdef";
  out.sha256.resize(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.sha256[2 * i] = kHex[md[i] >> 4];
    out.sha256[2 * i + 1] = kHex[md[i] & 0xf];
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (keystore::BioPtr bio(BIO_new(BIO_s_mem())); bio) {
    // RFC 2253 flags, but UTF-8 kept as is (not \XX-escaped) so subjects compare as written in the config.
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    if (n > 0) out.subject.assign(data, static_cast<std::size_t>(n));
  }
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, i)) >= 0;)
    out.ous.push_back(utf8_of(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i))));
  return out;
}

ClientCertTenant client_cert_tenant(const std::vector<config::ClientCertTenantRule>& rules,
                                    const PeerCertificate* cert) {
  ClientCertTenant r;
  if (!cert) return r;
  auto vote = [&](std::string_view id) {
    if (r.tenant.empty())
      r.tenant = id;
    else if (r.tenant != id)
      r.conflict = true;
  };
  if (rules.empty()) {
    for (auto const& ou : cert->ous) vote(ou);
  } else {
    for (auto const& rule : rules) {
      bool match = rule.match == config::ClientCertTenantRule::Match::sha256
                       ? rule.value == cert->sha256
                       : std::find(cert->ous.begin(), cert->ous.end(), rule.value) != cert->ous.end();
      if (match) vote(rule.tenant);
    }
  }
  return r;
}

boost::asio::awaitable<TlsAccept> accept_tls(DownstreamStream& down, const config::Listener& listener) {
  TlsAccept out;
  down.expires_after(listener.header_timeout);
  auto [ec] = co_await down.tls()->async_handshake(ssl::stream_base::server,
                                                    boost::asio::as_tuple(boost::asio::use_awaitable));
  if (ec) {
    boost::system::error_code peer_ec;
    auto peer = down.socket().remote_endpoint(peer_ec);
    spdlog::info("listener {}: TLS handshake from {} refused: {}", listener.name,
                 peer_ec ? std::string("?") : peer.address().to_string(), ec.message());
    co_return out;
  }
  out.ok = true;
  out.cert = peer_certificate(down.tls()->native_handle());
  co_return out;
}

}  // namespace orgproxy::daemon
