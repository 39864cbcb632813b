// One TLS client context per upstream shared by every identity, the identity set on each connection
// (DESIGN.md "TLS client contexts"). Isolation does not rest on the context: it stores no session
// (SSL_SESS_CACHE_NO_INTERNAL_STORE), and the daemon offers a connection only the session kept under its own
// (tenant, identity, upstream).
#pragma once

#include <string>

#include <openssl/ssl.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

/// Builds an SSL_CTX (client, in the keystore's libctx) that presents NO client certificate: trust
/// (options.ca_file and CRLs only), SSL_VERIFY_PEER, version bounds and session-cache mode as
/// make_client_context. Why: an OpenSSL 3 SSL_CTX costs tens of KB and a tenth of a millisecond of algorithm
/// fetching; one per identity was most of the memory of 10,000 touched sites. Throws KeystoreError.
SslCtxPtr make_shared_client_context(const Keystore& keystore, const TlsClientOptions& options);

/// Sets on one connection, before its handshake, the certificate, intermediates and token key of
/// `identity` (SSL_use_cert_and_key, replacing anything inherited from the context). For an RSA identity
/// whose token lacks RSA-PSS, caps the connection at TLS 1.2 with PKCS#1 v1.5 client signature algorithms
/// (RFC 8446 §4.2.3), and fails when `min_version` (the upstream's lower bound, e.g. TLS1_3_VERSION)
/// forbids it. Returns "" on success, else why (names tenant and purpose; never a PIN).
std::string present_identity(SSL* ssl, const Identity& identity, int min_version);

}  // namespace orgproxy::keystore
