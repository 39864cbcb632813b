// Main slice, bodies: the DMP (ITI-41) and INSi samples reach the upstream byte for byte, whether the RIS
// frames them with Content-Length or chunked, and the selection header never leaves orgproxy.
#include <gtest/gtest.h>

#include "orgproxy/testkit/curl.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;

namespace {

constexpr const char* kSoap = "application/soap+xml; charset=UTF-8";

// Chunked framing of `body` in pieces of `piece` bytes (RFC 9112 §7.1), with a chunk extension on the first.
std::string chunked(const std::string& body, std::size_t piece) {
  std::string out;
  char size[32];
  for (std::size_t at = 0; at < body.size(); at += piece) {
    const auto n = std::min(piece, body.size() - at);
    std::snprintf(size, sizeof size, "%zx", n);
    out += size;
    out += at == 0 ? ";ext=1\r\n" : "\r\n";
    out += body.substr(at, n) + "\r\n";
  }
  return out + "0\r\n\r\n";
}

class MainSliceBody : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = std::make_unique<tk::SiteWorld>(tmp_.subdir("world"), tk::three_test_sites());
    const auto& server = world_->upstream_server_cert();
    const auto ca = world_->pki().ca_bundle_pem().string();
    dmp_ =
        std::make_unique<tk::HashUpstream>(tk::hash_upstream_options(server.chain.string(), server.key.string(), ca));
    insi_ =
        std::make_unique<tk::HashUpstream>(tk::hash_upstream_options(server.chain.string(), server.key.string(), ca));
    auto config = world_->base_config();
    config.upstreams.push_back(tk::make_upstream("dmp", dmp_->url("/si-dmp-server/v2/services"), ca, "dmp"));
    config.upstreams.push_back(tk::make_upstream("insi", insi_->url("/lps"), ca, "insi-auto"));
    config.routes = {{"/dmp", "dmp"}, {"/insi", "insi"}};
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config, world_->daemon_start());
  }

  tk::TempDir tmp_{"main-slice-body"};
  std::unique_ptr<tk::SiteWorld> world_;
  std::unique_ptr<tk::HashUpstream> dmp_, insi_;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
};

}  // namespace

TEST_F(MainSliceBody, dmp_and_insi_samples_arrive_byte_for_byte_with_content_length) {
  tk::HttpClient client("127.0.0.1", daemon_->port());
  for (const auto& site : world_->sites()) {
    const auto& id = site.spec.id;
    const std::string dmp_sample = tk::load_sample("dmp-iti41-provide-and-register.xml", id);
    ASSERT_EQ(dmp_sample.find("@@STRUCTURE_ID@@"), std::string::npos);
    auto dmp =
        client.request({"POST", "/dmp/repository", {{"X-Orgproxy-Tenant", id}, {"Content-Type", kSoap}}, dmp_sample});
    ASSERT_EQ(dmp.status, 200) << id << "\n" << daemon_->log();
    EXPECT_EQ(dmp.header("X-Body-Sha256"), tk::sha256_hex(dmp_sample)) << id;
    EXPECT_EQ(dmp.header("X-Body-Length"), std::to_string(dmp_sample.size())) << id;
    EXPECT_EQ(dmp.header("X-Seen-Path"), "/si-dmp-server/v2/services/repository");
    EXPECT_EQ(dmp.header("X-Client-DN"), site.identity("dmp").subject_dn);
    EXPECT_EQ(dmp.header("X-Seen-Headers").find("x-orgproxy-tenant"), std::string::npos)
        << "the selection header was forwarded: " << dmp.header("X-Seen-Headers");

    const std::string insi_sample = tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", id);
    auto insi = client.request({"POST", "/insi", {{"X-Orgproxy-Tenant", id}, {"Content-Type", kSoap}}, insi_sample});
    ASSERT_EQ(insi.status, 200) << id << "\n" << daemon_->log();
    EXPECT_EQ(insi.header("X-Body-Sha256"), tk::sha256_hex(insi_sample)) << id;
    EXPECT_EQ(insi.header("X-Seen-Path"), "/lps");
    EXPECT_EQ(insi.header("X-Client-DN"), site.identity("insi-auto").subject_dn);
  }
  // The samples differ per site (the structure id is in them), so equal hashes above are not a coincidence.
  EXPECT_NE(tk::sha256_hex(tk::load_sample("dmp-iti41-provide-and-register.xml", world_->sites()[0].spec.id)),
            tk::sha256_hex(tk::load_sample("dmp-iti41-provide-and-register.xml", world_->sites()[1].spec.id)));
  EXPECT_EQ(dmp_->requests(), 3u);
  EXPECT_EQ(insi_->requests(), 3u);
}

