// Routes: prefix rules and matching (segment boundaries, longest wins, optional host).
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::SizeIs;

const std::string kUpstreams = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
upstreams:
  dmp: { url: "https://d.example/s", ca_file: ca.pem, environment: test, purpose: dmp }
  insi: { url: "https://i.example/lps", ca_file: ca.pem, environment: test, purpose: insi-auto }
  other: { url: "https://o.example", ca_file: ca.pem, environment: test, purpose: dmp }
  root: { url: "https://r.example", ca_file: ca.pem, environment: test, purpose: dmp }
routes:
)");  // 7 lines; routes start at line 8

std::string upstream_for(const Config& c, std::string_view path, std::string_view host = "") {
  const Route* r = c.match_route(path, host);
  return r ? r->upstream : "(none)";
}

TEST(Routes, prefix_matches_on_segment_boundaries_only) {
  auto r = load_ok(kUpstreams + "  - { prefix: /dmp, upstream: dmp }\n");
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(upstream_for(c, "/dmp"), "dmp");
  EXPECT_EQ(upstream_for(c, "/dmp/"), "dmp");
  EXPECT_EQ(upstream_for(c, "/dmp/registry"), "dmp");
  EXPECT_EQ(upstream_for(c, "/dmpx"), "(none)");
  EXPECT_EQ(upstream_for(c, "/dm"), "(none)");
  EXPECT_EQ(upstream_for(c, "/DMP"), "(none)");  // paths are case-sensitive
  EXPECT_EQ(upstream_for(c, ""), "(none)");
}

TEST(Routes, longest_prefix_wins_whatever_the_order_written) {
  auto r = load_ok(kUpstreams + yaml(R"(
  - { prefix: /, upstream: root }
  - { prefix: /dmp, upstream: dmp }
  - { prefix: /dmp/registry/v2, upstream: other }
  - { prefix: /dmp/registry, upstream: insi }
)"));
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(upstream_for(c, "/dmp/registry/v2/x"), "other");
  EXPECT_EQ(upstream_for(c, "/dmp/registry/v2"), "other");
  EXPECT_EQ(upstream_for(c, "/dmp/registry/v3"), "insi");
  EXPECT_EQ(upstream_for(c, "/dmp/registryx"), "dmp");
  EXPECT_EQ(upstream_for(c, "/dmp"), "dmp");
  EXPECT_EQ(upstream_for(c, "/insi"), "root");
  EXPECT_EQ(upstream_for(c, "/"), "root");
}

TEST(Routes, host_routes_match_case_insensitively_ignoring_the_port) {
  auto r = load_ok(kUpstreams + yaml(R"(
  - { prefix: /dmp, upstream: dmp }
  - { prefix: /dmp, host: Orgproxy.Local, upstream: other }
  - { prefix: /v6, host: "[::1]", upstream: insi }
)"));
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(upstream_for(c, "/dmp/x", "orgproxy.local"), "other");
  EXPECT_EQ(upstream_for(c, "/dmp/x", "ORGPROXY.LOCAL:8080"), "other");
  EXPECT_EQ(upstream_for(c, "/dmp/x", "orgproxy.local."), "other");
  EXPECT_EQ(upstream_for(c, "/dmp/x", "elsewhere.local"), "dmp");  // falls back to the host-less route
  EXPECT_EQ(upstream_for(c, "/dmp/x", ""), "dmp");
  EXPECT_EQ(upstream_for(c, "/v6", "[::1]"), "insi");
  EXPECT_EQ(upstream_for(c, "/v6", "[::1]:8080"), "insi");
  EXPECT_EQ(upstream_for(c, "/v6", "[::2]:8080"), "(none)");
}

TEST(Routes, trailing_slash_is_normalised_away) {
  auto r = load_ok(kUpstreams + "  - { prefix: /dmp/, upstream: dmp }\n  - { prefix: /insi//, upstream: insi }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->routes.size(), 2u);
  EXPECT_EQ(r.config->match_route("/dmp", "")->prefix, "/dmp");
  EXPECT_EQ(r.config->match_route("/insi/x", "")->prefix, "/insi");
}

struct BadPrefix {
  const char* prefix;
  const char* message;
};
class BadRoutePrefixes : public ::testing::TestWithParam<BadPrefix> {};

TEST_P(BadRoutePrefixes, are_refused_at_the_prefix) {
  ASSERT_TRUE(load_ok(kUpstreams + "  - { prefix: \"/dmp/x\", upstream: dmp }\n").config);  // control
  auto d = load_errors(kUpstreams + "  - { prefix: \"" + GetParam().prefix + "\", upstream: dmp }\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(8, 15, GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(Rules, BadRoutePrefixes,
                         ::testing::Values(BadPrefix{"dmp", "must start with '/'"},
                                           BadPrefix{"/a/../dmp", "dot-segment"}, BadPrefix{"/a/./dmp", "dot-segment"},
                                           BadPrefix{"/..", "dot-segment"}, BadPrefix{"/d%6Dp", "%-escape"},
                                           BadPrefix{"/dmp?x=1", "not allowed in a path prefix"},
                                           BadPrefix{"/a b", "not allowed in a path prefix"},
                                           BadPrefix{"/a//b", "empty segment"}));

TEST(Routes, duplicate_prefix_and_host_is_refused_naming_the_first) {
  auto d = load_errors(kUpstreams + "  - { prefix: /dmp, upstream: dmp }\n  - { prefix: /dmp/, upstream: insi }\n");
  EXPECT_THAT(d, Contains(ErrorAt(9, 15, "route '/dmp' is already defined at t.yaml:8:5")));
  // Positive control: the same prefix for another host is a different route.
  auto r = load_ok(kUpstreams +
                   "  - { prefix: /dmp, upstream: dmp }\n  - { prefix: /dmp, host: a.local, upstream: insi }\n");
  EXPECT_TRUE(r.config);
}

TEST(Routes, host_with_a_port_is_refused) {
  auto d = load_errors(kUpstreams + "  - { prefix: /dmp, host: \"a.local:8080\", upstream: dmp }\n");
  EXPECT_THAT(d, Contains(ErrorAt(8, 27, "write the host without a port")));
}

TEST(Routes, max_body_defaults_to_256_mib) {
  auto r = load_ok(kUpstreams + "  - { prefix: /dmp, upstream: dmp }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->routes[0].max_body_bytes, 256ull << 20);
}

}  // namespace
}  // namespace orgproxy::config::test
