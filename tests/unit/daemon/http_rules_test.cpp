// Strict framing, hop-by-hop removal, Host parsing and target mapping (field cases C01, C03, C07, C16).
#include <gtest/gtest.h>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {
namespace {

namespace http = boost::beast::http;
using Status = HeadScan::Status;

HeadScan scan(std::string_view s) { return scan_head(s, 16 * 1024, 100); }

TEST(HeadScan, complete_head_reports_its_length_and_leaves_the_body) {
  std::string_view msg = "POST /dmp HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\n\r\nabc";
  auto r = scan(msg);
  ASSERT_EQ(r.status, Status::complete);
  EXPECT_EQ(msg.substr(r.head_bytes), "abc");
}

TEST(HeadScan, partial_head_asks_for_more_bytes) {
  EXPECT_EQ(scan("GET / HTTP/1.1\r\nHost: p\r\n").status, Status::incomplete);
  EXPECT_EQ(scan("GET / HTTP/1.1\r\nHost: p\r\n\r").status, Status::incomplete);
}

TEST(HeadScan, obs_fold_is_refused_not_unfolded) {  // C03 (a), (b)
  EXPECT_EQ(scan("POST /dmp HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\nX-Note: a\r\n b\r\n\r\nabc").status,
            Status::malformed);
  EXPECT_EQ(scan("POST /dmp HTTP/1.1\r\nHost: p\r\nContent-Length:\r\n 3\r\n\r\n").status, Status::malformed);
  EXPECT_EQ(scan("POST /dmp HTTP/1.1\r\nHost: p\r\nX-Note:\tb\r\n\r\n").status, Status::complete);
}

TEST(HeadScan, bare_lf_and_bare_cr_are_refused) {  // C03 (c), (d)
  EXPECT_EQ(scan("GET / HTTP/1.1\nHost: p\nX-A: 1\n\n").status, Status::malformed);
  EXPECT_EQ(scan("GET / HTTP/1.1\r\nHost: p\r\nX-A: 1\r2\r\n\r\n").status, Status::malformed);
  EXPECT_EQ(scan("GET / HTTP/1.1\r\nHost: p\r\nX-A: 1\n\r\n").status, Status::malformed);
}

TEST(HeadScan, whitespace_before_colon_and_nul_are_refused) {  // C03 (e)
  EXPECT_EQ(scan("POST / HTTP/1.1\r\nHost: p\r\nContent-Length : 3\r\n\r\nabc").status, Status::malformed);
  EXPECT_EQ(scan(std::string_view("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 25)).status, Status::malformed);
  EXPECT_EQ(scan("GET / HTTP/1.1\r\nno-colon-here\r\n\r\n").status, Status::malformed);
}

// The scan looks at blocks of 16 and 8 bytes, then single bytes: a forbidden byte is found wherever it sits
// in a long line (block starts, ends, tails), and the same line without it is accepted.
TEST(HeadScan, nul_bare_lf_and_bare_cr_are_found_at_every_offset_of_a_long_line) {
  const std::string start = "POST /dmp/registry HTTP/1.1\r\n";
  const std::string value(61, 'v');
  const std::string clean = start + "X-Long: " + value + "\r\nHost: p\r\n\r\n";
  EXPECT_EQ(scan_head(clean, 8192, 100).status, HeadScan::Status::complete);
  EXPECT_EQ(scan_head(clean, 8192, 100).head_bytes, clean.size());
  for (std::size_t at = 0; at < value.size(); ++at) {
    for (char bad : {'\0', '\n', '\r'}) {
      std::string v = value;
      v[at] = bad;
      const std::string head = start + "X-Long: " + v + "\r\nHost: p\r\n\r\n";
      EXPECT_EQ(scan_head(head, 8192, 100).status, HeadScan::Status::malformed)
          << "byte " << int(bad) << " at offset " << at;
    }
  }
}

TEST(HeadScan, limits_on_bytes_and_field_count_give_too_large) {
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  EXPECT_EQ(scan_head(many, 16 * 1024, 5).status, Status::complete);  // positive control: at the limit
  EXPECT_EQ(scan_head(many, 16 * 1024, 4).status, Status::too_large);
  EXPECT_EQ(scan_head(many, 40, 100).status, Status::too_large);
  // Incomplete but already over the byte limit: no reason to wait for more.
  EXPECT_EQ(scan_head(std::string(100, 'a'), 50, 100).status, Status::too_large);
}

http::request<http::string_body> request_with(std::initializer_list<std::pair<std::string, std::string>> fields,
                                              unsigned version = 11) {
  http::request<http::string_body> r{http::verb::post, "/dmp", version};
  for (auto const& [n, v] : fields) r.insert(n, v);
  return r;
}

TEST(RequestFraming, single_chunked_coding_is_accepted) {
  EXPECT_STREQ(check_request_framing(request_with({{"Host", "p"}, {"Transfer-Encoding", "chunked"}}), 11), "");
  EXPECT_STREQ(check_request_framing(request_with({{"Host", "p"}, {"Transfer-Encoding", "Chunked\t"}}), 11), "");
  EXPECT_STREQ(check_request_framing(request_with({{"Host", "p"}, {"Content-Length", "3"}}), 11), "");
}

TEST(RequestFraming, other_transfer_codings_are_refused) {  // C01 (d)
  EXPECT_STRNE(check_request_framing(request_with({{"Host", "p"}, {"Transfer-Encoding", "identity"}}), 11), "");
  EXPECT_STRNE(check_request_framing(request_with({{"Host", "p"}, {"Transfer-Encoding", "chunked, chunked"}}), 11),
               "");
  EXPECT_STRNE(check_request_framing(request_with({{"Host", "p"}, {"Transfer-Encoding", "gzip, chunked"}}), 11), "");
  EXPECT_STRNE(check_request_framing(
                   request_with({{"Host", "p"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}),
                   11),
               "");
}

TEST(RequestFraming, host_must_be_present_once_on_http11) {
  EXPECT_STRNE(check_request_framing(request_with({}), 11), "");
  EXPECT_STREQ(check_request_framing(request_with({}, 10), 10), "");
  EXPECT_STRNE(check_request_framing(request_with({{"Host", "a"}, {"Host", "b"}}), 11), "");
  EXPECT_STRNE(check_request_framing(request_with({{"Host", " "}}), 11), "");
}

TEST(HopByHop, connection_and_every_field_it_names_are_removed_case_insensitively) {  // C07
  auto r = request_with({{"Host", "p"},
                         {"connection", "CLOSE, X-Debug-Trace"},
                         {"X-Debug-Trace", "1"},
                         {"Keep-Alive", "timeout=99"},
                         {"TE", "trailers"},
                         {"Trailer", "X-T"},
                         {"Transfer-Encoding", "chunked"},
                         {"Proxy-Authorization", "Basic dTpw"},
                         {"Proxy-Connection", "keep-alive"},
                         {"Upgrade", "h2c"},
                         {"X-Orgproxy-Tenant", "312345678200002"},
                         {"SOAPAction", "\"urn:x\""},
                         {"Content-Type", "application/soap+xml"}});
  remove_hop_by_hop(r, "x-orgproxy-tenant");
  std::vector<std::string> left;
  for (auto const& f : r) left.emplace_back(f.name_string());
  EXPECT_EQ(left, (std::vector<std::string>{"Host", "SOAPAction", "Content-Type"}));
}

// The data path's heads live in a HeadArena (head_fields.hpp): the same rules apply to them.
TEST(HopByHop, arena_fields_get_the_same_framing_checks_and_removal) {
  HeadArena arena;
  HeadFields f(arena.allocator());
  f.insert("Host", "p");
  f.insert("Connection", "keep-alive, X-Debug-Trace");
  f.insert("X-Debug-Trace", "1");
  f.insert("Transfer-Encoding", "chunked");
  f.insert("Upgrade", "h2c");
  f.insert("X-Orgproxy-Tenant", "312345678200002");
  f.insert("SOAPAction", "\"urn:x\"");
  EXPECT_STREQ(check_request_framing(f, 11), "");
  remove_hop_by_hop(f, "X-Orgproxy-Tenant");
  std::vector<std::string> left;
  for (auto const& field : f) left.emplace_back(field.name_string());
  EXPECT_EQ(left, (std::vector<std::string>{"Host", "SOAPAction"}));
  f.insert("Host", "q");
  EXPECT_STREQ(check_request_framing(f, 11), "Host repeated");
}

TEST(HopByHop, many_named_fields_are_all_removed) {
  auto r = request_with({{"Connection", "a, b, c, d, e, f, g, h, i, j"}, {"Host", "p"}});
  for (char c = 'a'; c <= 'j'; ++c) r.insert(std::string(1, c), "1");
  remove_hop_by_hop(r);
  std::size_t n = 0;
  for (auto const& f : r) {
    (void)f;
    ++n;
  }
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(r[http::field::host], "p");
}

TEST(HostParsing, names_ipv6_and_ports_parse) {  // C16 (c)
  auto a = parse_host("[::1]");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_FALSE(a->port);
  auto b = parse_host("[::1]:8080");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 8080);
  auto c = parse_host("orgproxy.local:8443");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "orgproxy.local");
  EXPECT_EQ(c->port, 8443);
}

TEST(HostParsing, malformed_hosts_are_refused) {  // C16 (c)
  for (auto bad : {"[::1", "a:b:c", "", "host:", "host:0", "host:65536", "host:8x", "[::1]x", "[zz]", "a b"})
    EXPECT_FALSE(parse_host(bad)) << bad;
}

TEST(Target, plain_paths_and_queries_pass) {
  auto t = check_target("/dmp/registry?x=1&y=%2F");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/dmp/registry");
  EXPECT_EQ(t->query, "x=1&y=%2F");  // the query is carried unchanged, encoded '/' included
  EXPECT_TRUE(check_target("/dmp/a%20b/..x/.y"));
}

TEST(Target, dot_segments_encoded_separators_and_backslash_are_refused) {
  for (auto bad : {"/dmp/../admin", "/dmp/./x", "/dmp/..", "/..", "/dmp/%2e%2e/x", "/dmp%2Fx", "/dmp/%5Cx",
                   "/dmp/%2E", "/dmp\\x", "dmp", "http://a/dmp", "*", "/dmp#f", "/dmp/%zz", "/dmp/%2", "/a b"})
    EXPECT_FALSE(check_target(bad)) << bad;
}

TEST(Target, dot_segments_with_path_parameters_and_empty_segments_are_refused) {
  // Tomcat and other servlet containers drop ";params" before resolving dot-segments: "..;" is "..".
  for (auto bad : {"/dmp/..;/insi", "/dmp/..;x=1/insi", "/dmp/.;/x", "/dmp/..;", "/..;/admin", "/dmp//insi",
                   "//dmp", "/dmp/x//"})
    EXPECT_FALSE(check_target(bad)) << bad;
  // Positive controls: parameters on ordinary segments, dots that are not whole segments, a trailing slash.
  for (auto good : {"/dmp/registry;jsessionid=AB12/x", "/dmp/a;v=1;w=2", "/dmp/..x;p/y", "/dmp/.y;/z", "/dmp/",
                    "/dmp/a;..", "/"})
    EXPECT_TRUE(check_target(good)) << good;
}

TEST(Target, bytes_outside_visible_ascii_are_refused) {  // RFC 9112 §3.2: request-target is VCHAR only
  for (auto bad : {"/dmp/caf\xc3\xa9", "/dmp/\x80", "/dmp/x?q=\xff", "/dmp/\x7f", "/dmp/\x01", "/dmp\tx"})
    EXPECT_FALSE(check_target(bad)) << bad;
  EXPECT_TRUE(check_target("/dmp/caf%C3%A9?q=~!$&'()*+,;=:@"));  // positive control: the same text encoded
}

TEST(Target, site_prefix_is_split_from_the_routed_path) {
  std::string_view rest;
  auto id = split_site_prefix("/sites/312345678200002/dmp/registry", rest);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, "312345678200002");
  EXPECT_EQ(rest, "/dmp/registry");
  id = split_site_prefix("/sites/312345678200002", rest);
  ASSERT_TRUE(id);
  EXPECT_EQ(rest, "/");
  EXPECT_FALSE(split_site_prefix("/sites/", rest));
  EXPECT_FALSE(split_site_prefix("/sitesx/1/dmp", rest));
}

TEST(TargetMapping, rest_of_path_goes_after_the_base_path_with_the_query) {
  TargetParts q{"/dmp/registry", "a=1", true};
  EXPECT_EQ(map_target("/si-dmp-server/v2/services", "/dmp", "/dmp/registry", q),
            "/si-dmp-server/v2/services/registry?a=1");
  TargetParts none{"/dmp", "", false};
  EXPECT_EQ(map_target("/si-dmp-server/v2/services", "/dmp", "/dmp", none), "/si-dmp-server/v2/services");
  EXPECT_EQ(map_target("", "/dmp", "/dmp", none), "/");
  TargetParts empty_q{"/insi", "", true};
  EXPECT_EQ(map_target("/lps", "/insi", "/insi", empty_q), "/lps?");
  EXPECT_EQ(map_target("/base", "/", "/x/y", none), "/base/x/y");
}

TEST(UpstreamAuthority, ipv6_is_bracketed_and_port_443_omitted) {  // C16 (a), (b)
  EXPECT_EQ(upstream_authority("dmp.test.local", 443), "dmp.test.local");
  EXPECT_EQ(upstream_authority("dmp.test.local", 8443), "dmp.test.local:8443");
  EXPECT_EQ(upstream_authority("::1", 8443), "[::1]:8443");
  EXPECT_EQ(upstream_authority("::1", 443), "[::1]");
}

}  // namespace
}  // namespace orgproxy::daemon
