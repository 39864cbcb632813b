// Issue 8, VIHF: the real daemon reads the VIHF of the project's DMP samples (plain, chunked, MTOM), selects
// the site by it, refuses a VIHF naming another site before a byte reaches the upstream (HashUpstream's
// request count), checks the Issuer against the site's vihf-sign certificate, limits a forged VIHF to the
// client's tenants, and writes one audit line per VIHF-bearing request.
#include <gtest/gtest.h>

#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/soap_samples.hpp"
#include "orgproxy/testkit/hash_upstream.hpp"
#include "orgproxy/testkit/http_client.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"
#include "orgproxy/testkit/site_world.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace tk = orgproxy::testkit;

namespace {

constexpr const char* kSoap = "application/soap+xml; charset=UTF-8";
constexpr const char* kA = "312345678200002";
constexpr const char* kB = "498765432103017";

std::string with_issuer(std::string xml, const std::string& dn) {
  const auto open = xml.find("<saml:Issuer");
  const auto start = xml.find('>', open) + 1;
  const auto end = xml.find("</saml:Issuer>", start);
  xml.replace(start, end - start, dn);
  return xml;
}

class ServicesVihf : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = std::make_unique<tk::SiteWorld>(tmp_.subdir("world"), tk::three_test_sites());
    const auto& server = world_->upstream_server_cert();
    const auto ca = world_->pki().ca_bundle_pem().string();
    dmp_ = std::make_unique<tk::HashUpstream>(tk::hash_upstream_options(server.chain.string(), server.key.string(), ca));
    config_ = world_->base_config();
    config_.upstreams.push_back(tk::make_upstream("dmp", dmp_->url("/si-dmp-server/v2/services"), ca, "dmp"));
    config_.routes = {{"/dmp", "dmp"}};
    config_.selectors = {"header", "vihf"};
  }
  void start() {
    daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config_, world_->daemon_start());
  }
  tk::HttpResponse post(const std::string& body, std::vector<std::pair<std::string, std::string>> headers,
                        const std::string& type = kSoap) {
    tk::HttpClient client("127.0.0.1", daemon_->port());
    headers.emplace_back("Content-Type", type);
    return client.request({"POST", "/dmp/repository", std::move(headers), body});
  }

  tk::TempDir tmp_{"services-vihf"};
  std::unique_ptr<tk::SiteWorld> world_;
  std::unique_ptr<tk::HashUpstream> dmp_;
  tk::OrgproxyConfig config_;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
};

}  // namespace

TEST_F(ServicesVihf, vihf_alone_selects_the_site_and_the_body_arrives_byte_for_byte) {
  start();
  for (const char* id : {kA, kB}) {
    const std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", id);
    auto r = post(xml, {});
    ASSERT_EQ(r.status, 200) << id << "\n" << daemon_->log();
    EXPECT_EQ(r.header("X-Client-DN"), world_->site(id).identity("dmp").subject_dn);
    EXPECT_EQ(r.header("X-Body-Sha256"), tk::sha256_hex(xml));

    const std::string mtom = tk::load_sample("dmp-iti41-provide-and-register.mtom", id);
    auto m = post(mtom, {}, tk::kIti41MtomContentType);
    ASSERT_EQ(m.status, 200) << id << "\n" << daemon_->log();
    EXPECT_EQ(m.header("X-Client-DN"), world_->site(id).identity("dmp").subject_dn);
    EXPECT_EQ(m.header("X-Body-Sha256"), tk::sha256_hex(mtom));

    // Chunked (the client library frames it): de-chunked for reading, forwarded intact.
    auto c = post(xml, {{"Transfer-Encoding", "chunked"}});
    ASSERT_EQ(c.status, 200) << id << "\n" << daemon_->log();
    EXPECT_EQ(c.header("X-Body-Sha256"), tk::sha256_hex(xml));
    EXPECT_EQ(c.header("X-Client-DN"), world_->site(id).identity("dmp").subject_dn);
  }
  EXPECT_EQ(dmp_->requests(), 6u);
}

