#include "orgproxy/testkit/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <strings.h>

namespace orgproxy::testkit {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool has(const std::vector<std::pair<std::string, std::string>>& headers, std::string_view name) {
  for (const auto& h : headers)
    if (iequals(h.first, name)) return true;
  return false;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return "";
}

bool HttpResponse::has_header(std::string_view name) const { return has(headers, name); }

std::vector<std::string> HttpResponse::header_values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) out.push_back(v);
  return out;
}

struct HttpClient::Impl {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  std::chrono::milliseconds timeout;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();

  // Runs the one pending asynchronous operation to completion; the stream's deadline bounds it.
  void run() {
    ioc.restart();
    ioc.run();
  }
};

HttpClient::HttpClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->timeout = timeout;
  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) throw HttpClientError("HttpClient: bad address " + host);
  impl_->stream.expires_after(timeout);
  impl_->stream.async_connect(asio::ip::tcp::endpoint(address, port), [&](error_code e) { ec = e; });
  impl_->run();
  if (ec) throw HttpClientError("HttpClient: connect " + host + ":" + std::to_string(port) + ": " + ec.message());
  impl_->stream.socket().set_option(asio::ip::tcp::no_delay(true), ec);
}

HttpClient::~HttpClient() {
  error_code ec;
  impl_->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  impl_->stream.socket().close(ec);
}

void HttpClient::send_raw(std::string_view bytes) {
  error_code ec;
  impl_->stream.expires_after(impl_->timeout);
  asio::async_write(impl_->stream, asio::buffer(bytes.data(), bytes.size()),
                    [&](error_code e, std::size_t) { ec = e; });
  impl_->run();
  if (ec) throw HttpClientError("HttpClient: write: " + ec.message());
  impl_->last_write = std::chrono::steady_clock::now();
}

HttpResponse HttpClient::request(const HttpRequest& request) {
  http::request<http::string_body> req;
  req.method_string(request.method);
  req.target(request.target);
  req.version(11);
  for (const auto& [k, v] : request.headers) req.insert(k, v);
  if (!has(request.headers, "Host")) req.set(http::field::host, "orgproxy.test");
  const bool framed = has(request.headers, "Content-Length") || has(request.headers, "Transfer-Encoding");
  const bool body_method = request.method == "POST" || request.method == "PUT" || request.method == "PATCH";
  req.body() = request.body;
  if (!framed && (body_method || !request.body.empty())) req.content_length(request.body.size());

  error_code ec;
  impl_->stream.expires_after(impl_->timeout);
  http::async_write(impl_->stream, req, [&](error_code e, std::size_t) { ec = e; });
  impl_->run();
  if (ec) throw HttpClientError("HttpClient: write request: " + ec.message());
  impl_->last_write = std::chrono::steady_clock::now();
  return read_response(request.method == "HEAD");
}

HttpResponse HttpClient::read_response(bool head_request) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t{512} * 1024 * 1024);
  parser.header_limit(256 * 1024);
  parser.skip(head_request);
  error_code ec;
  impl_->stream.expires_after(impl_->timeout);
  http::async_read(impl_->stream, impl_->buffer, parser, [&](error_code e, std::size_t) { ec = e; });
  impl_->run();
  if (ec == beast::error::timeout) throw HttpClientError("HttpClient: no complete response within the timeout");
  if (ec) throw HttpClientError("HttpClient: read response: " + ec.message());
  const auto& msg = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(msg.result_int());
  out.reason = std::string(msg.reason());
  for (const auto& f : msg) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  out.body = msg.body();
  out.keep_alive = msg.keep_alive();
  out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                      impl_->last_write);
  return out;
}

bool HttpClient::closed_by_peer(std::chrono::milliseconds wait) {
  // The raw socket and a timer of our own: a tcp_stream deadline would close the socket on expiry, and an
  // open connection must stay usable after this check.
  error_code ec;
  std::size_t n = 0;
  bool timed_out = false;
  asio::steady_timer timer(impl_->ioc, wait);
  auto& socket = impl_->stream.socket();
  timer.async_wait([&](error_code e) {
    if (!e) {
      timed_out = true;
      socket.cancel();
    }
  });
  socket.async_read_some(impl_->buffer.prepare(4096), [&](error_code e, std::size_t got) {
    ec = e;
    n = got;
    timer.cancel();
  });
  impl_->run();
  impl_->buffer.commit(n);  // data that arrived stays readable by read_response
  if (timed_out) return false;
  return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

std::uint16_t HttpClient::local_port() const {
  error_code ec;
  return impl_->stream.socket().local_endpoint(ec).port();
}

HttpResponse http_request(std::uint16_t port, const HttpRequest& request, std::chrono::milliseconds timeout) {
  HttpClient client("127.0.0.1", port, timeout);
  return client.request(request);
}

}  // namespace orgproxy::testkit
