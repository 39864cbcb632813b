// scan_head finds line ends a word at a time; this checks it against the obvious byte-by-byte reading of
// the same rules (RFC 9112 §2.2, §5: CRLF only, no NUL, no obs-fold, no space before a colon) over heads
// near every limit and many random ones: same status, same reason, same head length.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {
namespace {

using Status = HeadScan::Status;

// The rules read one byte at a time: the specification the fast scan must match.
HeadScan reference_scan(std::string_view bytes, std::size_t max_bytes, std::size_t max_fields) {
  HeadScan r;
  std::size_t line_start = 0, fields = 0;
  bool first_line = true;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i >= max_bytes) return {Status::too_large, 0, "header bytes over the listener's max_header_bytes"};
    const char c = bytes[i];
    if (c == '\0') return {Status::malformed, 0, "NUL byte in header"};
    if (c == '\n') return {Status::malformed, 0, "bare LF in header"};
    if (c != '\r') continue;
    if (i + 1 >= bytes.size()) break;
    if (bytes[i + 1] != '\n') return {Status::malformed, 0, "bare CR in header"};
    const std::string_view line = bytes.substr(line_start, i - line_start);
    if (line.empty()) {
      if (first_line) return {Status::malformed, 0, "empty line before the start line"};
      return {Status::complete, i + 2, ""};
    }
    if (!first_line) {
      if (line.front() == ' ' || line.front() == '\t') return {Status::malformed, 0, "obsolete line folding"};
      const auto colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) return {Status::malformed, 0, "header line without a field name"};
      if (line[colon - 1] == ' ' || line[colon - 1] == '\t') return {Status::malformed, 0, "whitespace before a field's colon"};
      if (++fields > max_fields) return {Status::too_large, 0, "header count over the listener's max_header_count"};
    }
    first_line = false;
    line_start = i + 2;
    ++i;
  }
  if (bytes.size() >= max_bytes) return {Status::too_large, 0, "header bytes over the listener's max_header_bytes"};
  return r;
}

void expect_same(const std::string& head, std::size_t max_bytes, std::size_t max_fields) {
  const HeadScan fast = scan_head(head, max_bytes, max_fields);
  const HeadScan ref = reference_scan(head, max_bytes, max_fields);
  EXPECT_EQ(fast.status, ref.status) << testing::PrintToString(head) << " max_bytes=" << max_bytes;
  EXPECT_EQ(fast.head_bytes, ref.head_bytes) << testing::PrintToString(head) << " max_bytes=" << max_bytes;
  EXPECT_STREQ(fast.reason, ref.reason) << testing::PrintToString(head) << " max_bytes=" << max_bytes;
}

const std::string kHead =
    "POST /dmp/312345678200002/soap HTTP/1.1\r\nHost: proxy.local\r\nX-Orgproxy-Tenant: 312345678200002\r\n"
    "Content-Type: application/soap+xml; charset=utf-8\r\nContent-Length: 2048\r\n\r\n<soap:Envelope/>";

TEST(ScanHeadEquivalence, every_prefix_and_every_byte_limit_reads_as_byte_by_byte) {
  const auto end = kHead.find("\r\n\r\n") + 4;
  ASSERT_EQ(scan_head(kHead, 16 * 1024, 100).status, Status::complete);  // positive control
  ASSERT_EQ(scan_head(kHead, 16 * 1024, 100).head_bytes, end);
  for (std::size_t cut = 0; cut <= kHead.size(); ++cut)
    for (std::size_t max_bytes : {std::size_t{1}, end - 2, end - 1, end, end + 1, cut, cut + 1, std::size_t{16384}})
      for (std::size_t max_fields : {std::size_t{3}, std::size_t{4}, std::size_t{100}})
        expect_same(kHead.substr(0, cut), max_bytes, max_fields);
}

TEST(ScanHeadEquivalence, random_damage_reads_as_byte_by_byte) {
  std::mt19937 rng(7);
  const std::string alphabet = std::string("\r\n \t:aZ") + '\0';
  int complete = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string m = kHead;
    const int changes = static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) m[rng() % m.size()] = alphabet[rng() % alphabet.size()];
    const std::size_t max_bytes = 40 + rng() % 200;
    expect_same(m, max_bytes, 1 + rng() % 6);
    const Status s = scan_head(m, max_bytes, 6).status;
    complete += s == Status::complete;
    refused += s == Status::malformed;
  }
  // Both outcomes were exercised.
  EXPECT_GT(complete, 1000);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace orgproxy::daemon
