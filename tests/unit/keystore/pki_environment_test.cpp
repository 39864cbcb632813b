// TEST vs production IGC Santé PKI from a certificate's issuer (keystore/pki_environment.hpp), on issuers
// read from real certificates of a TEST-named and a production-named test PKI, in the DN spellings OpenSSL
// produces.
#include "orgproxy/keystore/pki_environment.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace orgproxy::keystore {
namespace {

using testkit::TestPki;
using testkit::TestPkiNames;

// The issuer of `cert` as X509_NAME_print_ex writes it with `flags`.
std::string issuer_text(X509* cert, unsigned long flags) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  X509_NAME_print_ex(bio.get(), X509_get_issuer_name(cert), 0, flags);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string issuer_oneline(X509* cert) {
  char buf[512];
  return X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof buf);
}

std::string leaf_issuer(TestPki& pki, unsigned long flags, bool oneline) {
  testkit::OrgCertOptions o;
  o.subject = {"75", "Cabinet", "312345678200002", "cabinet"};
  auto files = pki.issue_org_cert_with_key(o);
  auto leaf = testkit::read_pem_certificate(files.chain);
  return oneline ? issuer_oneline(leaf.get()) : issuer_text(leaf.get(), flags);
}

TEST(PkiEnvironment, issuer_from_the_test_pki_is_test_in_every_openssl_spelling) {
  testkit::TempDir dir("pki-env");
  TestPki test_pki(dir.path() / "test");  // default names: "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"
  for (const auto& issuer : {leaf_issuer(test_pki, XN_FLAG_RFC2253, false),
                             leaf_issuer(test_pki, XN_FLAG_ONELINE, false), leaf_issuer(test_pki, 0, true)}) {
    SCOPED_TRACE(issuer);
    EXPECT_NE(issuer.find("TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"), std::string::npos);
    EXPECT_EQ(pki_environment_of_issuer(issuer), PkiEnvironment::test);
    EXPECT_EQ(check_pki_environment(PkiEnvironment::test, issuer), "");
    const std::string refused = check_pki_environment(PkiEnvironment::production, issuer);
    EXPECT_NE(refused.find("certificate from the TEST IGC Santé PKI"), std::string::npos) << refused;
    EXPECT_NE(refused.find("used for a production upstream"), std::string::npos) << refused;
  }
}

TEST(PkiEnvironment, issuer_from_the_production_pki_is_production) {
  testkit::TempDir dir("pki-env");
  TestPkiNames names;
  names.root_cn = "AC RACINE IGC-SANTE ELEMENTAIRE";
  names.intermediate_cn = "AC IGC-SANTE ELEMENTAIRE ORGANISATIONS";
  TestPki prod_pki(dir.path() / "prod", names);
  for (const auto& issuer : {leaf_issuer(prod_pki, XN_FLAG_RFC2253, false),
                             leaf_issuer(prod_pki, XN_FLAG_ONELINE, false), leaf_issuer(prod_pki, 0, true)}) {
    SCOPED_TRACE(issuer);
    EXPECT_EQ(pki_environment_of_issuer(issuer), PkiEnvironment::production);
    EXPECT_EQ(check_pki_environment(PkiEnvironment::production, issuer), "");
    EXPECT_NE(check_pki_environment(PkiEnvironment::test, issuer).find("from the production IGC Santé PKI"),
              std::string::npos);
  }
}

TEST(PkiEnvironment, only_the_cn_decides_not_test_written_elsewhere) {
  // "TEST " in O or OU, or a CN merely containing TEST, is not the TEST PKI.
  EXPECT_EQ(pki_environment_of_issuer("CN=AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=TEST AC,O=ASIP-SANTE,C=FR"),
            PkiEnvironment::production);
  EXPECT_EQ(pki_environment_of_issuer("CN=AC TEST ORGANISATIONS,O=TEST SANTE,C=FR"), PkiEnvironment::production);
  EXPECT_EQ(pki_environment_of_issuer("CN=TESTAC IGC-SANTE,C=FR"), PkiEnvironment::production);
  EXPECT_EQ(pki_environment_of_issuer("/C=FR/O=TEST X/CN=AC IGC-SANTE"), PkiEnvironment::production);
  EXPECT_EQ(pki_environment_of_issuer(""), PkiEnvironment::production);
  // Positive controls: the CN, wherever it stands, in any attribute-name case, escapes honoured.
  EXPECT_EQ(pki_environment_of_issuer("C=FR,O=ASIP-SANTE,cn=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"),
            PkiEnvironment::test);
  EXPECT_EQ(pki_environment_of_issuer("CN=TEST AC\\, ORGANISATIONS,O=ASIP-SANTE\\, GIP,C=FR"), PkiEnvironment::test);
  EXPECT_EQ(pki_environment_of_issuer("OU=x+CN=TEST AC,C=FR"), PkiEnvironment::test);
}

}  // namespace
}  // namespace orgproxy::keystore
