// Shared by the L4 listener tests (tunnel, STARTTLS): the sites' world with an `mssante` identity per site
// (its DMP certificate and key, as an MS Santé operator would accept one), blocking loopback clients.
#pragma once

#include <netinet/in.h>
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
