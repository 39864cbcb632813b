#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace orgproxy::daemon
