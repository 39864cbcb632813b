// Blocking loopback clients for tests that speak a protocol byte by byte (L4 tunnels, STARTTLS dialogues,
// stalled or broken handshakes, half-sent HTTP heads): a TCP socket on 127.0.0.1 with generous timeouts
// (a loaded CI machine), and the client half of TLS over it.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "orgproxy/testkit/pki.hpp"

namespace orgproxy::testkit {

/// A blocking client socket on 127.0.0.1:port with 60 s timeouts (a loaded CI machine); closed on
/// destruction.
class LoopbackClient {
 public:
  explicit LoopbackClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{60, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    }
  }
  ~LoopbackClient() { ::close(fd_); }
  LoopbackClient(const LoopbackClient&) = delete;
  LoopbackClient& operator=(const LoopbackClient&) = delete;

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  void shut_wr() { ::shutdown(fd_, SHUT_WR); }
  /// Reads until EOF (sets *eof) or an error/timeout (*eof false).
  std::string read_to_eof(bool* eof) {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      *eof = n == 0;
      return out;
    }
  }
  /// One line (LF-terminated, CRLF stripped); "" and *ok false at EOF or timeout.
  std::string read_line(bool* ok = nullptr) {
    std::string line;
    char c;
    bool good = false;
    while (::recv(fd_, &c, 1, 0) == 1) {
      if (c == '\n') {
        good = true;
        break;
      }
      line.push_back(c);
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (ok) *ok = good;
    return line;
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

/// The client half of TLS over an already connected LoopbackClient (at once for implicit TLS, or after
/// its plaintext STARTTLS), trusting the PEM bundle `ca`, verifying the name 127.0.0.1, presenting `cert`
/// when given, offering ALPN `alpn` when not empty (e.g. "http/1.1"). Blocking, with the socket's timeouts.
class LoopbackTlsClient {
 public:
  LoopbackTlsClient(LoopbackClient& plain, const std::string& ca, const IssuedFiles* cert,
                    const std::string& alpn = "") {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (cert) {
      SSL_CTX_use_certificate_chain_file(ctx_, cert->chain.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, cert->key.c_str(), SSL_FILETYPE_PEM);
    }
    if (!alpn.empty()) {
      std::string wire(1, static_cast<char>(alpn.size()));
      wire += alpn;
      SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned>(wire.size()));
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, plain.fd());
    SSL_set1_host(ssl_, "127.0.0.1");
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~LoopbackTlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  LoopbackTlsClient(const LoopbackTlsClient&) = delete;
  LoopbackTlsClient& operator=(const LoopbackTlsClient&) = delete;

  bool ok() const { return ok_; }
  bool send(std::string_view bytes) { return SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) > 0; }
  /// One line without its CRLF; "" at the end or on a timeout.
  std::string read_line() {
    std::string line;
    char c;
    while (SSL_read(ssl_, &c, 1) == 1) {
      if (c == '\n') break;
      line.push_back(c);
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  /// Ends our direction: close_notify, then TCP shutdown(SHUT_WR); reading stays possible.
  void close_write() {
    SSL_shutdown(ssl_);
    ::shutdown(SSL_get_fd(ssl_), SHUT_WR);
  }
  /// Everything until the peer's close_notify (*clean true) or a bare FIN / error (*clean false).
  std::string read_to_end(bool* clean) {
    std::string out;
    char buf[65536];
    for (;;) {
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      *clean = SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN;
      return out;
    }
  }
  /// Lines up to and including the one starting with `prefix` (an SMTP reply's last line "250 ", an IMAP
  /// tag "a3 "), joined with '\n'.
  std::string read_until(const std::string& prefix) {
    std::string all;
    for (std::string line; !(line = read_line()).empty();) {
      all += line + "\n";
      if (line.rfind(prefix, 0) == 0) break;
    }
    return all;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
};

}  // namespace orgproxy::testkit
