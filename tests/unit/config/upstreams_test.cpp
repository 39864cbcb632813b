// Upstreams: URL split, SNI rules (RFC 6066), TLS versions, references from routes.
#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

using ::testing::Contains;
using ::testing::SizeIs;

const std::string kHead = yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
upstreams:
  u:
    ca_file: ca.pem
    environment: test
    purpose: insi-auto
)");  // 6 lines; the test adds the upstream's url (and more) at line 7

const Upstream& upstream_of(const LoadResult& r) {
  static const Upstream none;
  if (!r.config || !r.config->find_upstream("u")) return none;
  return *r.config->find_upstream("u");
}

TEST(Upstreams, url_is_split_into_host_port_and_base_path_without_trailing_slash) {
  auto r = load_ok(kHead + "    url: https://Services-PS-tlsm.ameli.fr:8443/lps/\n");
  const Upstream& u = upstream_of(r);
  EXPECT_EQ(u.url, "https://Services-PS-tlsm.ameli.fr:8443/lps/");
  EXPECT_EQ(u.host, "services-ps-tlsm.ameli.fr");
  EXPECT_EQ(u.port, 8443);
  EXPECT_EQ(u.base_path, "/lps");
  EXPECT_EQ(u.sni, "services-ps-tlsm.ameli.fr");
  EXPECT_EQ(u.ca_file, "/cfg/ca.pem");
  EXPECT_EQ(u.environment, Environment::test);
  EXPECT_EQ(u.purpose, Purpose::insi_auto);
}

TEST(Upstreams, root_url_has_an_empty_base_path) {
  auto r = load_ok(kHead + "    url: https://dmp.example\n");
  EXPECT_EQ(upstream_of(r).base_path, "");
  EXPECT_EQ(upstream_of(r).port, 443);
  auto r2 = load_ok(kHead + "    url: https://dmp.example/\n");
  EXPECT_EQ(upstream_of(r2).base_path, "");
}

TEST(Upstreams, ipv6_literal_in_brackets_gives_a_bare_host_and_no_sni) {
  auto r = load_ok(kHead + "    url: https://[::1]:8443/dmp\n");
  const Upstream& u = upstream_of(r);
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 8443);
  EXPECT_EQ(u.base_path, "/dmp");
  EXPECT_EQ(u.sni, "");  // RFC 6066: no IP literal in SNI
}

TEST(Upstreams, ipv4_literal_has_no_default_sni_but_takes_a_configured_name) {
  auto r = load_ok(kHead + "    url: https://127.0.0.1:8443/dmp\n");
  EXPECT_EQ(upstream_of(r).sni, "");
  auto r2 = load_ok(kHead + "    url: https://127.0.0.1:8443/dmp\n    sni: DMP.test.local\n");
  EXPECT_EQ(upstream_of(r2).sni, "dmp.test.local");
  EXPECT_EQ(upstream_of(r2).host, "127.0.0.1");
}

