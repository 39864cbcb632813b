// The admin listener's network side and request dispatch; the JSON views are in admin_views.cpp.
#include "orgproxy/daemon/admin_server.hpp"

#include <openssl/crypto.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "orgproxy/daemon/authorization.hpp"
#include "orgproxy/daemon/metrics.hpp"
#include "orgproxy/daemon/runtime.hpp"
#include "async_util.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kAdminHeaderLimit = 8 * 1024;
constexpr auto kAdminTimeout = std::chrono::seconds(10);

bool bearer_allowed(std::string_view authorization, const std::vector<std::string>& hashes) {
  if (hashes.empty()) return true;
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() <= scheme.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return false;
  std::string_view token = authorization.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  if (token.empty()) return false;
  const std::string digest = sha256_hex(token);
  bool ok = false;
  // Every configured hash is compared, in constant time, so timing tells nothing about which one matched.
  for (const auto& h : hashes)
    if (h.size() == digest.size() && CRYPTO_memcmp(h.data(), digest.data(), digest.size()) == 0) ok = true;
  return ok;
}

asio::awaitable<void> admin_session(tcp::socket socket, RuntimeSlot& runtime, std::shared_ptr<keystore::Keystore> ks) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kAdminHeaderLimit);
    parser.body_limit(0);  // admin requests carry no body
    stream.expires_after(kAdminTimeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow);
    if (ec) break;
    const auto& req = parser.get();
    std::shared_ptr<const Runtime> rt = runtime.load();
    AdminResponse a = handle_admin_request(req.method_string(), req.target(), req[http::field::authorization], rt.get(),
                                           ks.get());
    http::response<http::string_body> res{static_cast<http::status>(a.status), req.version()};
    res.set(http::field::server, "orgproxy");
    res.set(http::field::content_type, a.content_type);
    res.set(http::field::cache_control, "no-store");
    if (a.status == 401) res.set(http::field::www_authenticate, "Bearer realm=\"orgproxy-admin\"");
    res.keep_alive(req.keep_alive());
    res.body() = req.method() == http::verb::head ? std::string() : std::move(a.body);
    res.prepare_payload();
    if (req.method() == http::verb::head) res.content_length(a.body.size());
    stream.expires_after(kAdminTimeout);
    auto [wec, wn] = co_await http::async_write(stream, res, nothrow);
    if (wec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

AdminResponse handle_admin_request(std::string_view method, std::string_view target, std::string_view authorization,
                                   const Runtime* rt, const keystore::Keystore* ks) {
  AdminResponse a;
  const std::string_view path = target.substr(0, target.find('?'));
  static const std::vector<std::string> kNone;
  const auto& hashes = rt && rt->config().admin ? rt->config().admin->bearer_sha256 : kNone;
  if (!bearer_allowed(authorization, hashes)) {
    a.status = 401;
    a.body = "admin token missing or not accepted\n";
    return a;
  }
  if (method != "GET" && method != "HEAD") {
    a.status = 405;
    a.body = "only GET and HEAD\n";
    return a;
  }
  if (path == "/healthz") {
    a.body = "ok\n";
  } else if (path == "/metrics") {
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.body = metrics().exposition(rt, ks);
  } else if (path == "/readyz") {
    a.content_type = "application/json";
    if (!rt) {
      a.status = 503;
      a.body = "{\"ready\":false,\"reason\":\"configuration not loaded\"}\n";
    } else {
      bool ready = false;
      a.body = readyz_json(*rt, ready);
      a.status = ready ? 200 : 503;
    }
  } else if (path == "/sites") {
    a.content_type = "application/json";
    if (!rt) {
      a.status = 503;
      a.body = "{\"error\":\"configuration not loaded\"}\n";
    } else {
      a.body = sites_json(*rt);
    }
  } else {
    a.status = 404;
    a.body = "not found: /metrics, /healthz, /readyz, /sites\n";
  }
  return a;
}

void check_admin_exposure(const std::string& address, const std::vector<std::string>& bearer_sha256) {
  if (address == "localhost") return;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) throw std::invalid_argument("admin: address " + address + " is not an IP address");
  if (!ip.is_loopback() && bearer_sha256.empty())
    throw std::invalid_argument("admin: the admin endpoint on " + address +
                                " (not loopback) needs bearer_sha256: refusing to expose metrics and site state");
}

AdminServer::AdminServer(const config::AdminListener& settings, RuntimeSlot& runtime,
                         std::shared_ptr<keystore::Keystore> keystore)
    : runtime_(runtime), keystore_(std::move(keystore)) {
  check_admin_exposure(settings.address, settings.bearer_sha256);
  const auto ip = settings.address == "localhost" ? asio::ip::make_address("127.0.0.1")
                                                  : asio::ip::make_address(settings.address);
  tcp::endpoint ep(ip, settings.port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
  accept_loop();
  thread_ = std::thread([this] { io_.run(); });
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    io_.stop();
  });
  thread_.join();
}

void AdminServer::accept_loop() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      spdlog::warn("admin: accept failed: {}", ec.message());
    } else {
      asio::co_spawn(io_, admin_session(std::move(socket), runtime_, keystore_), asio::detached);
    }
    accept_loop();
  });
}

}  // namespace orgproxy::daemon