TEST_F(MainSliceBody, chunked_dmp_sample_is_dechunked_to_the_same_bytes) {
  const auto& site = world_->sites()[1];
  const std::string sample = tk::load_sample("dmp-iti41-provide-and-register.xml", site.spec.id);
  tk::HttpClient client("127.0.0.1", daemon_->port());
  client.send_raw("POST /dmp/repository HTTP/1.1\r\nHost: orgproxy.test\r\nX-Orgproxy-Tenant: " + site.spec.id +
                  "\r\nContent-Type: " + kSoap + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(sample, 1000));
  auto response = client.read_response();
  ASSERT_EQ(response.status, 200) << daemon_->log();
  EXPECT_EQ(response.header("X-Body-Sha256"), tk::sha256_hex(sample));
  EXPECT_EQ(response.header("X-Body-Length"), std::to_string(sample.size()));
  EXPECT_EQ(response.header("X-Client-DN"), site.identity("dmp").subject_dn);
  // The same connection goes on serving (keep-alive after a chunked request).
  auto again = client.request({"POST", "/dmp/repository", {{"X-Orgproxy-Tenant", site.spec.id}}, sample});
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.header("X-Body-Sha256"), tk::sha256_hex(sample));
}

TEST_F(MainSliceBody, mtom_dmp_sample_arrives_byte_for_byte_with_its_content_type_intact) {
  const auto& site = world_->sites()[0];
  const std::string sample = tk::load_sample("dmp-iti41-provide-and-register.mtom", site.spec.id);
  ASSERT_NE(sample.find(std::string(16, '\0')), std::string::npos) << "the binary sample lost its NUL bytes";
  const std::string content_type =
      "multipart/related; type=\"application/xop+xml\"; start=\"<root.part@ris.local>\"; "
      "start-info=\"application/soap+xml\"; boundary=\"uuid:0f1e2d3c-aaaa-bbbb-cccc-000000000001\"";
  auto response = tk::http_request(
      daemon_->port(),
      {"POST", "/dmp/repository", {{"X-Orgproxy-Tenant", site.spec.id}, {"Content-Type", content_type}}, sample});
  ASSERT_EQ(response.status, 200) << daemon_->log();
  EXPECT_EQ(response.header("X-Body-Sha256"), tk::sha256_hex(sample));
  auto seen = dmp_->seen();
  ASSERT_EQ(seen.size(), 1u);
  std::string forwarded_type;
  for (const auto& [name, value] : seen[0].headers)
    if (name == "Content-Type") forwarded_type = value;
  EXPECT_EQ(forwarded_type, content_type) << "Content-Type must reach the upstream byte-identical";
}

TEST_F(MainSliceBody, insi_sample_chunked_by_curl_arrives_byte_for_byte) {
  const auto& site = world_->sites()[2];
  const auto file = tmp_.file("insi-chunked.xml");
  tk::write_file(file, tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", site.spec.id));
  auto r = tk::run_curl(tmp_.path(),
                        {"-H", "X-Orgproxy-Tenant: " + site.spec.id, "-H", std::string("Content-Type: ") + kSoap, "-H",
                         "Transfer-Encoding: chunked", "--data-binary", "@" + file,
                         "http://127.0.0.1:" + std::to_string(daemon_->port()) + "/insi"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.response.status, 200) << daemon_->log();
  EXPECT_EQ(r.response.header("X-Body-Sha256"), tk::sha256_hex(tk::read_file(file)));
  EXPECT_EQ(r.response.header("X-Client-DN"), site.identity("insi-auto").subject_dn);
}
