// Upstream keys for reaching the national endpoints from a practice network: the egress proxy's connect
// timeout and the per-upstream CRL files.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;

const std::string kHead = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
upstreams:
  u:
    ca_file: ca.pem
    environment: test
    purpose: dmp
    url: https://d.example
)");

const Upstream& upstream_of(const LoadResult& r) {
  static const Upstream none;
  if (!r.config || !r.config->find_upstream("u")) return none;
  return *r.config->find_upstream("u");
}

TEST(UpstreamEgress, proxy_connect_timeout_defaults_to_the_upstream_connect_timeout) {
  auto r = load_ok(kHead + "    connect_timeout: 3s\n    proxy: { url: http://proxy.local:3128 }\n");
  ASSERT_TRUE(upstream_of(r).proxy);
  EXPECT_EQ(upstream_of(r).proxy->connect_timeout, std::chrono::seconds(3));
  auto r2 = load_ok(kHead + "    proxy: { url: http://proxy.local:3128, connect_timeout: 750ms }\n");
  ASSERT_TRUE(upstream_of(r2).proxy);
  EXPECT_EQ(upstream_of(r2).proxy->connect_timeout, std::chrono::milliseconds(750));
}

TEST(UpstreamEgress, proxy_connect_timeout_out_of_range_is_an_error_at_its_value) {
  auto d = load_errors(kHead + "    proxy: { url: http://proxy.local:3128, connect_timeout: 0ms }\n");
  EXPECT_THAT(d, Contains(ErrorAt(8, 61, "connect_timeout")));
}

TEST(UpstreamEgress, upstream_crl_files_resolve_against_the_file_directory) {
  auto r = load_ok(kHead + "    crl_files: [crl/organisations.crl, /etc/orgproxy/igc.crl]\n");
  EXPECT_THAT(upstream_of(r).crl_files, ElementsAre("/cfg/crl/organisations.crl", "/etc/orgproxy/igc.crl"));
  EXPECT_TRUE(upstream_of(load_ok(kHead)).crl_files.empty());
}

}  // namespace
}  // namespace orgproxy::config::test
