// Field case C08: header names keep their case, values stay byte-identical (SOAPAction, MIME-Version, the
// MTOM multipart/related and SOAP 1.2 Content-Type parameters), end-to-end headers keep their relative order,
// and the only differences at the upstream are the documented removals (selector and hop-by-hop headers) and
// the Host rewrite. Real daemon, keys in SoftHSM, the purpose-built HashUpstream recording what it received.
#include <string>
#include <utility>
#include <vector>

#include "daemon_world.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"

namespace orgproxy::daemon_it {
namespace {

const std::string kA(tk::kSiteA);
using Headers = std::vector<std::pair<std::string, std::string>>;

// The end-to-end headers of a request as the RIS sends them, in order; Host, the tenant selector and
// Content-Length are added around them.
std::string raw_request(const Headers& end_to_end, const std::string& body) {
  std::string raw = "POST /dmp/registry HTTP/1.1\r\nHost: p\r\n";
  for (const auto& [n, v] : end_to_end) raw += n + ": " + v + "\r\n";
  raw += "X-Orgproxy-Tenant: " + kA + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  return raw + body;
}

// The upstream's headers minus those orgproxy documents as its own (Host rewritten, Content-Length kept,
// X-Request-Id added when absent).
Headers end_to_end_seen(const tk::SeenRequest& seen) {
  Headers out;
  for (const auto& [n, v] : seen.headers)
    if (n != "Host" && n != "Content-Length" && n != "X-Request-Id") out.emplace_back(n, v);
  return out;
}

class DaemonByteExactHeaders : public DaemonWorld {};

TEST_F(DaemonByteExactHeaders, mtom_and_soap12_headers_reach_the_upstream_byte_exact_in_their_order) {
  auto a = make_identity(kA, "dmp", kA, "Cabinet A");
  tk::HashUpstream up(hash_options());
  auto cfg = base_config(up.url("/si-dmp-server/v2/services"));
  add_tenant(cfg, kA, {{"dmp", a}});
  tk::OrgproxyProcess proxy(tmp_.subdir("proxy"), cfg);

  // A MIME body whose attachment holds CRLFCRLF, boundary look-alikes and NUL bytes.
  std::string body = "--uuid:0f1e2d3c-aaaa-bbbb-cccc-000000000001\r\nContent-Type: application/xop+xml\r\n\r\n<e/>\r\n";
  for (int i = 0; i < 4096; ++i) body += static_cast<char>(i % 7 == 0 ? '\0' : i % 251);
  body += "\r\n\r\n--uuid:0f1e2d3c-aaaa-bbbb-cccc-00000000000\r\n--uuid:0f1e2d3c-aaaa-bbbb-cccc-000000000001--\r\n";

  const std::vector<Headers> requests = {
      {{"SOAPAction", "\"urn:ihe:iti:2007:RegisterDocumentSet-b\""},
       {"MIME-Version", "1.0"},
       {"Content-Type",
        "multipart/related; type=\"application/xop+xml\"; start=\"<root.part@ris.local>\"; "
        "start-info=\"application/soap+xml\"; boundary=\"uuid:0f1e2d3c-aaaa-bbbb-cccc-000000000001\""},
       {"x-ris-Trace", "AbC"}},
      {{"Content-Type",
        "application/soap+xml; charset=UTF-8; action=\"urn:ihe:iti:2007:RegisterDocumentSet-b\""},
       {"X-RIS-Station", "salle 2"},
       {"Accept", "application/soap+xml, multipart/related"}},
  };
  tk::HttpClient client("127.0.0.1", proxy.port());
  for (const auto& headers : requests) {
    client.send_raw(raw_request(headers, body));
    auto r = client.read_response();
    ASSERT_EQ(r.status, 200) << r.body << proxy.log();
    EXPECT_EQ(r.header("X-Body-Sha256"), tk::sha256_hex(body));
  }

  auto seen = up.seen();
  ASSERT_EQ(seen.size(), requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    // Positive control that the comparison sees real headers: the selector header is gone, the rest equal.
    EXPECT_EQ(end_to_end_seen(seen[i]), requests[i]) << "request " << i;
    for (const auto& [n, v] : seen[i].headers) EXPECT_NE(n, "X-Orgproxy-Tenant");
  }
}

}  // namespace
}  // namespace orgproxy::daemon_it
