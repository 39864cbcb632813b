#include "orgproxy/testkit/curl.hpp"

#include <atomic>
#include <sstream>

#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/files.hpp"

namespace orgproxy::testkit {

std::vector<HttpResponse> parse_header_dump(const std::string& dump) {
  std::vector<HttpResponse> out;
  std::istringstream in(dump);
  std::string line;
  HttpResponse current;
  bool in_block = false;
  auto finish = [&] {
    if (in_block && current.status >= 200) out.push_back(std::move(current));
    current = HttpResponse{};
    in_block = false;
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("HTTP/", 0) == 0) {
      finish();
      in_block = true;
      auto sp = line.find(' ');
      if (sp != std::string::npos) {
        current.status = std::atoi(line.c_str() + sp + 1);
        auto sp2 = line.find(' ', sp + 1);
        if (sp2 != std::string::npos) current.reason = line.substr(sp2 + 1);
      }
    } else if (line.empty()) {
      finish();
    } else if (in_block) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      current.headers.emplace_back(line.substr(0, colon), value);
    }
  }
  finish();
  return out;
}

CurlResult run_curl(const std::filesystem::path& dir, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout) {
  static std::atomic<unsigned> counter{0};
  const auto n = std::to_string(counter.fetch_add(1));
  const auto headers = dir / ("curl-" + n + ".headers");
  const auto body = dir / ("curl-" + n + ".body");
  std::vector<std::string> argv{"curl", "-sS", "-D", headers.string(), "-o", body.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto run = run_command(argv, {}, timeout);
  CurlResult result;
  result.exit_code = run.exit_code;
  result.output = run.output;
  std::error_code ec;
  if (std::filesystem::exists(headers, ec)) result.responses = parse_header_dump(read_file(headers));
  if (!result.responses.empty()) result.response = result.responses.back();
  if (std::filesystem::exists(body, ec)) result.response.body = read_file(body);
  return result;
}

}  // namespace orgproxy::testkit
