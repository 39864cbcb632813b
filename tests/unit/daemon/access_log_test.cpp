#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <random>
#include <string>

#include "orgproxy/daemon/access_log.hpp"

namespace orgproxy::daemon {
namespace {

TEST(AccessLog, one_json_object_with_the_fields_of_the_design_and_escaped_strings) {
  AccessRecord r;
  r.request_id = "0011223344556677";
  r.listener = "ris";
  r.tenant = "312345678200002";
  r.upstream = "dmp";
  r.method = "POST";
  r.path = "/dmp/\"x\"\\\n";
  r.status = 502;
  r.error = ErrorCode::upstream_tls;
  r.bytes_in = 12;
  r.bytes_out = 34;
  r.duration_ms = 1.5;
  auto line = format_access_json(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["request_id"], "0011223344556677");
  EXPECT_EQ(j["tenant"], "312345678200002");
  EXPECT_EQ(j["upstream"], "dmp");
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/dmp/\"x\"\\\n");
  EXPECT_EQ(j["status"], 502);
  EXPECT_EQ(j["error"], "upstream_tls");
  EXPECT_EQ(j["bytes_in"], 12);
  EXPECT_EQ(j["bytes_out"], 34);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 1.5);
}

// Durations are written with three decimals by integer formatting; the text must be what "{:.3f}" writes
// (values away from a rounding tie: a tie may round either way), and odd values still come out valid.
TEST(AccessLog, durations_read_as_three_decimals_like_fixed_formatting) {
  auto text_of = [](double ms) {
    AccessRecord r;
    r.duration_ms = ms;
    const std::string line = format_access_json(r);
    const auto at = line.find("\"duration_ms\":") + 14;
    return line.substr(at, line.find(',', at) - at);
  };
  std::mt19937_64 rng(42);
  for (int i = 0; i < 5000; ++i) {
    const double whole_micros = static_cast<double>(rng() % 100000000);
    const double ms = (whole_micros + 0.1 + 0.3 * static_cast<double>(rng() % 3)) / 1000.0;
    ASSERT_EQ(text_of(ms), fmt::format("{:.3f}", ms)) << ms;
  }
  for (double ms : {0.0, 0.0004, 0.9996, 1.5, 59999.9994, 1e15})
    EXPECT_EQ(text_of(ms), fmt::format("{:.3f}", ms)) << ms;
  // Not a number of milliseconds we produce, but never a broken line.
  AccessRecord negative;
  negative.duration_ms = -2.25;
  EXPECT_EQ(nlohmann::json::parse(format_access_json(negative))["duration_ms"].get<double>(), -2.25);
}

}  // namespace
}  // namespace orgproxy::daemon
