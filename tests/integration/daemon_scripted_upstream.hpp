// A mutual-TLS upstream that plays a script of exact bytes per connection (the "upstream mock" of
// field-cases.md): for framing edge cases nginx will not produce (1xx in a row, truncated bodies, idle
// FIN, early answers). Connections are served one after the other on the upstream's own thread.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

namespace orgproxy::daemon_it {

/// One accepted, handshaken connection as the script sees it. Every read has a deadline (`timeout`).
class ScriptConn {
 public:
  using Stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
  ScriptConn(Stream& s, std::string& buffer) : s_(s), buf_(buffer) {}

  /// Reads up to and including the blank line after a head; returns the head. Throws on EOF.
  std::string read_head() {
    auto n = boost::asio::read_until(s_, boost::asio::dynamic_buffer(buf_), "\r\n\r\n");
    std::string head = buf_.substr(0, n);
    buf_.erase(0, n);
    return head;
  }
  /// Reads exactly `n` bytes (what the head's Content-Length announced).
  std::string read_exact(std::size_t n) {
    if (buf_.size() < n) boost::asio::read(s_, boost::asio::dynamic_buffer(buf_), boost::asio::transfer_exactly(n - buf_.size()));
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }
  /// Reads whatever arrives until EOF or error; returns it.
  std::string read_to_eof() {
    boost::system::error_code ec;
    boost::asio::read(s_, boost::asio::dynamic_buffer(buf_), ec);
    std::string out;
    out.swap(buf_);
    return out;
  }
  /// Reads until the proxy ends the connection; returns how: asio::error::eof after its TLS close_notify,
  /// ssl::error::stream_truncated when the TCP connection ended without one, or the transport error.
  boost::system::error_code wait_for_close() {
    boost::system::error_code ec;
    while (!ec) s_.read_some(boost::asio::dynamic_buffer(buf_).prepare(4096), ec);
    return ec;
  }
  void write(std::string_view bytes) { boost::asio::write(s_, boost::asio::buffer(bytes.data(), bytes.size())); }
  /// TLS close_notify then TCP close (FIN).
  void close() {
    boost::system::error_code ec;
    s_.shutdown(ec);
    s_.lowest_layer().close(ec);
  }
  /// Abortive close (RST), no close_notify.
  void reset() {
    boost::system::error_code ec;
    s_.lowest_layer().set_option(boost::asio::socket_base::linger(true, 0), ec);
    s_.lowest_layer().close(ec);
  }

 private:
  Stream& s_;
  std::string& buf_;
};

class ScriptedUpstream {
 public:
  using Script = std::function<void(ScriptConn&)>;

  /// Listens on 127.0.0.1 (ephemeral port) with `cert`/`key`, requiring a client certificate that
  /// verifies to `client_ca`. Each accepted connection runs the next script of `scripts` (the last one
  /// repeats). A script that throws ends its connection (the test asserts on what the proxy did).
  ScriptedUpstream(const std::string& cert, const std::string& key, const std::string& client_ca,
                   std::vector<Script> scripts)
      : ctx_(boost::asio::ssl::context::tls_server), acceptor_(io_), scripts_(std::move(scripts)) {
    ctx_.use_certificate_chain_file(cert);
    ctx_.use_private_key_file(key, boost::asio::ssl::context::pem);
    ctx_.load_verify_file(client_ca);
    ctx_.set_verify_mode(boost::asio::ssl::verify_peer | boost::asio::ssl::verify_fail_if_no_peer_cert);
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(boost::asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedUpstream() {
    stop_ = true;
    boost::system::error_code ec;
    // Wake a blocked accept with a connection of our own, then a blocked script by closing its socket.
    boost::asio::ip::tcp::socket poke(io_);
    poke.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    {
      std::lock_guard lock(mutex_);
      // shutdown(2) is safe from another thread and wakes a blocked read; the serving thread closes.
      if (current_) ::shutdown(current_->lowest_layer().native_handle(), SHUT_RDWR);
    }
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(port_) + path; }
  unsigned connections() const { return connections_.load(); }

 private:
  void serve() {
    while (!stop_) {
      boost::asio::ip::tcp::socket sock(io_);
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) return;
      // Generous deadlines so that a proxy that never sends cannot hang the test forever.
      timeval tv{20, 0};
      ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      ScriptConn::Stream stream(std::move(sock), ctx_);
      stream.handshake(boost::asio::ssl::stream_base::server, ec);
      if (ec) continue;
      {
        std::lock_guard lock(mutex_);
        current_ = &stream;
      }
      std::size_t index = connections_++;
      std::string buffer;
      ScriptConn conn(stream, buffer);
      try {
        scripts_[std::min(index, scripts_.size() - 1)](conn);
      } catch (const std::exception&) {
      }
      std::lock_guard lock(mutex_);
      current_ = nullptr;
      stream.lowest_layer().close(ec);
    }
  }

  boost::asio::io_context io_;
  boost::asio::ssl::context ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<Script> scripts_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned> connections_{0};
  std::mutex mutex_;
  ScriptConn::Stream* current_ = nullptr;
  std::thread thread_;
};

/// The value of header `name` in a raw head ("" when absent); case-insensitive name.
inline std::string head_field(const std::string& head, const std::string& name) {
  std::string lower_head = head, lower_name = name + ":";
  for (auto& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto at = lower_head.find("\r\n" + lower_name);
  if (at == std::string::npos) return {};
  auto start = at + 2 + lower_name.size();
  auto end = head.find("\r\n", start);
  std::string v = head.substr(start, end - start);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
  return v;
}

}  // namespace orgproxy::daemon_it
