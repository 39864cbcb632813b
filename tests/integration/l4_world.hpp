// Shared by the L4 listener tests (tunnel, STARTTLS): the sites' world with an `mssante` identity per site
// (its DMP certificate and key, as an MS Santé operator would accept one), blocking loopback clients.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace orgproxy::l4test {

namespace tk = orgproxy::testkit;

inline constexpr const char* kA = "312345678200002";
inline constexpr const char* kB = "498765432103017";

/// A blocking client socket on 127.0.0.1:port with 60 s timeouts (a loaded CI machine); closed on
/// destruction.
class Client {
 public:
  explicit Client(std::uint16_t port) {
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
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

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

// The client half of TLS over an already connected `Client` (after its plaintext STARTTLS), trusting the
// test root and presenting `cert` when given. Blocking, with the client's socket timeouts.
class TlsClient {
 public:
  TlsClient(Client& plain, const std::string& ca, const tk::IssuedFiles* cert) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (cert) {
      SSL_CTX_use_certificate_chain_file(ctx_, cert->chain.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, cert->key.c_str(), SSL_FILETYPE_PEM);
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, plain.fd());
    SSL_set1_host(ssl_, "127.0.0.1");
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

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

/// `size` bytes of a pattern that shifts with `seed`: a truncated or reordered relay cannot match.
inline std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 31 + seed + i / 4096) & 0xff);
  return s;
}

/// Open descriptors of process `pid` (entries of /proc/<pid>/fd).
inline std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto const& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

/// The test sites, each with an `mssante` identity (its DMP certificate and key).
inline tk::OrgproxyConfig config_with_mssante(const tk::SiteWorld& world) {
  tk::OrgproxyConfig config = world.base_config();
  for (auto& t : config.tenants) {
    std::vector<tk::ConfigIdentity> extra;
    for (auto const& id : t.identities)
      if (id.purpose == "dmp") extra.push_back({"mssante", id.cert_file, id.key});
    t.identities.insert(t.identities.end(), extra.begin(), extra.end());
  }
  return config;
}

/// An L4 upstream of purpose mssante at 127.0.0.1:port.
inline tk::ConfigUpstream l4_upstream(std::string name, std::uint16_t port, std::string ca) {
  tk::ConfigUpstream u = tk::make_upstream(std::move(name), "", std::move(ca), "mssante");
  u.address = "127.0.0.1:" + std::to_string(port);
  return u;
}

}  // namespace orgproxy::l4test