TEST(Upstreams, ip_literal_as_sni_is_refused) {
  auto d = load_errors(kHead + "    url: https://dmp.example\n    sni: 10.0.0.1\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(8, 10, "RFC 6066 allows only host names in SNI")));
}

struct BadUrl {
  const char* url;
  const char* message;
};
class BadUpstreamUrls : public ::testing::TestWithParam<BadUrl> {};

TEST_P(BadUpstreamUrls, are_refused_at_the_url) {
  ASSERT_TRUE(load_ok(kHead + "    url: \"https://d.example/a\"\n").config);  // control: a good URL in its place
  auto d = load_errors(kHead + "    url: \"" + GetParam().url + "\"\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(7, 10, GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Rules, BadUpstreamUrls,
    ::testing::Values(BadUrl{"http://dmp.example/", "the scheme must be https, not http"},
                      BadUrl{"dmp.example/x", "not a URL"}, BadUrl{"https://::1:8443/", "must be written in brackets"},
                      BadUrl{"https://[::1/", "without its closing ']'"},
                      BadUrl{"https://[fe80::zz]/", "is not an IPv6 address"},
                      BadUrl{"https://user:pw@dmp.example/", "user information in the URL is not allowed"},
                      BadUrl{"https://dmp.example:08443/", "write 8443, not 08443"},
                      BadUrl{"https://dmp.example:0/", "out of range"}, BadUrl{"https://dmp.example:/", "empty port"},
                      BadUrl{"https://dmp.example/a?wsdl", "no query or fragment"},
                      BadUrl{"https://dmp.example/a/../b", "dot-segments"},
                      BadUrl{"https://dmp.example/a%2Fb", "%-escapes are not allowed"},
                      BadUrl{"https://dmp.example//a", "empty path segment"},
                      BadUrl{"https://dmp_x.example/", "not a valid host name"}, BadUrl{"https:///a", "no host"}));

TEST(Upstreams, tls_versions_are_read_as_text_and_ordered) {
  auto r = load_ok(kHead + "    url: https://d.example\n    tls_min: 1.3\n    tls_max: \"1.3\"\n");
  EXPECT_EQ(upstream_of(r).tls_min, TlsVersion::tls1_3);
  EXPECT_EQ(upstream_of(r).tls_max, TlsVersion::tls1_3);
  auto d = load_errors(kHead + "    url: https://d.example\n    tls_min: 1.3\n    tls_max: 1.2\n");
  EXPECT_THAT(d, Contains(ErrorAt(8, 14, "tls_min 1.3 is above tls_max 1.2")));
  auto d2 = load_errors(kHead + "    url: https://d.example\n    tls_min: 1.20\n");
  EXPECT_THAT(d2, Contains(ErrorAt(8, 14, "'1.20' is not allowed")));
}

TEST(Upstreams, environment_and_purpose_are_checked_with_suggestions) {
  auto d = load_errors(yaml(R"(
listeners: [{ name: ris, address: 127.0.0.1, port: 8080 }]
upstreams:
  u: { url: "https://d.example", ca_file: ca.pem, environment: prod, purpose: insi_auto }
)"));
  EXPECT_THAT(d, Contains(ErrorAt(3, 64, "'prod' is not allowed (allowed: test, production)")));
  EXPECT_THAT(d, Contains(ErrorAt(3, 79, "'insi_auto' is not allowed (did you mean 'insi-auto'?)")));
}

TEST(Upstreams, pool_and_timeouts_are_read) {
  auto r = load_ok(kHead + yaml(R"(
    url: https://d.example
    connect_timeout: 2s
    handshake_timeout: 3s
    first_byte_timeout: 2m
    idle_timeout: 30s
    max_idle_per_key: 0
)"));
  const Upstream& u = upstream_of(r);
  EXPECT_EQ(u.connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(u.handshake_timeout, std::chrono::seconds(3));
  EXPECT_EQ(u.first_byte_timeout, std::chrono::minutes(2));
  EXPECT_EQ(u.idle_timeout, std::chrono::seconds(30));
  EXPECT_EQ(u.max_idle_per_key, 0u);
}

TEST(Upstreams, route_to_an_unknown_upstream_is_refused_with_a_suggestion) {
  auto d = load_errors(kHead + "    url: https://d.example\nroutes:\n  - { prefix: /insi, upstream: uu }\n");
  ASSERT_THAT(errors_only(d), SizeIs(1));
  EXPECT_THAT(d, Contains(ErrorAt(9, 32, "route '/insi': upstream: no upstream named 'uu' (did you mean 'u'?)")));
  auto ok = load_ok(kHead + "    url: https://d.example\nroutes:\n  - { prefix: /insi, upstream: u }\n");
  EXPECT_TRUE(ok.config);
}

TEST(Upstreams, upstream_name_must_be_simple) {
  auto d = load_errors(kHead +
                       "    url: https://d.example\n  \"a b\": { url: \"https://e.example\", ca_file: c, "
                       "environment: test, purpose: dmp }\n");
  EXPECT_THAT(d, Contains(ErrorAt(8, 3, "upstream 'a b': not a simple name")));
}

TEST(Upstreams, egress_proxy_is_read_with_its_credentials_file) {
  auto r = load_ok(
      kHead +
      "    url: https://d.example\n    proxy: { url: \"http://[fd00::3]:3128\", credentials_file: proxy.cred }\n");
  const Upstream& u = upstream_of(r);
  ASSERT_TRUE(u.proxy);
  EXPECT_EQ(u.proxy->host, "fd00::3");
  EXPECT_EQ(u.proxy->port, 3128);
  EXPECT_EQ(u.proxy->credentials_file, "/cfg/proxy.cred");
  auto r2 = load_ok(kHead + "    url: https://d.example\n    proxy: { url: http://proxy.local }\n");
  ASSERT_TRUE(upstream_of(r2).proxy);
  EXPECT_EQ(upstream_of(r2).proxy->port, 80);
  EXPECT_EQ(upstream_of(r2).proxy->credentials_file, "");
  EXPECT_FALSE(upstream_of(load_ok(kHead + "    url: https://d.example\n")).proxy);
}

TEST(Upstreams, egress_proxy_url_rules) {
  for (const auto& [url, message] : std::vector<std::pair<std::string, std::string>>{
           {"https://proxy.local:3128", "an egress proxy is written http://host:port"},
           {"http://u:p@proxy.local:3128", "user information in the URL is not allowed"},
           {"http://proxy.local:3128/x", "no path, query or fragment"},
           {"http://proxy.local:03128", "write 3128, not 03128"}}) {
    auto d = load_errors(kHead + "    url: https://d.example\n    proxy: { url: \"" + url + "\" }\n");
    ASSERT_THAT(errors_only(d), SizeIs(1)) << url;
    EXPECT_THAT(d, Contains(ErrorAt(8, 19, message))) << url;
  }
}

}  // namespace
}  // namespace orgproxy::config::test
