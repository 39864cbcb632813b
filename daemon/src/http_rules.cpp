#include "orgproxy/daemon/http_rules.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/rfc7230.hpp>

namespace orgproxy::daemon {

namespace http = boost::beast::http;
using boost::beast::iequals;

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

namespace {

// The index of the first CR, LF or NUL in [from, end), else `end`: 16 bytes at a time with SSE2, then 8
// (SWAR: a byte of w ^ pattern is zero where the byte matches; the classic has-zero-byte test), then byte
// by byte. A head is mostly field text between line ends: a few instructions per block, not three
// compares per byte.
std::size_t find_special(const char* p, std::size_t from, std::size_t end) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  constexpr std::uint64_t cr = ones * '\r', lf = ones * '\n';
  auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
  std::size_t i = from;
#if defined(__SSE2__)
  // 16 bytes per step where SSE2 is there (every x86-64): three byte compares and a mask whose lowest set
  // bit is the answer, instead of a word test and then a byte-by-byte search for which byte matched.
  {
    const __m128i v_cr = _mm_set1_epi8('\r'), v_lf = _mm_set1_epi8('\n'), v_nul = _mm_setzero_si128();
    for (; i + 16 <= end; i += 16) {
      const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      const __m128i hit =
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, v_cr), _mm_cmpeq_epi8(w, v_lf)), _mm_cmpeq_epi8(w, v_nul));
      if (const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hit)); mask != 0)
        return i + static_cast<std::size_t>(__builtin_ctz(mask));
    }
  }
#endif
  for (; i + 8 <= end; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (has_zero(w) | has_zero(w ^ cr) | has_zero(w ^ lf)) break;
  }
  for (; i < end; ++i) {
    const char c = p[i];
    if (c == '\r' || c == '\n' || c == '\0') return i;
  }
  return end;
}

}  // namespace

HeadScan scan_head(std::string_view bytes, std::size_t max_bytes, std::size_t max_fields) {
  HeadScan r;
  std::size_t line_start = 0;
  std::size_t fields = 0;
  bool first_line = true;
  const std::size_t n = bytes.size();
  // Bytes at or past max_bytes are never looked at (the head is too large once one is needed), except the
  // LF completing a CRLF whose CR is the last byte within the bound.
  const std::size_t scan_end = std::min(n, max_bytes);
  for (std::size_t i = find_special(bytes.data(), 0, scan_end); i < scan_end;
       i = find_special(bytes.data(), i + 1, scan_end)) {
    const char c = bytes[i];
    if (c == '\0') {
      r.status = HeadScan::Status::malformed;
      r.reason = "NUL byte in header";
      return r;
    }
    if (c == '\n') {
      r.status = HeadScan::Status::malformed;
      r.reason = "bare LF in header";
      return r;
    }
    if (i + 1 >= n) break;  // CR at the end: wait for the LF
    if (bytes[i + 1] != '\n') {
      r.status = HeadScan::Status::malformed;
      r.reason = "bare CR in header";
      return r;
    }
    std::string_view line = bytes.substr(line_start, i - line_start);
    if (line.empty()) {
      if (first_line) {
        // RFC 9112 §2.2 lets a server ignore empty lines before the request line; we refuse them to keep
        // one reading of the stream.
        r.status = HeadScan::Status::malformed;
        r.reason = "empty line before the start line";
        return r;
      }
      r.status = HeadScan::Status::complete;
      r.head_bytes = i + 2;
      return r;
    }
    if (!first_line) {
      if (line.front() == ' ' || line.front() == '\t') {
        r.status = HeadScan::Status::malformed;
        r.reason = "obsolete line folding";
        return r;
      }
      auto colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        r.status = HeadScan::Status::malformed;
        r.reason = "header line without a field name";
        return r;
      }
      char before = line[colon - 1];
      if (before == ' ' || before == '\t') {
        r.status = HeadScan::Status::malformed;
        r.reason = "whitespace before a field's colon";
        return r;
      }
      if (++fields > max_fields) {
        r.status = HeadScan::Status::too_large;
        r.reason = "header count over the listener's max_header_count";
        return r;
      }
    }
    first_line = false;
    line_start = i + 2;
    ++i;  // the LF
  }
  if (n >= max_bytes) {
    r.status = HeadScan::Status::too_large;
    r.reason = "header bytes over the listener's max_header_bytes";
  }
  return r;
}

