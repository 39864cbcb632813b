// A small HTTP/1.1 client for tests, over plain TCP to the daemon's listener: keep-alive, raw bytes,
// one response at a time with its headers and body, and the time it took.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orgproxy::testkit {

/// One HTTP response as received (header names keep their case and order).
struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = false;                 ///< the server did not ask to close
  std::chrono::milliseconds elapsed{0};    ///< from the request's last byte written to the response's end

  /// First value of header `name` (case-insensitive), or "" when absent.
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  /// Every value of header `name`, in order.
  std::vector<std::string> header_values(std::string_view name) const;
};

/// A request to send; Host and Content-Length are added when missing (Content-Length only for a body or
/// a method that carries one).
struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// Raised when the connection fails, times out or the response cannot be parsed (the message says which).
class HttpClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One TCP connection to host:port (IPv4 literal), reused for several requests (keep-alive).
/// Not thread-safe. Every operation has a deadline (`timeout`, default 30 s: generous for loaded CI).
class HttpClient {
 public:
  HttpClient(std::string host, std::uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends `request` and reads one response. Throws HttpClientError.
  HttpResponse request(const HttpRequest& request);
  /// Writes bytes as they are (for malformed or hand-framed requests). Throws HttpClientError.
  void send_raw(std::string_view bytes);
  /// Reads one response (e.g. after send_raw). `head_request` = the request was HEAD (no body follows).
  /// Throws HttpClientError (including when the peer closes before a full response).
  HttpResponse read_response(bool head_request = false);
  /// True when the server has closed the connection: waits up to `wait` for EOF or a reset,
  /// false if the connection is still open (or data arrived instead).
  bool closed_by_peer(std::chrono::milliseconds wait = std::chrono::milliseconds(2000));
  /// Local port of the connection (to match server-side logs).
  std::uint16_t local_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Convenience: one request on a fresh connection.
HttpResponse http_request(std::uint16_t port, const HttpRequest& request,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace orgproxy::testkit
