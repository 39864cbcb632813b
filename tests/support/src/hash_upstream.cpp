#include "orgproxy/testkit/hash_upstream.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <stdexcept>

namespace orgproxy::testkit {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

struct BioDeleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

std::string to_hex(const unsigned char* data, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0xf]);
  }
  return out;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

// The same renderings as nginx's $ssl_client_s_dn and $ssl_client_serial, so tests compare either upstream.
std::string subject_rfc2253(X509* cert) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  return bio_text(bio.get());
}

std::string serial_hex(X509* cert) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  i2a_ASN1_INTEGER(bio.get(), X509_get_serialNumber(cert));
  return bio_text(bio.get());
}

// Incremental SHA-256 of a body as it streams in.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(const void* data, std::size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    return to_hex(md, len);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx_;
};

int version_of(TlsProtocols p, bool min) {
  if (p == TlsProtocols::tls1_2) return TLS1_2_VERSION;
  if (p == TlsProtocols::tls1_3) return TLS1_3_VERSION;
  return min ? TLS1_2_VERSION : TLS1_3_VERSION;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.hex();
}

// Sessions are coroutines on `ioc`; they never outlive it: the destructor stops and joins the thread, and the
// io_context (declared first, destroyed last) then destroys the suspended session frames.
struct HashUpstream::Impl {
  asio::io_context ioc{1};
  ssl::context ctx{ssl::context::tls_server};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  std::atomic<unsigned> connections{0};
  std::atomic<unsigned> handshake_failures{0};
  std::atomic<unsigned> requests{0};
  mutable std::mutex mutex;
  std::vector<SeenRequest> seen;

  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) continue;
      const std::uint64_t number = connections.fetch_add(1) + 1;
      asio::co_spawn(ioc, session(std::move(socket), number), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket socket, std::uint64_t number) {
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), ctx);
    error_code ec;
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(60));
    co_await stream.async_handshake(ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      handshake_failures.fetch_add(1);
      co_return;
    }
    SSL* ssl_handle = stream.native_handle();
    SeenRequest base;
    base.connection = number;
    if (X509* peer = SSL_get0_peer_certificate(ssl_handle)) {
      base.client_dn = subject_rfc2253(peer);
      base.client_serial = serial_hex(peer);
    }
    base.tls_protocol = SSL_get_version(ssl_handle);
    base.session_reused = SSL_session_reused(ssl_handle) == 1;

    beast::flat_buffer buffer;
    std::vector<char> chunk(64 * 1024);
    for (;;) {
      http::request_parser<http::buffer_body> parser;
      parser.body_limit(boost::none);  // bodies of any size stream through the hash
      parser.header_limit(256 * 1024);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(120));
      co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;  // end of stream, idle timeout or garbage: the connection ends
      SeenRequest seen_request = base;
      const auto& header = parser.get();
      seen_request.method = std::string(header.method_string());
      seen_request.target = std::string(header.target());
      std::string names;
      for (const auto& f : header) {
        seen_request.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        std::string lower(f.name_string());
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        names += (names.empty() ? "" : ",") + lower;
      }
      if (beast::iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, 11};
        co_await http::async_write(stream, cont, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
      Sha256 hash;
      std::uint64_t length = 0;
      while (!parser.is_done()) {
        parser.get().body().data = chunk.data();
        parser.get().body().size = chunk.size();
        co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return;  // truncated body: no answer, as a real server would drop it
        const std::size_t got = chunk.size() - parser.get().body().size;
        hash.update(chunk.data(), got);
        length += got;
      }
      seen_request.body_sha256 = hash.hex();
      seen_request.body_length = length;

      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "text/plain");
      res.set("X-Client-DN", seen_request.client_dn);
      res.set("X-Client-Serial", seen_request.client_serial);
      res.set("X-Body-Sha256", seen_request.body_sha256);
      res.set("X-Body-Length", std::to_string(length));
      res.set("X-Seen-Host", std::string(header[http::field::host]));
      res.set("X-Seen-Path", seen_request.target);
      res.set("X-Seen-Headers", names);
      res.set("X-Tls-Protocol", seen_request.tls_protocol);
      res.set("X-Session-Reused", seen_request.session_reused ? "r" : ".");  // nginx's spelling
      res.set("X-Up-Conn", std::to_string(number));
      res.body() = "hash upstream ok\n";
      const bool keep_alive = parser.get().keep_alive();
      res.keep_alive(keep_alive);
      res.prepare_payload();
      {
        std::lock_guard lock(mutex);
        seen.push_back(std::move(seen_request));
      }
      requests.fetch_add(1);
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !keep_alive) break;
    }
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
  }
};

HashUpstream::HashUpstream(HashUpstreamOptions options) : impl_(std::make_shared<Impl>()) {
  auto& ctx = impl_->ctx;
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, version_of(options.protocols, true));
  SSL_CTX_set_max_proto_version(native, version_of(options.protocols, false));
  error_code ec;
  ctx.use_certificate_chain_file(options.cert_file, ec);
  if (!ec) ctx.use_private_key_file(options.key_file, ssl::context::pem, ec);
  if (!ec) ctx.load_verify_file(options.client_ca_file, ec);
  if (ec) throw std::runtime_error("HashUpstream: loading TLS files: " + ec.message());
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str())) {
    SSL_CTX_set_client_CA_list(native, names);
  }
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  ctx.set_verify_depth(2);
  static const unsigned char session_id_context[] = "orgproxy-hash-upstream";
  SSL_CTX_set_session_id_context(native, session_id_context, sizeof session_id_context - 1);

  tcp::endpoint endpoint(asio::ip::make_address(options.listen_address), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  asio::co_spawn(impl_->ioc, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

HashUpstream::~HashUpstream() {
  impl_->ioc.stop();
  impl_->thread.join();
}

std::uint16_t HashUpstream::port() const { return impl_->acceptor.local_endpoint().port(); }
std::string HashUpstream::url(const std::string& path) const {
  return "https://127.0.0.1:" + std::to_string(port()) + path;
}
unsigned HashUpstream::connections() const { return impl_->connections.load(); }
unsigned HashUpstream::handshake_failures() const { return impl_->handshake_failures.load(); }
unsigned HashUpstream::requests() const { return impl_->requests.load(); }
std::vector<SeenRequest> HashUpstream::seen() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->seen;
}

}  // namespace orgproxy::testkit
