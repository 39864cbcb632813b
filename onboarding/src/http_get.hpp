// A small blocking HTTP/1.1 GET (http:// and https://) with a deadline per exchange, for the directory API.
// Internal to the onboarding library.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace orgproxy::onboarding::detail {

/// An absolute http(s) URL split for a request.
struct HttpUrl {
  bool tls = false;
  std::string host;  ///< without IPv6 brackets
  std::string port;  ///< decimal
  std::string target;  ///< path + query, at least "/"
  /// scheme://host:port, for comparing origins (a next link must stay on the configured API).
  std::string origin() const { return (tls ? "https://" : "http://") + host + ":" + port; }
};

/// Parses `url` (http or https; no user info). Throws std::invalid_argument saying what is wrong.
HttpUrl parse_http_url(const std::string& url);

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

/// GETs `url` with `headers`. TLS verifies the server against the system trust store and its host name
/// (the directory is a public web service, unlike the IGC Santé upstreams). Bodies over 32 MiB are refused.
/// Throws std::system_error (connect, timeout: std::errc::timed_out) or std::runtime_error (protocol).
HttpResponse http_get(const HttpUrl& url, const std::vector<std::pair<std::string, std::string>>& headers,
                      std::chrono::milliseconds timeout);

}  // namespace orgproxy::onboarding::detail