TEST_F(ServicesVihf, vihf_naming_another_site_is_refused_and_nothing_is_forwarded) {
  config_.selectors = {"header"};  // vihf_check (the default) compares the VIHF with the header's site
  start();
  const std::string xml_b = tk::load_sample("dmp-iti41-provide-and-register.xml", kB);
  const std::string mtom_b = tk::load_sample("dmp-iti41-provide-and-register.mtom", kB);
  for (const auto& [body, type] :
       {std::pair{xml_b, std::string(kSoap)}, std::pair{mtom_b, std::string(tk::kIti41MtomContentType)}}) {
    auto r = post(body, {{"X-Orgproxy-Tenant", kA}}, type);
    EXPECT_EQ(r.status, 403) << daemon_->log();
    EXPECT_EQ(r.header("X-Orgproxy-Error"), "vihf_mismatch");
    EXPECT_NE(r.body.find("vihf_mismatch"), std::string::npos) << r.body;  // a SOAP 1.2 fault naming the code
  }
  EXPECT_EQ(dmp_->requests(), 0u) << "a refused VIHF reached the upstream";
  EXPECT_EQ(dmp_->connections(), 0u);

  // Positive control: the same requests under the site they name go through.
  auto ok = post(xml_b, {{"X-Orgproxy-Tenant", kB}});
  ASSERT_EQ(ok.status, 200) << daemon_->log();
  auto ok_mtom = post(mtom_b, {{"X-Orgproxy-Tenant", kB}}, tk::kIti41MtomContentType);
  ASSERT_EQ(ok_mtom.status, 200) << daemon_->log();
  EXPECT_EQ(ok_mtom.header("X-Body-Sha256"), tk::sha256_hex(mtom_b));
  EXPECT_EQ(dmp_->requests(), 2u);

  // The audit trail: one line per VIHF-bearing request, naming site, user, mode and outcome.
  ASSERT_TRUE(daemon_->wait_for_log("\"outcome\":\"forwarded\""));
  const std::string log = daemon_->log();
  EXPECT_NE(log.find(std::string("\"site\":\"") + kA + "\",\"vihf_structure\":\"" + kB +
                     "\",\"vihf_user\":\"899700270616\",\"vihf_mode\":\"INDIRECTE\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("\"status\":403,\"outcome\":\"vihf_mismatch\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"status\":200,\"outcome\":\"forwarded\""), std::string::npos) << log;
}

TEST_F(ServicesVihf, malformed_envelope_or_dtd_is_a_bad_request_when_the_vihf_selects) {
  start();
  std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kA);
  std::string dtd = xml;
  dtd.insert(dtd.find("<soap:Envelope"), "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n");
  auto r = post(dtd, {});
  EXPECT_EQ(r.status, 400) << daemon_->log();
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "bad_request");
  std::string broken = xml;
  broken.replace(broken.find("</wsa:MessageID>"), 16, "</wsa:MessageXX>");
  EXPECT_EQ(post(broken, {}).status, 400);
  EXPECT_EQ(dmp_->requests(), 0u);
  EXPECT_EQ(post(xml, {}).status, 200) << daemon_->log();  // positive control
}

TEST_F(ServicesVihf, soap_header_beyond_vihf_max_bytes_is_refused_413) {
  start();
  // A header padded past the default 64 KiB before the assertion.
  std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kA);
  xml.insert(xml.find("<wsse:Security"), "<wsa:Padding xmlns:wsa=\"urn:x\">" + std::string(70 * 1024, 'p') + "</wsa:Padding>");
  auto r = post(xml, {});
  EXPECT_EQ(r.status, 413) << daemon_->log();
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "request_too_large");
  EXPECT_EQ(dmp_->requests(), 0u);
}

