#include "orgproxy/daemon/access_log.hpp"

#include <spdlog/spdlog.h>

namespace orgproxy::daemon {

namespace {

void append_json_string(fmt::memory_buffer& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void format_into(fmt::memory_buffer& out, const AccessRecord& r) {
  auto field = [&](std::string_view name, std::string_view value) {
    fmt::format_to(std::back_inserter(out), ",\"{}\":", name);
    append_json_string(out, value);
  };
  out.append(std::string_view("{\"type\":\"access\""));
  field("request_id", r.request_id);
  field("listener", r.listener);
  field("tenant", r.tenant);
  field("client", r.client);
  field("upstream", r.upstream);
  field("method", r.method);
  field("path", r.path);
  fmt::format_to(std::back_inserter(out), ",\"status\":{}", r.status);
  field("error", to_string(r.error));
  fmt::format_to(std::back_inserter(out),
                 ",\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":{:.3f},\"connect_ms\":{:.3f},"
                 "\"handshake_ms\":{:.3f},\"reused\":{}}}",
                 r.bytes_in, r.bytes_out, r.duration_ms, r.connect_ms, r.handshake_ms,
                 r.upstream_reused ? "true" : "false");
}

}  // namespace

std::string format_access_json(const AccessRecord& r) {
  fmt::memory_buffer out;
  format_into(out, r);
  return fmt::to_string(out);
}

void log_access(const AccessRecord& r) {
  // Looked up once: spdlog::get takes the registry mutex.
  static const std::shared_ptr<spdlog::logger> access = [] {
    auto l = spdlog::get("access");
    return l ? l : spdlog::default_logger();
  }();
  fmt::memory_buffer out;  // inline storage: no heap allocation for a usual line
  format_into(out, r);
  access->info(std::string_view(out.data(), out.size()));
}

}  // namespace orgproxy::daemon
