// A TLS server on loopback whose every connection runs a test's script on its own thread, with blocking
// OpenSSL calls the script chooses one by one: plaintext lines first (a STARTTLS dialogue, or a hostile
// server's injected bytes), the handshake requiring a client certificate, then reads and writes to the
// byte, close_notify and TCP FIN each on their own (the half-close cases of field case C22).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <openssl/ssl.h>

namespace orgproxy::testkit {

struct TlsScriptOptions {
  std::string cert_chain;  ///< server certificate chain (PEM)
  std::string key_file;    ///< its PEM private key
  std::string client_ca;   ///< CAs the client certificate must chain to (required from every client)
  int max_version = 0;     ///< e.g. TLS1_2_VERSION; 0 = the library's highest
};

/// One accepted connection, used by the script on the connection's thread. Every call has a 30 s socket
/// timeout; failures return false / empty instead of throwing (the script records what it saw).
class TlsScriptConn {
 public:
  TlsScriptConn(int fd, SSL_CTX* ctx);
  ~TlsScriptConn();
  TlsScriptConn(const TlsScriptConn&) = delete;
  TlsScriptConn& operator=(const TlsScriptConn&) = delete;

  /// Plaintext, before start_tls(): writes all of `bytes`.
  bool send_plain(std::string_view bytes);
  /// Plaintext: one line without CRLF, read byte by byte (nothing past the line is consumed). "" on EOF.
  std::string recv_plain_line();
  /// Server handshake; the client must present a certificate chaining to client_ca.
  bool start_tls();
  /// RFC 2253 subject of the client certificate ("" when none).
  std::string peer_subject() const;
  /// RFC 2253 subjects of the certificates in the client's Certificate message, in the order sent (leaf
  /// first), read on our side after the handshake (in TLS 1.3 the message is encrypted on the wire).
  std::vector<std::string> peer_chain_subjects() const;
  /// The negotiated protocol ("TLSv1.3"), "" before the handshake.
  std::string version() const;
  bool write(std::string_view bytes);
  /// Reads one TLS line (up to LF, CRLF stripped). nullopt-like "" with `ok` false at the end.
  std::string read_line(bool* ok = nullptr);
  /// Reads until the peer's close_notify (sets *clean) or EOF/error (*clean false); returns the bytes.
  std::string read_to_end(bool* clean);
  /// Reads until the end as read_to_end, counting bytes only (large transfers).
  std::size_t count_to_end(bool* clean);
  /// Sends close_notify (one SSL_shutdown: our direction only).
  void close_notify();
  /// TCP shutdown(SHUT_WR).
  void shut_wr();

 private:
  int fd_;
  SSL* ssl_ = nullptr;
  SSL_CTX* ctx_;
};

class TlsScriptServer {
 public:
  using Script = std::function<void(TlsScriptConn&)>;
  /// Listens on 127.0.0.1 (ephemeral port). Throws std::runtime_error if the key or certificates do not load.
  TlsScriptServer(TlsScriptOptions options, Script script);
  /// Stops accepting, waits for the scripts to return (their sockets are shut down first).
  ~TlsScriptServer();
  TlsScriptServer(const TlsScriptServer&) = delete;
  TlsScriptServer& operator=(const TlsScriptServer&) = delete;

  std::uint16_t port() const { return port_; }
  unsigned accepted() const { return accepted_.load(); }
  /// Scripts that returned.
  unsigned finished() const { return finished_.load(); }

 private:
  void run();
  void reap(bool all);

  Script script_;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<unsigned> accepted_{0};
  std::atomic<unsigned> finished_{0};
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
    int fd;
  };
  std::mutex mutex_;
  std::list<Worker> workers_;
  std::thread thread_;
};

}  // namespace orgproxy::testkit
