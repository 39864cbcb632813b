// `orgproxy keys ...` driven through the real binary against a SoftHSM token: generate → CSR → install-cert →
// check → list → delete, PKCS#12 import, and the refusal path of each command.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "keystore_world.hpp"
#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/orgproxy_process.hpp"

namespace orgproxy::keystore::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

struct CliWorld {
  KeystoreWorld world;
  fs::path config_file = world.tmp / "orgproxy.yaml";

  /// Writes the configuration: tenants A and B, one dmp upstream trusting `ca_file` (default: the test PKI).
  void write_config(const std::vector<testkit::ConfigIdentity>& identities_a = {}, std::string ca_file = {}) {
    testkit::OrgproxyConfig c;
    c.pin_file = world.token.pin_file().string();
    c.port = 18080;
    c.upstreams.push_back({"dmp", "https://127.0.0.1:18443/dmp", ca_file.empty() ? world.pki.ca_bundle_pem().string() : ca_file});
    c.upstreams.back().purpose = "dmp";
    c.routes.push_back({"/dmp", "dmp"});
    c.tenants.push_back({kTenantA, "CABINET DE RADIOLOGIE DU PARC", "", "75", identities_a});
    c.tenants.push_back({kTenantB, "DR MARTIN RADIOLOGUE", "", "69", {}});
    std::ofstream(config_file, std::ios::trunc) << c.yaml();
  }

