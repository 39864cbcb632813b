// The real nginx, run by a test as a national endpoint (DMP, INSi) that requires mutual TLS and reports in
// response headers what it saw: the client certificate's DN and serial, TLS version, session reuse, Host,
// URI and its connection number (to observe connection reuse).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "orgproxy/testkit/child_process.hpp"

namespace orgproxy::testkit {

/// TLS versions an upstream accepts.
enum class TlsProtocols { tls1_2, tls1_3, both };
/// "TLSv1.2", "TLSv1.3" or "TLSv1.2 TLSv1.3" (nginx's ssl_protocols spelling; also names test parameters).
std::ostream& operator<<(std::ostream& out, TlsProtocols protocols);

/// One TLS `server` block of the generated nginx configuration.
struct NginxServerOptions {
  std::string name = "upstream";  ///< reported as X-Endpoint (tells two mock services apart)
  std::uint16_t port = 0;         ///< 0: a free loopback port is chosen
  std::string listen_address = "127.0.0.1";
  std::string cert_file;          ///< server certificate chain (PEM, leaf first)
  std::string key_file;           ///< its private key (PEM)
  std::string client_ca_file;     ///< trust anchors for client certificates (ssl_client_certificate)
  bool verify_client = true;      ///< `ssl_verify_client on` (false: optional, never for the national mocks)
  TlsProtocols protocols = TlsProtocols::both;
  std::string extra_directives;   ///< raw nginx directives added to the server block (e.g. ssl_conf_command)
};

/// Builds nginx.conf text for `servers` with every path (pid, logs, temp dirs, lock) inside `dir`, so that
/// nothing outside it is touched (no /var/log/nginx, no /run). Each location answers 200 with the
/// X-Client-DN ($ssl_client_s_dn, RFC 2253), X-Client-Serial, X-Client-Verify, X-Session-Reused, X-Seen-Sni ($ssl_server_name),
/// X-Tls-Protocol, X-Seen-Host, X-Seen-Uri, X-Up-Conn ($connection), X-Up-Conn-Req ($connection_requests)
/// and X-Endpoint headers and a short text body. `master_process` false runs one process (the default for
/// tests: simpler to stop, and no privilege switch when run as root).
/// Answers come from a plain-HTTP responder on the unix socket `dir`/responder.sock, which nginx reaches only
/// after reading the whole request body (as real services answer after the request, never in the middle).
/// Ports must be set (non-zero). Throws std::invalid_argument for a port of 0 or a `dir` too long for a unix
/// socket path. Used by NginxUpstream and by the demo set-up.
std::string nginx_config_text(const std::filesystem::path& dir, const std::vector<NginxServerOptions>& servers,
                              bool master_process = false);

/// Command line that runs nginx in the foreground on `conf` with prefix `dir`, its start-up errors going to
/// `dir`/error.log (`-e`, nginx ≥ 1.19.5), never to /var/log/nginx.
std::vector<std::string> nginx_command(const std::filesystem::path& dir, const std::filesystem::path& conf);

/// A running nginx with one TLS server block (mutual TLS upstream mock). Starts in the constructor and waits
/// until its port accepts (timeout 20 s); stopped (and its process group killed) on destruction.
/// Throws std::runtime_error naming the cause and quoting nginx's error log if it does not come up.
class NginxUpstream {
 public:
  NginxUpstream(const std::filesystem::path& dir, NginxServerOptions options, bool master_process = false);
  ~NginxUpstream();
  NginxUpstream(const NginxUpstream&) = delete;
  NginxUpstream& operator=(const NginxUpstream&) = delete;

  std::uint16_t port() const { return options_.port; }
  /// "https://127.0.0.1:<port>" + path.
  std::string url(const std::string& path = "") const;
  /// nginx's error log (start-up and TLS handshake errors: client certificate verify failures are here).
  std::string error_log() const;
  /// nginx's access log (one line per request: DN, serial, TLS version, reused session, URI, status).
  std::string access_log() const;
  /// Stops nginx (SIGTERM, then SIGKILL).
  void stop();
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  NginxServerOptions options_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace orgproxy::testkit
