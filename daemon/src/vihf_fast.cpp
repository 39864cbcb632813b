// The VIHF check's fast path: a byte scan that proves a complete envelope holds no VIHF and nothing the full
// libxml2 scan (vihf_xml.cpp) would refuse as hostile, so that the parse is skipped for the requests that
// carry no assertion (INSi, any SOAP call without a VIHF). When in doubt it answers false: the full scan runs.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <string_view>

#include "orgproxy/daemon/vihf.hpp"

namespace orgproxy::daemon {

namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool iequals_ascii(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

// libxml2 decodes these bytes as UTF-8 (its default, with or without the UTF-8 BOM) only when the XML
// declaration, if any, names no other encoding (XML 1.0 §4.3.3, Appendix F). A declaration we cannot read
// plainly (no closing "?>", an unquoted value) is left to the parser.
bool decoded_as_utf8(std::string_view doc) {
  if (doc.substr(0, 5) != "<?xml") return true;
  const auto end = doc.find("?>");
  if (end == std::string_view::npos) return false;
  const std::string_view decl = doc.substr(0, end);
  const auto at = decl.find("encoding");
  if (at == std::string_view::npos) return true;
  auto q = decl.find_first_of("\"'", at);
  if (q == std::string_view::npos) return false;
  const auto close = decl.find(decl[q], q + 1);
  if (close == std::string_view::npos) return false;
  const std::string_view name = decl.substr(q + 1, close - q - 1);
  return iequals_ascii(name, "UTF-8") || iequals_ascii(name, "US-ASCII");
}

// Strict UTF-8 (RFC 3629): shortest forms only, no surrogates, nothing above U+10FFFF. An overlong form
// could spell an ASCII letter without its ASCII byte; such input goes to the parser.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // Runs of ASCII first: the common case (a SOAP envelope is mostly ASCII), 32 bytes at a time (four
    // words OR-ed: one test and one branch per 32 bytes), then 8.
    while (end - p >= 32) {
      std::uint64_t w[4];
      std::memcpy(w, p, 32);
      if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ULL) break;
      p += 32;
    }
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p == end) break;
    const unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c == 0xE0) n = 2, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) n = 2;
    else if (c == 0xED) n = 2, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) n = 2;
    else if (c == 0xF0) n = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 3;
    else if (c == 0xF4) n = 3, hi = 0x8F;
    else return false;
    if (end - p <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (int i = 2; i <= n; ++i)
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    p += n + 1;
  }
  return true;
}

// Markup declarations ("<!DOCTYPE", "<!ENTITY", ...) are the only way to a DTD or a declared entity;
// comments and CDATA sections are the two "<!" constructs a SOAP message may hold. '!' is rare in XML
// while '<' is everywhere: look for the former (memchr) and check the byte before it.
bool only_comments_and_cdata(std::string_view doc) {
  const char* const begin = doc.data();
  const char* const end = begin + doc.size();
  for (const char* p = begin; p < end;) {
    const auto* bang = static_cast<const char*>(std::memchr(p, '!', static_cast<std::size_t>(end - p)));
    if (!bang) break;
    if (bang > begin && bang[-1] == '<') {
      const std::string_view rest(bang + 1, static_cast<std::size_t>(end - bang - 1));
      if (rest.substr(0, 2) != "--" && rest.substr(0, 7) != "[CDATA[") return false;
    }
    p = bang + 1;
  }
  return true;
}

// References other than the five predefined entities and character references need a DTD (or are errors):
// left to the parser.
bool only_predefined_references(std::string_view doc) {
  for (auto at = doc.find('&'); at != std::string_view::npos; at = doc.find('&', at + 1)) {
    const std::string_view rest = doc.substr(at + 1);
    if (rest.substr(0, 3) == "lt;" || rest.substr(0, 3) == "gt;" || rest.substr(0, 4) == "amp;" ||
        rest.substr(0, 5) == "apos;" || rest.substr(0, 5) == "quot;")
      continue;
    if (rest.empty() || rest[0] != '#') return false;
    std::size_t i = 1;
    const bool hex = rest.size() > 1 && rest[1] == 'x';
    if (hex) ++i;
    const std::size_t digits_from = i;
    while (i < rest.size() && (std::isdigit(static_cast<unsigned char>(rest[i])) ||
                               (hex && std::isxdigit(static_cast<unsigned char>(rest[i])))))
      ++i;
    if (i == digits_from || i >= rest.size() || rest[i] != ';') return false;
  }
  return true;
}

// Whether "Assertion" occurs: memchr to each 'A' (vectorised in glibc), then a compare; std::string_view::find
// walks byte by byte here.
bool contains_assertion(std::string_view doc) {
  constexpr std::string_view name = "Assertion";
  const char* p = doc.data();
  const char* const end = p + doc.size();
  while (end - p >= static_cast<std::ptrdiff_t>(name.size())) {
    const auto* a = static_cast<const char*>(std::memchr(p, 'A', static_cast<std::size_t>(end - p)));
    if (!a || end - a < static_cast<std::ptrdiff_t>(name.size())) return false;
    if (std::memcmp(a, name.data(), name.size()) == 0) return true;
    p = a + 1;
  }
  return false;
}

}  // namespace

bool vihf_surely_absent(std::string_view envelope) {
  std::string_view doc = envelope;
  if (doc.substr(0, 3) == kUtf8Bom) doc.remove_prefix(3);
  // The first byte decides libxml2's encoding guess (XML 1.0 Appendix F): '<' then no NUL anywhere rules out
  // UTF-16/32 (with or without a BOM) and EBCDIC; the declaration settles the rest.
  if (doc.empty() || doc[0] != '<') return false;
  if (std::memchr(doc.data(), '\0', doc.size()) != nullptr) return false;
  if (!decoded_as_utf8(doc) || !valid_utf8(doc)) return false;
  // The assertion's local name must appear literally: XML names admit no character references, and in
  // UTF-8 an ASCII letter has only its own byte.
  if (contains_assertion(doc)) return false;
  return only_comments_and_cdata(doc) && only_predefined_references(doc);
}

}  // namespace orgproxy::daemon
