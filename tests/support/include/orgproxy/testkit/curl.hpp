// The real curl as a test client (a real RIS-like client: its own framing, Expect handling, TLS stack).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::testkit {

/// Outcome of one curl run: curl's exit code and stderr/stdout text, and the last response received
/// (status 0 when none).
struct CurlResult {
  int exit_code = -1;
  std::string output;     ///< curl's own messages (-sS: errors only)
  HttpResponse response;  ///< last final response (1xx interim responses skipped); body from the -o file
  /// Every final response's headers block, in order (several when one run fetches several URLs).
  std::vector<HttpResponse> responses;
};

/// Runs `curl -sS -D <dir>/curl-N.headers -o <dir>/curl-N.body <args...>` (N increments per call) with a
/// 60 s timeout and parses the header file. Throws std::runtime_error if curl cannot be started.
CurlResult run_curl(const std::filesystem::path& dir, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// Splits a dump of one or more HTTP/1.x response header blocks (curl -D) into responses (no bodies),
/// skipping 1xx interim ones.
std::vector<HttpResponse> parse_header_dump(const std::string& dump);

}  // namespace orgproxy::testkit
