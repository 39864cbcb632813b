#include "orgproxy/testkit/tls_script_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <stdexcept>

#include <openssl/err.h>
#include <openssl/x509.h>

namespace orgproxy::testkit {

TlsScriptConn::TlsScriptConn(int fd, SSL_CTX* ctx) : fd_(fd), ctx_(ctx) {
  timeval tv{30, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

TlsScriptConn::~TlsScriptConn() {
  if (ssl_) SSL_free(ssl_);
  ::shutdown(fd_, SHUT_RDWR);  // the FIN now; the server closes the descriptor once the thread is joined
}

bool TlsScriptConn::send_plain(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string TlsScriptConn::recv_plain_line() {
  std::string line;
  char c;
  while (::recv(fd_, &c, 1, 0) == 1) {
    if (c == '\n') break;
    line.push_back(c);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

bool TlsScriptConn::start_tls() {
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  return SSL_accept(ssl_) == 1;
}

namespace {

std::string subject_rfc2253(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return out;
}

}  // namespace

std::string TlsScriptConn::peer_subject() const {
  if (!ssl_) return {};
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (!cert) return {};
  std::string out = subject_rfc2253(cert);
  X509_free(cert);
  return out;
}

std::vector<std::string> TlsScriptConn::peer_chain_subjects() const {
  std::vector<std::string> out;
  if (!ssl_) return out;
  X509* leaf = SSL_get1_peer_certificate(ssl_);
  if (!leaf) return out;
  out.push_back(subject_rfc2253(leaf));
  // On a server the stack is the Certificate message after the leaf, as received (not the verified chain);
  // skip the leaf should a library version include it.
  STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl_);
  for (int i = 0; sent != nullptr && i < sk_X509_num(sent); ++i) {
    X509* c = sk_X509_value(sent, i);
    if (i == 0 && X509_cmp(c, leaf) == 0) continue;
    out.push_back(subject_rfc2253(c));
  }
  X509_free(leaf);
  return out;
}

std::string TlsScriptConn::version() const { return ssl_ ? SSL_get_version(ssl_) : ""; }

bool TlsScriptConn::write(std::string_view bytes) {
  while (!bytes.empty()) {
    std::size_t n = 0;
    if (SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n) != 1) return false;
    bytes.remove_prefix(n);
  }
  return true;
}

std::string TlsScriptConn::read_line(bool* ok) {
  std::string line;
  char c;
  std::size_t n = 0;
  bool good = false;
  while (SSL_read_ex(ssl_, &c, 1, &n) == 1) {
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

std::string TlsScriptConn::read_to_end(bool* clean) {
  std::string out;
  char buf[16384];
  for (;;) {
    std::size_t n = 0;
    int r = SSL_read_ex(ssl_, buf, sizeof buf, &n);
    if (r == 1) {
      out.append(buf, n);
      continue;
    }
    *clean = SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN;
    ERR_clear_error();
    return out;
  }
}

std::size_t TlsScriptConn::count_to_end(bool* clean) {
  std::size_t total = 0;
  char buf[16384];
  for (;;) {
    std::size_t n = 0;
    int r = SSL_read_ex(ssl_, buf, sizeof buf, &n);
    if (r == 1) {
      total += n;
      continue;
    }
    *clean = SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN;
    ERR_clear_error();
    return total;
  }
}

void TlsScriptConn::close_notify() {
  if (ssl_) SSL_shutdown(ssl_);
  ERR_clear_error();
}

void TlsScriptConn::shut_wr() { ::shutdown(fd_, SHUT_WR); }

TlsScriptServer::TlsScriptServer(TlsScriptOptions o, Script script) : script_(std::move(script)) {
  // OpenSSL writes with write(2): a script writing to a peer that left must fail, not kill the test.
  ::signal(SIGPIPE, SIG_IGN);
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx_ || SSL_CTX_use_certificate_chain_file(ctx_, o.cert_chain.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx_, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx_, o.client_ca.c_str(), nullptr) != 1) {
    if (ctx_) SSL_CTX_free(ctx_);
    throw std::runtime_error("TlsScriptServer: cannot load " + o.cert_chain + " / " + o.key_file + " / " + o.client_ca);
  }
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  static const unsigned char kContext[] = "orgproxy-tls-script";  // resumption with client certificates needs it
  SSL_CTX_set_session_id_context(ctx_, kContext, sizeof kContext - 1);
  if (o.max_version) SSL_CTX_set_max_proto_version(ctx_, o.max_version);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 1024) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
      ::pipe(wake_pipe_) != 0) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    SSL_CTX_free(ctx_);
    throw std::runtime_error("TlsScriptServer: cannot listen on loopback");
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

TlsScriptServer::~TlsScriptServer() {
  char b = 0;
  (void)!::write(wake_pipe_[1], &b, 1);
  thread_.join();
  reap(true);
  ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
  SSL_CTX_free(ctx_);
}

void TlsScriptServer::reap(bool all) {
  std::lock_guard lock(mutex_);
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (all && !it->done->load()) ::shutdown(it->fd, SHUT_RDWR);  // unblocks a script still waiting
    if (all || it->done->load()) {
      it->thread.join();
      ::close(it->fd);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void TlsScriptServer::run() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, 1000) < 0) continue;
    if (fds[1].revents) return;
    reap(false);
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    accepted_++;
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mutex_);
    workers_.push_back({std::thread([this, fd, done] {
                          {
                            TlsScriptConn conn(fd, ctx_);
                            script_(conn);
                          }
                          finished_++;
                          done->store(true);
                        }),
                        done, fd});
  }
}

}  // namespace orgproxy::testkit
