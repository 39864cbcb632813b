// One JSON access-log line per request (DESIGN.md "Logs"): never bodies, keys, PINs or certificates.
#pragma once

#include <cstdint>
#include <string_view>

#include "orgproxy/daemon/error_response.hpp"

namespace orgproxy::daemon {

struct AccessRecord {
  std::string_view request_id;
  std::string_view listener;
  std::string_view tenant;    ///< "" when not selected
  std::string_view client;    ///< matched `clients` rule name ("" under the loopback rule)
  std::string_view upstream;  ///< "" when not routed
  std::string_view method;
  std::string_view path;      ///< without the query string (queries may hold patient data)
  unsigned status = 0;
  ErrorCode error = ErrorCode::none;
  std::uint64_t bytes_in = 0;   ///< request body bytes read from the client
  std::uint64_t bytes_out = 0;  ///< response body bytes written to the client
  double duration_ms = 0;
  double connect_ms = 0;    ///< upstream TCP connect of a new connection (0: pooled or none)
  double handshake_ms = 0;  ///< upstream TLS handshake of a new connection (0: pooled or none)
  bool upstream_reused = false;  ///< the upstream connection came from the pool
};

/// Formats `r` as one JSON object (no trailing newline). Strings are JSON-escaped.
std::string format_access_json(const AccessRecord& r);

/// Writes `r` to the "access" spdlog logger (created by the daemon's main; falls back to the default
/// logger when absent).
void log_access(const AccessRecord& r);

}  // namespace orgproxy::daemon