namespace {

template <class Fields>
const char* check_request_framing_of(const Fields& fields, unsigned version) {
  std::size_t te_count = 0;
  std::size_t host_count = 0;
  for (auto const& f : fields) {
    if (f.name() == http::field::transfer_encoding) {
      ++te_count;
      if (!iequals(trim_ows(f.value()), "chunked")) return "Transfer-Encoding other than a single 'chunked'";
    } else if (f.name() == http::field::host) {
      ++host_count;
      if (trim_ows(f.value()).empty()) return "empty Host";
    }
  }
  if (te_count > 1) return "Transfer-Encoding repeated";
  if (te_count == 1 && version < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  if (host_count > 1) return "Host repeated";
  if (host_count == 0 && version >= 11) return "Host missing";
  return "";
}

template <class Fields>
void remove_hop_by_hop_of(Fields& fields, std::string_view also_remove) {
  // Runs twice per request: one pass to collect the names listed in Connection, one pass erasing by
  // iterator, instead of a name lookup in the field set for each of the ten kinds of hop-by-hop field.
  std::array<std::string_view, 8> named_fixed;
  std::vector<std::string_view> named_more;
  std::size_t named = 0;
  for (auto const& f : fields) {
    if (f.name() != http::field::connection) continue;
    for (auto tok : http::token_list{f.value()}) {
      if (named < named_fixed.size())
        named_fixed[named++] = std::string_view(tok.data(), tok.size());
      else
        named_more.emplace_back(tok.data(), tok.size());
    }
  }
  auto listed = [&](std::string_view name) {
    if (!also_remove.empty() && iequals(name, also_remove)) return true;
    for (std::size_t i = 0; i < named; ++i)
      if (iequals(name, named_fixed[i])) return true;
    for (auto n : named_more)
      if (iequals(name, n)) return true;
    return false;
  };
  // The names are views into the Connection values: Connection itself is erased last.
  bool has_connection = false;
  for (auto it = fields.begin(); it != fields.end();) {
    bool hop = false;
    switch (it->name()) {
      case http::field::connection:
        has_connection = true;
        break;
      case http::field::keep_alive:
      case http::field::te:
      case http::field::trailer:
      case http::field::transfer_encoding:
      case http::field::upgrade:
      case http::field::proxy_authorization:
      case http::field::proxy_connection:
        hop = true;
        break;
      default:
        hop = listed(std::string_view(it->name_string().data(), it->name_string().size()));
    }
    it = hop ? fields.erase(it) : std::next(it);
  }
  if (has_connection) fields.erase(http::field::connection);
}

}  // namespace

const char* check_request_framing(const http::fields& fields, unsigned version) {
  return check_request_framing_of(fields, version);
}

const char* check_request_framing(const HeadFields& fields, unsigned version) {
  return check_request_framing_of(fields, version);
}

void remove_hop_by_hop(http::fields& fields, std::string_view also_remove) {
  remove_hop_by_hop_of(fields, also_remove);
}

void remove_hop_by_hop(HeadFields& fields, std::string_view also_remove) {
  remove_hop_by_hop_of(fields, also_remove);
}

namespace {

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

bool is_reg_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '%' || c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' ||
         c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '=';
}

bool hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

std::optional<HostPort> parse_host(std::string_view v) {
  v = trim_ows(v);
  if (v.empty()) return std::nullopt;
  HostPort hp;
  std::string_view after;
  if (v.front() == '[') {
    auto close = v.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    hp.host = v.substr(1, close - 1);
    for (char c : hp.host)
      if (!(hex_digit(c) || c == ':' || c == '.')) return std::nullopt;
    after = v.substr(close + 1);
  } else {
    auto colon = v.find(':');
    hp.host = v.substr(0, colon);
    if (hp.host.empty()) return std::nullopt;
    for (char c : hp.host)
      if (!is_reg_name_char(c)) return std::nullopt;
    after = colon == std::string_view::npos ? std::string_view{} : v.substr(colon);
  }
  if (after.empty()) return hp;
  if (after.front() != ':') return std::nullopt;
  hp.port = parse_port(after.substr(1));
  if (!hp.port) return std::nullopt;
  return hp;
}

std::optional<TargetParts> check_target(std::string_view target, const char** reason) {
  auto refuse = [&](const char* why) -> std::optional<TargetParts> {
    if (reason) *reason = why;
    return std::nullopt;
  };
  if (target.empty() || target.front() != '/') return refuse("request target is not origin-form");
  TargetParts parts;
  auto q = target.find('?');
  parts.path = target.substr(0, q);
  if (q != std::string_view::npos) {
    parts.has_query = true;
    parts.query = target.substr(q + 1);
  }
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    // RFC 9112 §3.2: the request-target is visible ASCII only; obs-text (0x80-0xFF) would reach the upstream
    // raw and be decoded there in whatever charset it guesses.
    if (u <= 0x20 || u >= 0x7f) return refuse("byte outside visible ASCII in the request target");
    if (c == '#') return refuse("fragment in the request target");
  }
  std::string_view p = parts.path;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') return refuse("backslash in the path");
    if (p[i] == '%') {
      if (i + 2 >= p.size() || !hex_digit(p[i + 1]) || !hex_digit(p[i + 2]))
        return refuse("malformed percent-encoding in the path");
      char h = p[i + 1], l = static_cast<char>(p[i + 2] | 0x20);
      if ((h == '2' && (l == 'f' || l == 'e')) || (h == '5' && l == 'c'))
        return refuse("percent-encoded '/', '\\' or '.' in the path");
    }
  }
  // Dot-segments: a segment whose part before its first ';' is "." or "..". Servlet containers (Tomcat) strip
  // path parameters before resolving dot-segments, so "/dmp/..;/x" would climb out of the route there.
  // Empty segments ("//") are refused too: upstreams disagree on whether they collapse.
  std::size_t start = 1;
  while (start <= p.size()) {
    auto end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    auto seg = p.substr(start, end - start);
    if (seg.empty() && end < p.size()) return refuse("empty segment ('//') in the path");
    seg = seg.substr(0, seg.find(';'));
    if (seg == "." || seg == "..") return refuse("dot-segment in the path");
    start = end + 1;
  }
  return parts;
}