  testkit::CommandResult keys(std::vector<std::string> args, const std::string& stdin_text = {}) {
    std::vector<std::string> argv{ORGPROXY_BINARY, "keys", "--config", config_file.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    testkit::EnvVars env{{"SOFTHSM2_CONF", world.token.conf_path().string()}};
    if (stdin_text.empty()) return testkit::run_command(argv, env, std::chrono::seconds(120));
    // Confirmation answers go through a shell pipe (run_command has no stdin).
    std::string line = "printf '%s\\n' '" + stdin_text + "' |";
    for (const auto& a : argv) line += " '" + a + "'";
    return testkit::run_command({"/bin/sh", "-c", line}, env, std::chrono::seconds(120));
  }
};

X509_REQ* read_csr(const fs::path& file) {
  BIO* bio = BIO_new_file(file.c_str(), "r");
  X509_REQ* req = bio ? PEM_read_bio_X509_REQ(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  return req;
}

std::string name_entry(X509_NAME* name, int nid) {
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "<none>";
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
}

std::string uri_from_output(const std::string& output) {
  auto at = output.find("pkcs11:");
  if (at == std::string::npos) return {};
  return output.substr(at, output.find('\n', at) - at);
}

TEST(KeysCli, generate_csr_install_cert_check_list_and_delete_round_trip) {
  CliWorld w;
  w.write_config();
  auto gen = w.keys({"generate", "--tenant", kTenantA, "--purpose", "dmp", "--out", (w.world.tmp / "a.csr").string()});
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  const std::string uri = uri_from_output(gen.output);
  EXPECT_EQ(uri, std::string("pkcs11:token=orgproxy;object=") + kTenantA + "-dmp;type=private");

  // The CSR: ORG subject, signed by the token (verifies with its own public key, which the load below proves
  // to be the token key's).
  X509_REQ* req = read_csr(w.world.tmp / "a.csr");
  ASSERT_NE(req, nullptr);
  EVP_PKEY* csr_key = X509_REQ_get0_pubkey(req);
  EXPECT_EQ(X509_REQ_verify(req, csr_key), 1) << ERR_reason_error_string(ERR_peek_error());
  EXPECT_EQ(EVP_PKEY_get_bits(csr_key), 2048);
  X509_NAME* subject = X509_REQ_get_subject_name(req);
  EXPECT_EQ(name_entry(subject, NID_countryName), "FR");
  EXPECT_EQ(name_entry(subject, NID_stateOrProvinceName), "75");
  EXPECT_EQ(name_entry(subject, NID_organizationName), "CABINET DE RADIOLOGIE DU PARC");
  EXPECT_EQ(name_entry(subject, NID_organizationalUnitName), kTenantA);
  EXPECT_EQ(name_entry(subject, NID_commonName), "CABINET DE RADIOLOGIE DU PARC");

  // install-cert refuses a certificate for another key (and one with another OU), accepts the issued one.
  testkit::OrgCertOptions opts;
  opts.subject = {"75", "CABINET DE RADIOLOGIE DU PARC", kTenantA, "CABINET DE RADIOLOGIE DU PARC"};
  opts.file_stem = "stranger";
  auto stranger = w.world.pki.issue_org_cert_with_key(opts);
  auto refused = w.keys({"install-cert", "--tenant", kTenantA, "--purpose", "dmp", stranger.chain.string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("matches none"));
  opts.file_stem = "issued";
  const fs::path issued = w.world.pki.issue_org_cert(csr_key, opts);
  opts.subject.structure_id = kTenantB;
  opts.file_stem = "wrong-ou";
  const fs::path wrong_ou = w.world.pki.issue_org_cert(csr_key, opts);
  auto refused_ou = w.keys({"install-cert", "--tenant", kTenantA, "--purpose", "dmp", wrong_ou.string()});
  EXPECT_EQ(refused_ou.exit_code, 1);
  EXPECT_THAT(refused_ou.output, HasSubstr("OU"));
  auto installed = w.keys({"install-cert", "--tenant", kTenantA, "--purpose", "dmp", issued.string()});
  ASSERT_EQ(installed.exit_code, 0) << installed.output;
  X509_REQ_free(req);

  // check: all good with the configured identity; wrong when the upstream trusts another PKI.
  w.write_config({{"dmp", issued.string(), uri}});
  auto check = w.keys({"check", "--json"});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  auto json = nlohmann::json::parse(check.output.substr(check.output.find('{')));
  EXPECT_TRUE(json["ok"].get<bool>());
  EXPECT_GT(json["identities"][0]["days_to_expiry"].get<long>(), 300);
  auto rogue = testkit::TestPki::rogue(w.world.tmp / "rogue");
  w.write_config({{"dmp", issued.string(), uri}}, rogue.ca_bundle_pem().string());
  auto bad = w.keys({"check"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("chain does not verify"));
  w.write_config({{"dmp", issued.string(), uri}});

  // list: the key, its flags, its user per the configuration.
  auto list = w.keys({"list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  auto objects = nlohmann::json::parse(list.output.substr(list.output.find('[')));
  int private_keys = 0, certificates = 0;
  for (auto const& o : objects) {
    if (o["label"] != std::string(kTenantA) + "-dmp") continue;
    if (o["class"] == "private-key") {
      ++private_keys;
      EXPECT_TRUE(o["sensitive"].get<bool>());
      EXPECT_FALSE(o["extractable"].get<bool>());
      EXPECT_EQ(o["key_type"], "RSA-2048");
      EXPECT_EQ(o["used_by"], std::string(kTenantA) + "/dmp");
    }
    if (o["class"] == "certificate") ++certificates;
  }
  EXPECT_EQ(private_keys, 1);
  EXPECT_EQ(certificates, 1);

  // delete: not confirmed → nothing removed; --yes → gone (private, public, certificate).
  auto kept = w.keys({"delete", "--tenant", kTenantA, "--purpose", "dmp"}, "no");
  EXPECT_EQ(kept.exit_code, 1);
  EXPECT_THAT(kept.output, HasSubstr("nothing deleted"));
  EXPECT_THAT(w.keys({"list"}).output, HasSubstr(std::string(kTenantA) + "-dmp"));
  auto removed = w.keys({"delete", "--tenant", kTenantA, "--purpose", "dmp", "--yes"});
  EXPECT_EQ(removed.exit_code, 0) << removed.output;
  EXPECT_THAT(removed.output, HasSubstr("3 objects destroyed"));
  EXPECT_THAT(w.keys({"list"}).output, Not(HasSubstr(std::string(kTenantA) + "-dmp")));
  EXPECT_EQ(w.keys({"check"}).exit_code, 1) << "the configured key is gone";
}

TEST(KeysCli, insi_purpose_csr_has_the_insi_cn_and_a_second_generate_makes_a_renewal_key) {
  CliWorld w;
  w.write_config();
  auto first = w.keys({"generate", "--tenant", kTenantB, "--purpose", "insi-auto", "--out", (w.world.tmp / "1.csr").string()});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  X509_REQ* req = read_csr(w.world.tmp / "1.csr");
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
  EXPECT_EQ(name_entry(X509_REQ_get_subject_name(req), NID_commonName), "INSI-AUTO");
  EXPECT_EQ(name_entry(X509_REQ_get_subject_name(req), NID_stateOrProvinceName), "69");
  X509_REQ_free(req);
  auto second = w.keys({"generate", "--tenant", kTenantB, "--purpose", "insi-auto", "--out", (w.world.tmp / "2.csr").string()});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(uri_from_output(second.output), HasSubstr(std::string(kTenantB) + "-insi-auto-2"));
  // Refusals: a tenant not in the configuration, an unknown purpose.
  auto unknown = w.keys({"generate", "--tenant", "312345678200010", "--purpose", "dmp"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("not in the configuration"));
  auto bad_purpose = w.keys({"generate", "--tenant", kTenantB, "--purpose", "ftp"});
  EXPECT_EQ(bad_purpose.exit_code, 1);
  EXPECT_THAT(bad_purpose.output, HasSubstr("unknown purpose"));
}

fs::path write_p12(const fs::path& dir, const testkit::IssuedFiles& files, const std::string& password) {
  auto cert = testkit::read_pem_certificate(files.chain);
  BIO* kb = BIO_new_file(files.key.c_str(), "r");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(kb);
  PKCS12* p12 = PKCS12_create(password.c_str(), "site", key, cert.get(), nullptr, 0, 0, 0, 0, 0);
  const fs::path out = dir / (files.chain.stem().string() + ".p12");
  BIO* ob = BIO_new_file(out.c_str(), "wb");
  i2d_PKCS12_bio(ob, p12);
  BIO_free(ob);
  PKCS12_free(p12);
  EVP_PKEY_free(key);
  return out;
}

TEST(KeysCli, import_pkcs12_stores_a_non_extractable_key_and_refuses_wrong_password_or_foreign_ou) {
  CliWorld w;
  w.write_config();
  testkit::OrgCertOptions opts;
  opts.subject = {"75", "CABINET DE RADIOLOGIE DU PARC", kTenantA, "CABINET DE RADIOLOGIE DU PARC"};
  opts.file_stem = "site-a";
  auto files_a = w.world.pki.issue_org_cert_with_key(opts, testkit::KeyType::ec_p256);
  const fs::path p12 = write_p12(w.world.tmp.path(), files_a, "s3cret pw");
  std::ofstream(w.world.tmp / "good.pw") << "s3cret pw\n";
  std::ofstream(w.world.tmp / "bad.pw") << "guess\n";

  auto wrong = w.keys({"import", "--p12", p12.string(), "--tenant", kTenantA, "--purpose", "dmp", "--password-file",
                       (w.world.tmp / "bad.pw").string()});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.output, HasSubstr("wrong password"));
  auto foreign = w.keys({"import", "--p12", p12.string(), "--tenant", kTenantB, "--purpose", "dmp", "--password-file",
                         (w.world.tmp / "good.pw").string()});
  EXPECT_EQ(foreign.exit_code, 1);
  EXPECT_THAT(foreign.output, HasSubstr("not the tenant id"));
  EXPECT_THAT(w.keys({"list"}).output, Not(HasSubstr("-dmp"))) << "refusals stored nothing";

  auto ok = w.keys({"import", "--p12", p12.string(), "--tenant", kTenantA, "--purpose", "dmp", "--password-file",
                    (w.world.tmp / "good.pw").string()});
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, Not(HasSubstr("s3cret")));
  const std::string uri = uri_from_output(ok.output);
  // The imported key signs in the token and matches its certificate (the keystore's load checks both, and
  // refuses extractable keys).
  w.write_config({{"dmp", files_a.chain.string(), uri}});
  auto check = w.keys({"check"});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  const std::string listed = w.keys({"list", "--json"}).output;
  auto list = nlohmann::json::parse(listed.substr(listed.find('[')));
  bool found = false;
  for (auto const& o : list)
    if (o["class"] == "private-key" && o["label"] == std::string(kTenantA) + "-dmp") {
      found = true;
      EXPECT_EQ(o["key_type"], "EC P-256");
      EXPECT_TRUE(o["sensitive"].get<bool>());
      EXPECT_FALSE(o["extractable"].get<bool>());
    }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace orgproxy::keystore::test

namespace orgproxy::keystore::test {
namespace {

TEST(KeysCli, configuration_pin_file_credential_reads_credentials_directory_end_to_end) {
  CliWorld w;
  w.write_config();
  std::string yaml;
  {
    std::ifstream in(w.config_file);
    yaml.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string pin_line = "pin_file: \"" + w.world.token.pin_file().string() + "\"";
  ASSERT_NE(yaml.find(pin_line), std::string::npos);
  yaml.replace(yaml.find(pin_line), pin_line.size(), "pin_file: \"credential:pin\"");
  std::ofstream(w.config_file, std::ios::trunc) << yaml;
  fs::create_directories(w.world.tmp / "creds");
  fs::copy_file(w.world.token.pin_file(), w.world.tmp / "creds" / "pin");
  // Control: without $CREDENTIALS_DIRECTORY the command says what is missing.
  auto missing = w.keys({"list"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("CREDENTIALS_DIRECTORY"));
  std::vector<std::string> argv{ORGPROXY_BINARY, "keys", "--config", w.config_file.string(), "generate", "--tenant",
                                kTenantA, "--purpose", "dmp", "--out", (w.world.tmp / "c.csr").string()};
  auto gen = testkit::run_command(argv, {{"SOFTHSM2_CONF", w.world.token.conf_path().string()},
                                         {"CREDENTIALS_DIRECTORY", (w.world.tmp / "creds").string()}},
                                  std::chrono::seconds(120));
  EXPECT_EQ(gen.exit_code, 0) << gen.output;
}

}  // namespace
}  // namespace orgproxy::keystore::test
