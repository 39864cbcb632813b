// Issue 8, identities per service and SOAP faults: a site lacking the upstream's purpose is refused 403
// identity_missing naming the purpose, in a SOAP 1.2 fault that a real SOAP client library (zeep) parses;
// an INSi identity whose CN is not INSI-AUTO is unavailable from load on (the INSi would answer DESIR_560).
#include <gtest/gtest.h>

#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/files.hpp"
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
// Debian's python3-zeep installs for the system interpreter (a pyenv shim earlier in PATH lacks it).
constexpr const char* kPython = "/usr/bin/python3";

std::string script() { return std::string(ORGPROXY_SOURCE_DIR) + "/tests/integration/data/soap12_fault_zeep.py"; }

class ServicesIdentity : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = std::make_unique<tk::SiteWorld>(tmp_.subdir("world"), tk::three_test_sites());
    const auto& server = world_->upstream_server_cert();
    ca_ = world_->pki().ca_bundle_pem().string();
    insi_ = std::make_unique<tk::HashUpstream>(tk::hash_upstream_options(server.chain.string(), server.key.string(), ca_));
    config_ = world_->base_config();
  }
  tk::HttpResponse post_insi(const std::string& tenant) {
    tk::HttpClient client("127.0.0.1", daemon_->port());
    return client.request({"POST", "/insi",
                           {{"X-Orgproxy-Tenant", tenant}, {"Content-Type", kSoap}},
                           tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", tenant)});
  }
  // zeep's reading of a fault body: "code=...\nreason=...\ndetail=...".
  std::string zeep_reads(const std::string& body) {
    const auto file = tmp_.subdir("fault") / "body.xml";
    tk::write_file(file.string(), body);
    tk::CommandResult r = tk::run_command({kPython, script(), file.string()});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }

  tk::TempDir tmp_{"services-identity"};
  std::unique_ptr<tk::SiteWorld> world_;
  std::unique_ptr<tk::HashUpstream> insi_;
  std::string ca_;
  tk::OrgproxyConfig config_;
  std::unique_ptr<tk::OrgproxyProcess> daemon_;
};

}  // namespace

TEST_F(ServicesIdentity, site_without_the_upstreams_purpose_gets_identity_missing_as_a_soap_fault_zeep_reads) {
  config_.upstreams.push_back(tk::make_upstream("insi", insi_->url("/lps"), ca_, "insi-manu"));
  config_.upstreams.push_back(tk::make_upstream("insi-auto", insi_->url("/lps"), ca_, "insi-auto"));
  config_.routes = {{"/insi", "insi"}, {"/insi-auto", "insi-auto"}};
  daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config_, world_->daemon_start());

  auto r = post_insi(kA);
  EXPECT_EQ(r.status, 403) << daemon_->log();
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "identity_missing");
  const std::string parsed = zeep_reads(r.body);
  EXPECT_NE(parsed.find("code=env:Sender"), std::string::npos) << parsed;  // the QName as written
  EXPECT_NE(parsed.find("insi-manu"), std::string::npos) << "the purpose is named: " << parsed;
  EXPECT_NE(parsed.find("detail=error:identity_missing"), std::string::npos) << parsed;
  EXPECT_EQ(insi_->requests(), 0u);

  // Positive control: the purpose the sites have goes through, as site A's INSi certificate.
  tk::HttpClient client("127.0.0.1", daemon_->port());
  auto ok = client.request({"POST", "/insi-auto", {{"X-Orgproxy-Tenant", kA}, {"Content-Type", kSoap}},
                            tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", kA)});
  EXPECT_EQ(ok.status, 200) << daemon_->log();
  EXPECT_EQ(ok.header("X-Client-DN"), world_->site(kA).identity("insi-auto").subject_dn);
}

TEST_F(ServicesIdentity, insi_identity_whose_cn_is_not_insi_auto_is_unavailable_from_load_on) {
  // Site B's insi-auto identity points at its DMP certificate (CN = the site's name, not INSI-AUTO).
  for (auto& t : config_.tenants) {
    if (t.id != kB) continue;
    for (auto& id : t.identities)
      if (id.purpose == "insi-auto") {
        id.cert_file = world_->site(kB).identity("dmp").cert_file;
        id.key = world_->site(kB).identity("dmp").key_uri;
      }
  }
  config_.upstreams.push_back(tk::make_upstream("insi", insi_->url("/lps"), ca_, "insi-auto"));
  config_.routes = {{"/insi", "insi"}};
  daemon_ = std::make_unique<tk::OrgproxyProcess>(tmp_.subdir("daemon"), config_, world_->daemon_start());

  EXPECT_TRUE(daemon_->wait_for_log("needs CN exactly 'INSI-AUTO'")) << daemon_->log();
  auto r = post_insi(kB);
  EXPECT_EQ(r.status, 503) << daemon_->log();
  EXPECT_EQ(r.header("X-Orgproxy-Error"), "identity_unavailable");
  const std::string parsed = zeep_reads(r.body);
  EXPECT_NE(parsed.find("code=env:Receiver"), std::string::npos) << parsed;
  EXPECT_EQ(insi_->requests(), 0u) << "a certificate the INSi refuses (DESIR_560) must not be presented";
  // Positive control: site A, with a proper INSI-AUTO certificate, goes through.
  auto ok = post_insi(kA);
  EXPECT_EQ(ok.status, 200) << daemon_->log();
  EXPECT_EQ(insi_->requests(), 1u);
}
