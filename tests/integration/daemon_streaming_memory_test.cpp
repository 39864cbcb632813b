// Streaming memory (issue 5 point 2, C10 a/b): a 20 MB MTOM upload and a 20 MB answer pass through the
// daemon with its resident memory growing by far less than either body (bounded relay buffers, never the
// whole message in memory).
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "daemon_scripted_upstream.hpp"
#include "daemon_world.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {
namespace {

using namespace std::chrono_literals;
const std::string kA(tk::kSiteA);
constexpr std::size_t kBodyBytes = 20u << 20;
constexpr long kMaxGrowthKiB = 16 * 1024;

/// PID of the process whose command line mentions `config_file` (the daemon of this test: its
/// configuration lives in this test's own temp dir), or -1.
long pid_of_daemon(const std::string& config_file) {
  DIR* d = ::opendir("/proc");
  if (!d) return -1;
  long found = -1;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(config_file) != std::string::npos && cmd.find("run") != std::string::npos) {
      found = pid;
      break;
    }
  }
  ::closedir(d);
  return found;
}

/// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or -1.
long status_kib(long pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

TEST(DaemonStreamingProbe, status_fields_are_read_from_proc) {  // positive control of the probe itself
  EXPECT_GT(status_kib(static_cast<long>(::getpid()), "VmRSS"), 0);
  EXPECT_GE(status_kib(static_cast<long>(::getpid()), "VmHWM"), status_kib(static_cast<long>(::getpid()), "VmRSS"));
}

class DaemonStreaming : public DaemonWorld {};

TEST_F(DaemonStreaming, twenty_mb_mtom_upload_and_twenty_mb_answer_grow_rss_by_under_16_mib) {
  const std::string boundary = "MIMEBoundary_orgproxy_stream";
  const std::string attachment = random_bytes(kBodyBytes, 7);
  std::string body = "--" + boundary +
                     "\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
                     "Content-ID: <root.message@orgproxy.test>\r\n\r\n"
                     "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body/>"
                     "</soap:Envelope>\r\n--" +
                     boundary + "\r\nContent-Type: application/octet-stream\r\nContent-ID: <doc1@orgproxy.test>\r\n\r\n";
  body += attachment;
  body += "\r\n--" + boundary + "--\r\n";
  const std::string body_sha = tk::sha256_hex(body);
  const std::string answer = random_bytes(kBodyBytes, 11);
  const std::string answer_sha = tk::sha256_hex(answer);

  std::string seen_sha;
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  ScriptedUpstream up(server_.chain.string(), server_.key.string(), pki_->ca_bundle_pem().string(),
                      {[&](ScriptConn& c) {
                        for (;;) {
                          auto head = c.read_head();
                          auto got = c.read_exact(std::stoul(head_field(head, "Content-Length")));
                          if (got.size() > 1000) {
                            seen_sha = tk::sha256_hex(got);
                            c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                                    std::to_string(answer.size()) + "\r\n\r\n");
                            for (std::size_t off = 0; off < answer.size(); off += 64 * 1024)
                              c.write(std::string_view(answer).substr(off, 64 * 1024));
                          } else {
                            c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                          }
                        }
                      }});
  auto cfg = base_config(up.url("/base"));
  cfg.workers = 1;
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);
  const long pid = pid_of_daemon(proxy.config_file());
  ASSERT_GT(pid, 0);

  tk::HttpClient client("127.0.0.1", proxy.port(), 120s);
  // Warm-up: identity loaded, upstream connection and TLS session made, relay buffers allocated.
  ASSERT_EQ(client.request({"POST", "/dmp/x", {{"X-Orgproxy-Tenant", kA}}, "small"}).status, 200) << proxy.log();
  {
    std::ofstream clear("/proc/" + std::to_string(pid) + "/clear_refs");
    clear << "5";  // resets VmHWM to the current RSS
  }
  const long baseline = status_kib(pid, "VmRSS");
  ASSERT_GT(baseline, 0);

  auto r = client.request({"POST",
                           "/dmp/x",
                           {{"X-Orgproxy-Tenant", kA},
                            {"Content-Type", "multipart/related; type=\"application/xop+xml\"; boundary=\"" +
                                                 boundary + "\"; start=\"<root.message@orgproxy.test>\""}},
                           body});
  ASSERT_EQ(r.status, 200) << proxy.log();
  EXPECT_EQ(seen_sha, body_sha) << "the upload must arrive byte for byte";
  EXPECT_EQ(r.body.size(), answer.size());
  EXPECT_EQ(tk::sha256_hex(r.body), answer_sha);

  const long peak = status_kib(pid, "VmHWM");
  const long growth = peak - baseline;
  std::printf("streaming 20 MiB up + 20 MiB down: daemon RSS %ld KiB before, peak %ld KiB, growth %ld KiB\n",
              baseline, peak, growth);
  EXPECT_LT(growth, kMaxGrowthKiB) << "RSS grew by " << growth << " KiB for 2 x 20 MiB of bodies";
  // The probe sees the daemon: its RSS is well above zero and the peak at least the baseline.
  EXPECT_GE(peak, baseline);
}

}  // namespace
}  // namespace orgproxy::daemon_it
