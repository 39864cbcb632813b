// Operations, log secrecy: requests carrying a PIN-like header, a private-key PEM marker and a body marker
// are logged (tenant and request id present: the positive control), and none of the secrets appears in the
// access log file, the daemon's output, or any other file the daemon wrote.
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "ops_world.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/site_ids.hpp"

namespace tk = orgproxy::testkit;
using orgproxy::ops_it::OpsWorld;

namespace {

class OpsLogs : public OpsWorld {};

}  // namespace

TEST_F(OpsLogs, secrets_in_requests_never_reach_any_log_while_tenant_and_request_id_do) {
  const std::string a(tk::kSiteA);
  const std::string access_log = tmp_.file("access.log");
  start("", "logging:\n  access_log: \"" + access_log + "\"\n  rotate_size: 1MiB\n  rotate_count: 2\n");

  const std::string pin = "PIN-4711-secret";
  const std::string pem = "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
  const std::string body_marker = "BODY-MARKER-7f3a9c";
  const std::string query_secret = "QUERY-SECRET-91b2";
  const auto body_file = tmp_.file("body.xml");
  tk::write_file(body_file, "<Envelope>" + body_marker + "</Envelope>");

  auto r1 = send(a, "/dmp/registry?pin=" + query_secret,
                 {"-H", "X-Request-Id: secrecy-req-1", "-H", "X-Token-Pin: " + pin, "--data-binary", "@" + body_file});
  EXPECT_EQ(r1.status, 200) << diagnostics();
  auto r2 = send(a, "/dmp/registry", {"-H", "X-Request-Id: secrecy-req-2", "-H", "X-Key: " + pem});
  EXPECT_EQ(r2.status, 200) << diagnostics();
  // An error answer too (the daemon's own warning line is written for it).
  auto r3 = send(a, "/nowhere?pin=" + query_secret, {"-H", "X-Request-Id: secrecy-req-3", "-H", "X-Token-Pin: " + pin});
  EXPECT_EQ(r3.status, 404);

  // The access log file is flushed once a second: wait for the three lines.
  std::string log;
  for (int i = 0; i < 200; ++i) {
    log = std::filesystem::exists(access_log) ? tk::read_file(access_log) : "";
    if (log.find("secrecy-req-3") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Positive control: the same log holds those requests, with their tenant.
  for (const char* id : {"secrecy-req-1", "secrecy-req-2", "secrecy-req-3"}) {
    auto pos = log.find(std::string("\"request_id\":\"") + id + "\"");
    ASSERT_NE(pos, std::string::npos) << id << "\n" << log;
    auto line_end = log.find('\n', pos);
    auto line_start = log.rfind('\n', pos);
    const std::string line = log.substr(line_start == std::string::npos ? 0 : line_start + 1,
                                        line_end - (line_start == std::string::npos ? 0 : line_start + 1));
    EXPECT_NE(line.find("\"tenant\":\"" + a + "\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"path\":\"/"), std::string::npos) << line;
    auto j = nlohmann::json::parse(line);
    for (const char* f : {"client", "upstream", "method", "status", "error", "bytes_in", "bytes_out", "duration_ms",
                          "connect_ms", "handshake_ms"})
      EXPECT_TRUE(j.contains(f)) << f << " missing: " << line;
    if (std::string(id) == "secrecy-req-1") {
      // The first request of the run opened the upstream connection: its connect and handshake are timed.
      EXPECT_GT(j["handshake_ms"].get<double>(), 0.0) << line;
      EXPECT_EQ(j["bytes_in"].get<int>(), static_cast<int>(std::string("<Envelope></Envelope>").size() + body_marker.size()));
    }
  }
  EXPECT_NE(log.find("\"path\":\"/dmp/registry\""), std::string::npos) << "the path is logged without its query";

  const std::string token_pin = tk::read_file(world_->token().pin_file());
  std::vector<std::string> secrets{pin, "BEGIN PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", body_marker,
                                   query_secret, token_pin.substr(0, token_pin.find('\n'))};
  // Everything the daemon wrote: its output and every file in its directory and the access log's.
  std::vector<std::pair<std::string, std::string>> outputs{{"daemon output", daemon_->log()}, {"access log", log}};
  for (const auto& dir : {tmp_.path() / "daemon"})
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
      if (e.is_regular_file() && e.path().filename() != "orgproxy.yaml")
        outputs.emplace_back(e.path().string(), tk::read_file(e.path()));
  for (const auto& e : std::filesystem::directory_iterator(tmp_.path()))
    if (e.is_regular_file() && e.path().filename().string().rfind("access", 0) == 0)
      outputs.emplace_back(e.path().string(), tk::read_file(e.path()));
  ASSERT_GE(outputs.size(), 3u);
  for (const auto& [what, text] : outputs) {
    ASSERT_FALSE(text.empty()) << what;
    for (const auto& s : secrets) EXPECT_EQ(text.find(s), std::string::npos) << "'" << s << "' found in " << what;
  }
}
