#include "orgproxy/testkit/connect_proxy.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <openssl/evp.h>

namespace orgproxy::testkit {
namespace {

std::string basic(const std::string& credentials) {
  std::string out(4 * ((credentials.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(credentials.data()), static_cast<int>(credentials.size()));
  out.resize(static_cast<std::size_t>(n));
  return "Basic " + out;
}

std::string field(const std::string& head, std::string name) {
  std::string lower = head;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto at = lower.find("\r\n" + name + ":");
  if (at == std::string::npos) return {};
  auto start = at + 3 + name.size();
  auto end = head.find("\r\n", start);
  std::string v = head.substr(start, end - start);
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

void send_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

void set_timeouts(int fd) {
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/// Connects to "host:port" ("[v6]:port" bracketed); -1 on failure.
int dial(const std::string& target) {
  auto colon = target.rfind(':');
  if (colon == std::string::npos) return -1;
  std::string host = target.substr(0, colon), port = target.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  return fd;
}

}  // namespace

ConnectProxy::ConnectProxy(ConnectProxyOptions options) : options_(std::move(options)) {
  if (::pipe(wake_) != 0) throw std::runtime_error("ConnectProxy: pipe failed");
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("ConnectProxy: cannot listen on 127.0.0.1");
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

ConnectProxy::~ConnectProxy() {
  stop_ = true;
  ssize_t ignored = ::write(wake_[1], "x", 1);
  (void)ignored;
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::string ConnectProxy::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::vector<ConnectRecord> ConnectProxy::records() const {
  std::lock_guard lock(mutex_);
  return records_;
}

unsigned ConnectProxy::tunnels() const {
  std::lock_guard lock(mutex_);
  return static_cast<unsigned>(std::count_if(records_.begin(), records_.end(), [](auto& r) { return r.status == 200; }));
}

void ConnectProxy::accept_loop() {
  while (!stop_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (stop_ || (fds[1].revents & POLLIN)) return;
    int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) continue;
    std::lock_guard lock(mutex_);
    threads_.emplace_back([this, client] { serve(client); });
  }
}

void ConnectProxy::serve(int client) {
  set_timeouts(client);
  std::string head;
  char buf[16384];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
    ssize_t n = ::recv(client, buf, sizeof buf, 0);
    if (n <= 0) {
      ::close(client);
      return;
    }
    head.append(buf, static_cast<std::size_t>(n));
  }
  ConnectRecord rec;
  const auto line_end = head.find("\r\n");
  const std::string line = head.substr(0, line_end);
  const auto sp1 = line.find(' '), sp2 = line.rfind(' ');
  int upstream = -1;
  if (line.rfind("CONNECT ", 0) != 0 || sp1 == sp2) {
    rec.status = 400;
  } else {
    rec.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    rec.host_header = field(head, "Host");
    const std::string auth = field(head, "Proxy-Authorization");
    rec.had_authorization = !auth.empty();
    if (!options_.credentials.empty() && auth != basic(options_.credentials)) {
      rec.status = 407;
    } else if ((upstream = dial(rec.target)) < 0) {
      rec.status = 502;
    } else {
      rec.status = 200;
    }
  }
  {
    std::lock_guard lock(mutex_);
    records_.push_back(rec);
  }
  switch (rec.status) {
    case 200: send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n"); break;
    case 407:
      send_all(client, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n"
                       "Content-Length: 0\r\nConnection: close\r\n\r\n");
      break;
    case 502: send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); break;
    default: send_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  }
  if (upstream < 0) {
    ::close(client);
    return;
  }
  set_timeouts(upstream);
  // Bytes that came with the head (a client that did not wait for the 200) go through first.
  if (auto extra = head.substr(head.find("\r\n\r\n") + 4); !extra.empty()) send_all(upstream, extra);
  bool client_open = true, upstream_open = true;
  while (!stop_ && (client_open || upstream_open)) {
    pollfd fds[3] = {{client, static_cast<short>(client_open ? POLLIN : 0), 0},
                     {upstream, static_cast<short>(upstream_open ? POLLIN : 0), 0},
                     {wake_[0], POLLIN, 0}};
    if (::poll(fds, 3, 30000) <= 0 || (fds[2].revents & POLLIN)) break;
    auto pump = [&](int from, int to, bool& open) {
      ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) {
        open = false;
        ::shutdown(to, SHUT_WR);  // relay the half-close
        return;
      }
      send_all(to, std::string(buf, static_cast<std::size_t>(n)));
    };
    if (client_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) pump(client, upstream, client_open);
    if (upstream_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) pump(upstream, client, upstream_open);
  }
  ::close(upstream);
  ::close(client);
}

}  // namespace orgproxy::testkit
