// A purpose-built mutual-TLS upstream (Boost.Beast + OpenSSL) that reports what nginx cannot: the SHA-256
// and length of exactly the body bytes it received (after de-chunking), and the request headers by name.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "orgproxy/testkit/nginx_upstream.hpp"

namespace orgproxy::testkit {

struct HashUpstreamOptions {
  std::string cert_file;       ///< server certificate chain (PEM, leaf first)
  std::string key_file;        ///< its private key (PEM)
  std::string client_ca_file;  ///< trust anchors for client certificates; a client without one is refused
  TlsProtocols protocols = TlsProtocols::both;
  std::string listen_address = "127.0.0.1";
};

/// Options for a server certificate/key and client trust anchors, other settings at their defaults.
inline HashUpstreamOptions hash_upstream_options(std::string cert_file, std::string key_file,
                                                 std::string client_ca_file,
                                                 TlsProtocols protocols = TlsProtocols::both) {
  HashUpstreamOptions o;
  o.cert_file = std::move(cert_file);
  o.key_file = std::move(key_file);
  o.client_ca_file = std::move(client_ca_file);
  o.protocols = protocols;
  return o;
}

/// What the upstream saw of one request.
struct SeenRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names with their case, in order received
  std::string body_sha256;                                   ///< lowercase hex
  std::uint64_t body_length = 0;
  std::string client_dn;      ///< RFC 2253, as nginx's $ssl_client_s_dn
  std::string client_serial;  ///< upper-case hex, as nginx's $ssl_client_serial
  std::string tls_protocol;   ///< "TLSv1.2" / "TLSv1.3"
  bool session_reused = false;
  std::uint64_t connection = 0;  ///< 1-based number of the connection it came on
};

/// The upstream. Listens on an ephemeral loopback port, serves on its own thread, requires a client
/// certificate that verifies to `client_ca_file` (depth 2), reads each request in full and answers 200 with
/// X-Client-DN, X-Client-Serial, X-Body-Sha256, X-Body-Length, X-Seen-Host, X-Seen-Path, X-Seen-Headers
/// (comma-separated lower-case names of the request headers received), X-Tls-Protocol, X-Session-Reused,
/// X-Up-Conn; keep-alive as the client asks. `Expect: 100-continue` is answered with 100 before the body.
/// Throws std::runtime_error when the certificate files cannot be loaded or the port cannot be bound.
class HashUpstream {
 public:
  explicit HashUpstream(HashUpstreamOptions options);
  ~HashUpstream();
  HashUpstream(const HashUpstream&) = delete;
  HashUpstream& operator=(const HashUpstream&) = delete;

  std::uint16_t port() const;
  /// "https://127.0.0.1:<port>" + path.
  std::string url(const std::string& path = "") const;
  /// TCP connections accepted.
  unsigned connections() const;
  /// TLS handshakes that failed (no or untrusted client certificate, version mismatch...).
  unsigned handshake_failures() const;
  /// Requests answered.
  unsigned requests() const;
  /// Every request seen so far, in order.
  std::vector<SeenRequest> seen() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// Lowercase hex SHA-256 of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace orgproxy::testkit
