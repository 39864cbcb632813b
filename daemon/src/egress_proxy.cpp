#include "orgproxy/daemon/egress_proxy.hpp"

#include <fstream>
#include <stdexcept>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <openssl/evp.h>

#include "dns.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

constexpr std::size_t kMaxAnswerHead = 16 * 1024;

/// The status code of an HTTP/1.x status line at the start of `head`, or 0 when it is not one.
int status_of(std::string_view head) {
  // "HTTP/1.1 200 Connection established": version, SP, three digits, then SP or the line end.
  if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." || head[8] != ' ') return 0;
  int code = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return 0;
    code = code * 10 + (head[i] - '0');
  }
  if (head.size() > 12 && head[12] != ' ' && head[12] != '\r') return 0;
  return code;
}

std::string first_line(std::string_view head) {
  auto end = head.find("\r\n");
  std::string line(head.substr(0, std::min<std::size_t>(end, 200)));
  // Shown in a log line: keep it printable.
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return line;
}

}  // namespace

std::string read_proxy_authorization(const std::string& credentials_file) {
  std::ifstream in(credentials_file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the proxy credentials file " + credentials_file);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.empty() || line.find(':') == std::string::npos || line.front() == ':')
    throw std::runtime_error("the proxy credentials file " + credentials_file +
                             " must hold one line user:password");
  std::vector<unsigned char> encoded(4 * ((line.size() + 2) / 3) + 1);
  const int n = EVP_EncodeBlock(encoded.data(), reinterpret_cast<const unsigned char*>(line.data()),
                                static_cast<int>(line.size()));
  return "Basic " + std::string(reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n));
}

asio::awaitable<TunnelOutcome> open_tunnel(beast::tcp_stream& stream, const EgressProxy& proxy) {
  TunnelOutcome out;
  const auto deadline = std::chrono::steady_clock::now() + proxy.connect_timeout;
  const std::string where = "egress proxy " + proxy.url + " (CONNECT " + proxy.target + ")";

  ConnectOutcome reached = co_await connect_in_turn(stream, proxy.host, proxy.port_text, proxy.connect_timeout);
  if (reached.ec) {
    out.ec = reached.ec;
    out.timed_out = reached.ec == beast::error::timeout;
    out.detail = where + ": " + reached.detail;
    co_return out;
  }
  boost::system::error_code opt_ec;
  stream.socket().set_option(asio::ip::tcp::no_delay(true), opt_ec);

  std::string request = "CONNECT " + proxy.target + " HTTP/1.1\r\nHost: " + proxy.target + "\r\n";
  if (!proxy.authorization.empty()) request += "Proxy-Authorization: " + proxy.authorization + "\r\n";
  request += "\r\n";
  stream.expires_at(deadline);
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(request), asio::as_tuple(asio::use_awaitable));
  if (wec) {
    out.ec = wec;
    out.timed_out = wec == beast::error::timeout;
    out.detail = where + ": writing CONNECT: " + wec.message();
    co_return out;
  }

  std::string answer;
  auto [rec, head_size] = co_await asio::async_read_until(stream, asio::dynamic_buffer(answer, kMaxAnswerHead),
                                                          "\r\n\r\n", asio::as_tuple(asio::use_awaitable));
  stream.expires_never();
  if (rec) {
    out.ec = rec;
    out.timed_out = rec == beast::error::timeout;
    out.detail = where + ": no answer head: " + (rec == asio::error::not_found ? "over 16 KiB" : rec.message());
    co_return out;
  }
  out.proxy_status = status_of(answer);
  if (out.proxy_status < 200 || out.proxy_status > 299) {
    out.ec = asio::error::connection_refused;
    out.detail = where + ": proxy answered '" + first_line(answer) + "'";
    if (out.proxy_status == 0) out.detail = where + ": not an HTTP answer: '" + first_line(answer) + "'";
    co_return out;
  }
  if (answer.size() != head_size) {
    // The upstream speaks only after our ClientHello: bytes here are the proxy's, not the upstream's.
    out.ec = asio::error::connection_refused;
    out.detail = where + ": bytes after the proxy's 2xx answer, before any TLS";
    co_return out;
  }
  co_return out;
}

}  // namespace orgproxy::daemon