TEST_F(ServicesVihf, forged_vihf_reaches_only_the_tenants_of_its_client) {
  config_.extra_yaml = "clients:\n"
                       "  - { name: ris-a, bearer_sha256: \"" + tk::sha256_hex("token-a") + "\", tenants: [\"" + kA + "\"] }\n"
                       "  - { name: ris-all, bearer_sha256: \"" + tk::sha256_hex("token-all") + "\", tenants: \"*\" }\n";
  start();
  const std::string forged = tk::load_sample("dmp-iti41-provide-and-register.xml", kB);
  auto r = post(forged, {{"Authorization", "Bearer token-a"}});
  EXPECT_EQ(r.status, 403) << daemon_->log();
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "client_not_allowed");
  EXPECT_EQ(dmp_->requests(), 0u);
  // Positive controls: ris-a as its own site, and a client allowed every site.
  EXPECT_EQ(post(tk::load_sample("dmp-iti41-provide-and-register.xml", kA), {{"Authorization", "Bearer token-a"}}).status,
            200)
      << daemon_->log();
  auto all = post(forged, {{"Authorization", "Bearer token-all"}});
  EXPECT_EQ(all.status, 200) << daemon_->log();
  EXPECT_EQ(all.header("X-Client-DN"), world_->site(kB).identity("dmp").subject_dn);
  EXPECT_EQ(dmp_->requests(), 2u);
}

TEST_F(ServicesVihf, issuer_must_be_the_subject_of_the_sites_vihf_sign_certificate) {
  // Site A's ORG SIGN identity (the dmp certificate stands in for it: same subject shape, same token).
  for (auto& t : config_.tenants) {
    if (t.id != kA) continue;
    const auto& dmp = world_->site(kA).identity("dmp");
    t.identities.push_back({"vihf-sign", dmp.cert_file, dmp.key_uri});
  }
  start();
  const std::string sample = tk::load_sample("dmp-iti41-provide-and-register.xml", kA);
  // The sample's Issuer is another DN than the certificate's: refused.
  auto bad = post(sample, {});
  EXPECT_EQ(bad.status, 403) << daemon_->log();
  EXPECT_EQ(bad.header("X-Orgproxy-Error"), "vihf_mismatch");
  EXPECT_EQ(dmp_->requests(), 0u);
  // The certificate's own subject (as RFC 4514 text) is accepted.
  auto good = post(with_issuer(sample, world_->site(kA).identity("dmp").subject_dn), {});
  EXPECT_EQ(good.status, 200) << daemon_->log();
  EXPECT_EQ(dmp_->requests(), 1u);
  ASSERT_TRUE(daemon_->wait_for_log("\"issuer_check\":\"match\""));
  // A site without a vihf-sign identity is not Issuer-checked.
  EXPECT_EQ(post(tk::load_sample("dmp-iti41-provide-and-register.xml", kB), {}).status, 200) << daemon_->log();
}

TEST_F(ServicesVihf, expect_100_continue_soap_request_is_checked_before_anything_is_forwarded) {
  config_.selectors = {"header"};
  start();
  // orgproxy answers 100 itself (it needs the SOAP header to decide) and forwards without the expectation.
  for (const char* tenant : {kA, kB}) {
    const std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kB);
    tk::HttpClient client("127.0.0.1", daemon_->port());
    client.send_raw(std::string("POST /dmp/repository HTTP/1.1\r\nHost: orgproxy.test\r\nX-Orgproxy-Tenant: ") +
                    tenant + "\r\nContent-Type: " + kSoap + "\r\nContent-Length: " + std::to_string(xml.size()) +
                    "\r\nExpect: 100-continue\r\n\r\n");
    auto interim = client.read_response();
    ASSERT_EQ(interim.status, 100) << daemon_->log();
    client.send_raw(xml);
    auto r = client.read_response();
    if (std::string(tenant) == kA) {
      EXPECT_EQ(r.status, 403) << daemon_->log();
      EXPECT_EQ(r.header("X-Orgproxy-Error"), "vihf_mismatch");
      EXPECT_EQ(dmp_->requests(), 0u);
    } else {
      EXPECT_EQ(r.status, 200) << daemon_->log();
      EXPECT_EQ(r.header("X-Body-Sha256"), tk::sha256_hex(xml));
      EXPECT_EQ(dmp_->requests(), 1u);
    }
  }
}