std::optional<std::string_view> split_site_prefix(std::string_view path, std::string_view& rest) {
  constexpr std::string_view kPrefix = "/sites/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  auto after = path.substr(kPrefix.size());
  auto slash = after.find('/');
  auto id = after.substr(0, slash);
  if (id.empty()) return std::nullopt;
  rest = slash == std::string_view::npos ? std::string_view{"/"} : after.substr(slash);
  return id;
}

std::string map_target(std::string_view base_path, std::string_view prefix, std::string_view path,
                       const TargetParts& parts) {
  std::string out;
  map_target_into(out, base_path, prefix, path, parts);
  return out;
}

void map_target_into(std::string& out, std::string_view base_path, std::string_view prefix,
                     std::string_view path, const TargetParts& parts) {
  std::string_view tail = prefix == "/" ? path : path.substr(prefix.size());
  out.clear();
  out.reserve(base_path.size() + tail.size() + parts.query.size() + 2);
  out += base_path;
  out += tail;
  if (out.empty()) out += '/';
  if (parts.has_query) {
    out += '?';
    out += parts.query;
  }
}

std::string upstream_authority(std::string_view name, std::uint16_t port) {
  std::string out;
  bool v6 = name.find(':') != std::string_view::npos;
  if (v6) out += '[';
  out += name;
  if (v6) out += ']';
  if (port != 443) {
    out += ':';
    out += std::to_string(port);
  }
  return out;
}

}  // namespace orgproxy::daemon
