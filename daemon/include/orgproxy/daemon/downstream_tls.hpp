// Downstream TLS (RIS → orgproxy, config/SCHEMA.md listener `tls`): the server context of a listener and
// what a verified client certificate tells the `client_cert` selector and the `clients` rules.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>

#include "orgproxy/config/config.hpp"
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::daemon {

/// A listener's TLS settings that cannot be served (unreadable certificate or key, key not matching the
/// certificate, unreadable client CA file). The message names the file, never key material.
class ListenerTlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The server context of a listener with `tls`: TLS 1.2 and 1.3 only (RFC 8996 retires 1.0/1.1), AEAD
/// ECDHE suites for TLS 1.2 (Mozilla "intermediate" minus DHE), OpenSSL security level 2, no compression,
/// no renegotiation, ALPN `http/1.1` only (RFC 7301 §3.2: a client offering only other protocols is
/// refused with no_application_protocol). With `client_ca_file`, client certificates are requested and,
/// when presented, must verify to it (depth ≤ 4, clientAuth purpose); with `require_client_cert` a
/// handshake without one fails. `tls.key` is a PEM key file here. `listener_name` seeds the session id
/// context (resumption stays per listener). Throws ListenerTlsError.
std::shared_ptr<boost::asio::ssl::context> make_listener_tls_context(const config::ListenerTls& tls,
                                                                     std::string_view listener_name);

/// The same, with the certificate and the token-held key of `identity` (loaded by `keystore` with
/// IdentitySpec::tls_server): the context lives in the keystore's library context, signs in the token
/// (the key never leaves it) and keeps `identity` alive as long as it lives. An RSA key whose token lacks
/// RSA-PSS limits the listener to TLS 1.2 with PKCS#1 v1.5 signatures. Throws ListenerTlsError.
std::shared_ptr<boost::asio::ssl::context> make_listener_tls_context(const config::ListenerTls& tls,
                                                                     std::string_view listener_name,
                                                                     const keystore::Keystore& keystore,
                                                                     keystore::IdentityPtr identity);

/// What orgproxy keeps of a verified downstream client certificate (nothing else of it is stored).
struct PeerCertificate {
  std::string sha256;              ///< lower-case hex of SHA-256 over the DER certificate, no ':'
  std::string subject;             ///< RFC 4514 (= RFC 2253 order and escaping), UTF-8
  std::vector<std::string> ous;    ///< every subject OU value, UTF-8, in certificate order
};

/// The verified client certificate of an established TLS connection, or nothing when none was presented.
std::optional<PeerCertificate> peer_certificate(SSL* ssl);

/// The `client_cert` selector's answer for one certificate.
struct ClientCertTenant {
  std::string_view tenant;  ///< "" = the certificate names no tenant (or there is no certificate)
  bool conflict = false;    ///< several matching rules (or several OUs) name different tenants
};

/// Applies a listener's `client_cert` rules to `cert` (nullptr = no certificate → no tenant). Every rule
/// that matches (fingerprint equal, or an OU equal to the rule's text) votes; differing votes are a
/// conflict (403 tenant_ambiguous, like disagreeing selectors). Without rules the subject OU is the tenant
/// id (several differing OUs: a conflict). The view points into `rules` or `cert`.
ClientCertTenant client_cert_tenant(const std::vector<config::ClientCertTenantRule>& rules,
                                    const PeerCertificate* cert);

}  // namespace orgproxy::daemon
