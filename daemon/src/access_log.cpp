#include "orgproxy/daemon/access_log.hpp"

#include <array>
#include <cmath>
#include <cstdint>

#include <fmt/compile.h>
#include <spdlog/spdlog.h>

namespace orgproxy::daemon {

namespace {

// The bytes a JSON string must escape here (RFC 8259 §7: '"', '\\', controls; DEL as well, so that a log
// line stays printable): one table load per byte instead of four compares.
constexpr auto kEscaped = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0; c < 0x20; ++c) t[c] = true;
  t[0x7f] = t['"'] = t['\\'] = true;
  return t;
}();

}  // namespace

void append_json_string(fmt::memory_buffer& out, std::string_view s) {
  // Runs of plain bytes are appended at once: this runs for every field of every access line.
  out.push_back('"');
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (!kEscaped[u]) continue;
    out.append(s.substr(run, i - run));
    if (u == '"' || u == '\\') {
      out.push_back('\\');
      out.push_back(s[i]);
    } else {
      fmt::format_to(std::back_inserter(out), FMT_COMPILE("\\u{:04x}"), u);
    }
    run = i + 1;
  }
  out.append(s.substr(run));
  out.push_back('"');
}

namespace {

void format_into(fmt::memory_buffer& out, const AccessRecord& r) {
  // Literal pieces appended and numbers formatted by compiled format strings: no format-string parsing
  // per line (the access line is written for every request).
  auto field = [&](std::string_view key_with_quotes_and_colon, std::string_view value) {
    out.append(key_with_quotes_and_colon);
    append_json_string(out, value);
  };
  auto number = [&](std::string_view key, std::uint64_t v) {
    out.append(key);
    fmt::format_int text(v);
    out.append(text.data(), text.data() + text.size());
  };
  auto millis = [&](std::string_view key, double v) {
    out.append(key);
    // Three decimals from whole microseconds (integer formatting: a tenth of the cost of formatting a
    // double with a precision, three times per line); anything unusual takes fmt's "{:.3f}".
    if (v >= 0 && v < 1e12) {
      const auto micros = static_cast<std::uint64_t>(std::llround(v * 1000.0));
      fmt::format_int whole(micros / 1000);
      out.append(whole.data(), whole.data() + whole.size());
      const auto frac = static_cast<unsigned>(micros % 1000);
      const char digits[] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                             static_cast<char>('0' + frac % 10)};
      out.append(digits, digits + sizeof digits);
      return;
    }
    fmt::format_to(std::back_inserter(out), FMT_COMPILE("{:.3f}"), v);
  };
  out.append(std::string_view("{\"type\":\"access\""));
  field(",\"request_id\":", r.request_id);
  field(",\"listener\":", r.listener);
  field(",\"tenant\":", r.tenant);
  field(",\"client\":", r.client);
  field(",\"upstream\":", r.upstream);
  field(",\"method\":", r.method);
  field(",\"path\":", r.path);
  number(",\"status\":", r.status);
  field(",\"error\":", to_string(r.error));
  number(",\"bytes_in\":", r.bytes_in);
  number(",\"bytes_out\":", r.bytes_out);
  millis(",\"duration_ms\":", r.duration_ms);
  millis(",\"connect_ms\":", r.connect_ms);
  millis(",\"handshake_ms\":", r.handshake_ms);
  out.append(std::string_view(r.upstream_reused ? ",\"reused\":true}" : ",\"reused\":false}"));
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
