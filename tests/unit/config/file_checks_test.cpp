// The files a start cannot do without (listener TLS files, egress proxy credentials) are checked with the
// configuration, at the position of their setting: by check_referenced_files() and by the real binary's
// `check-config --offline`, each with a positive control where the files exist.
#include <gmock/gmock.h>

#include "config_test_util.hpp"
#include "orgproxy/testkit/child_process.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr auto kTimeout = std::chrono::seconds(120);  // generous: a loaded 2-core CI machine

/// kBase with a TLS listener and an egress proxy whose files are all relative to the config file's
/// directory: cert at 5:18, key at 5:41, client_ca at 5:70, credentials_file at 13:72.
std::string config_with_files() {
  return yaml(R"(
listeners:
  - name: ris
    address: 127.0.0.1
    port: 8443
    tls: { cert: tls/listener.pem, key: tls/listener.key, client_ca: tls/ris-ca.pem }
    selectors: [header]
upstreams:
  dmp:
    url: https://lps2.dmp.gouv.fr/si-dmp-server/v2/services
    ca_file: /etc/orgproxy/igc-sante.pem
    environment: production
    purpose: dmp
    proxy: { url: "http://proxy.cabinet.local:3128", credentials_file: secrets/proxy }
routes:
  - { prefix: /dmp, upstream: dmp }
tenants:
  - { id: "312345678200002", identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a;type=private" }] } }
)");
}

TEST(FileChecks, missing_listener_files_and_proxy_credentials_are_errors_at_their_settings) {
  TempDir dir;
  const auto file = dir.write("orgproxy.yaml", config_with_files());
  auto loaded = load_config(file);
  ASSERT_TRUE(loaded.config);
  const auto d = check_referenced_files(*loaded.config);
  ASSERT_THAT(d, SizeIs(4)) << ::testing::PrintToString(d);
  const std::string tls = (dir.path() / "tls").string();
  EXPECT_THAT(d, Contains(ErrorAt(5, 18, "listener 'ris': tls: cert: cannot read '" + tls + "/listener.pem': no such file")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 41, "listener 'ris': tls: key: cannot read '" + tls + "/listener.key'")));
  EXPECT_THAT(d, Contains(ErrorAt(5, 70, "listener 'ris': tls: client_ca: cannot read '" + tls + "/ris-ca.pem'")));
  EXPECT_THAT(d, Contains(ErrorAt(13, 72, "upstream 'dmp': proxy: credentials_file: cannot read")));
  for (const auto& diag : d) EXPECT_EQ(diag.mark.file, file.string());

  // Positive control: the same configuration once the files exist.
  dir.write("tls/listener.pem", "x");
  dir.write("tls/listener.key", "x");
  dir.write("tls/ris-ca.pem", "x");
  dir.write("secrets/proxy", "user:password\n");
  EXPECT_THAT(check_referenced_files(*loaded.config), IsEmpty());
}

TEST(FileChecks, a_directory_is_not_a_file_and_a_token_key_is_not_a_file) {
  TempDir dir;
  std::string text = config_with_files();
  const std::string key = "key: tls/listener.key";
  text.replace(text.find(key), key.size(), "key: \"pkcs11:token=t;object=listener;type=private\"");
  const auto file = dir.write("orgproxy.yaml", text);
  dir.write("tls/listener.pem/inside", "x");  // the cert path is a directory
  dir.write("tls/ris-ca.pem", "x");
  dir.write("secrets/proxy", "user:password\n");
  auto loaded = load_config(file);
  ASSERT_TRUE(loaded.config);
  const auto d = check_referenced_files(*loaded.config);
  ASSERT_THAT(d, SizeIs(1)) << ::testing::PrintToString(d);
  EXPECT_THAT(d[0].message, HasSubstr("tls: cert: cannot read"));
  EXPECT_THAT(d[0].message, HasSubstr("not a regular file"));
}

TEST(FileChecks, check_config_offline_reports_missing_files_and_passes_once_they_exist) {
  TempDir dir;
  const auto file = dir.write("orgproxy.yaml", config_with_files());
  auto run = [&] {
    return testkit::run_command({ORGPROXY_BINARY, "check-config", "--config", file.string(), "--offline"}, {}, kTimeout);
  };
  const auto refused = run();
  ASSERT_FALSE(refused.timed_out) << refused.output;
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr(file.string() + ":5:18: error: listener 'ris': tls: cert: cannot read"));
  EXPECT_THAT(refused.output, HasSubstr(file.string() + ":13:72: error: upstream 'dmp': proxy: credentials_file"));
  EXPECT_THAT(refused.output, HasSubstr("configuration test failed (4 problem(s))"));

  dir.write("tls/listener.pem", "x");
  dir.write("tls/listener.key", "x");
  dir.write("tls/ris-ca.pem", "x");
  dir.write("secrets/proxy", "user:password\n");
  const auto ok = run();
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("configuration syntax is ok"));
}

}  // namespace
}  // namespace orgproxy::config::test
