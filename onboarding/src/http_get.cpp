// Blocking HTTP GET on Boost.Beast: asynchronous operations run to completion one at a time, so every step
// has a deadline (beast::tcp_stream::expires_after) without a thread of its own.
#include "http_get.hpp"

#include <optional>
#include <stdexcept>
#include <system_error>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace orgproxy::onboarding::detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint64_t kMaxBody = 32ull * 1024 * 1024;

/// Runs the io_context until the operation started by `start` completes; returns its error.
template <class Start>
boost::system::error_code run(asio::io_context& ioc, Start&& start) {
  std::optional<boost::system::error_code> result;
  start([&](boost::system::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result.value_or(asio::error::operation_aborted);
}

[[noreturn]] void throw_ec(boost::system::error_code ec, const std::string& doing) {
  if (ec == beast::error::timeout) throw std::system_error(std::make_error_code(std::errc::timed_out), doing);
  throw std::system_error(std::error_code(ec.value(), std::system_category()), doing + ": " + ec.message());
}

template <class Stream>
HttpResponse exchange(asio::io_context& ioc, Stream& stream, beast::tcp_stream& lowest, const HttpUrl& url,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      std::chrono::milliseconds timeout) {
  http::request<http::empty_body> req{http::verb::get, url.target, 11};
  req.set(http::field::host, url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host);
  req.set(http::field::user_agent, "orgproxy-sites");
  req.set(http::field::accept, "application/fhir+json, application/json");
  req.set(http::field::connection, "close");
  for (const auto& [name, value] : headers) req.set(name, value);
  lowest.expires_after(timeout);
  if (auto ec = run(ioc, [&](auto h) { http::async_write(stream, req, h); })) throw_ec(ec, "sending the request");
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  lowest.expires_after(timeout);
  if (auto ec = run(ioc, [&](auto h) { http::async_read(stream, buffer, parser, h); })) {
    if (ec == http::error::body_limit) throw std::runtime_error("answer larger than 32 MiB");
    throw_ec(ec, "reading the answer");
  }
  return {parser.get().result_int(), std::move(parser.get().body())};
}

}  // namespace

HttpUrl parse_http_url(const std::string& url) {
  HttpUrl out;
  std::string rest;
  if (url.starts_with("https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    throw std::invalid_argument("'" + url + "' is not an http:// or https:// URL");
  }
  const std::size_t slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  out.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (authority.empty() || authority.find('@') != std::string::npos)
    throw std::invalid_argument("'" + url + "' has no host, or has user info (not accepted)");
  out.port = out.tls ? "443" : "80";
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string::npos) throw std::invalid_argument("'" + url + "': unclosed IPv6 bracket");
    out.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw std::invalid_argument("'" + url + "': bad port");
      out.port = authority.substr(close + 2);
    }
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string::npos) {
    out.host = authority.substr(0, colon);
    out.port = authority.substr(colon + 1);
  } else {
    out.host = authority;
  }
  if (out.host.empty() || out.port.empty() || out.port.size() > 5 ||
      out.port.find_first_not_of("0123456789") != std::string::npos || std::stoul(out.port) == 0 ||
      std::stoul(out.port) > 65535)
    throw std::invalid_argument("'" + url + "': bad host or port");
  return out;
}

HttpResponse http_get(const HttpUrl& url, const std::vector<std::pair<std::string, std::string>>& headers,
                      std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  tcp::resolver::results_type endpoints;
  {
    std::optional<boost::system::error_code> result;
    resolver.async_resolve(url.host, url.port, [&](boost::system::error_code ec, tcp::resolver::results_type r) {
      result = ec;
      endpoints = std::move(r);
    });
    ioc.run_for(timeout);
    if (!result) {
      resolver.cancel();
      throw std::system_error(std::make_error_code(std::errc::timed_out), "resolving " + url.host);
    }
    if (*result) throw_ec(*result, "resolving " + url.host);
  }
  if (!url.tls) {
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    if (auto ec = run(ioc, [&](auto h) { stream.async_connect(endpoints, h); }))
      throw_ec(ec, "connecting to " + url.origin());
    return exchange(ioc, stream, stream, url, headers, timeout);
  }
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_default_verify_paths();
  ctx.set_verify_mode(asio::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()))
    throw std::runtime_error("cannot set SNI " + url.host);
  stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
  beast::get_lowest_layer(stream).expires_after(timeout);
  if (auto ec = run(ioc, [&](auto h) { beast::get_lowest_layer(stream).async_connect(endpoints, h); }))
    throw_ec(ec, "connecting to " + url.origin());
  beast::get_lowest_layer(stream).expires_after(timeout);
  if (auto ec = run(ioc, [&](auto h) { stream.async_handshake(asio::ssl::stream_base::client, h); }))
    throw_ec(ec, "TLS handshake with " + url.origin());
  return exchange(ioc, stream, beast::get_lowest_layer(stream), url, headers, timeout);
}

}  // namespace orgproxy::onboarding::detail
