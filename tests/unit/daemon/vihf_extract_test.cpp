// VIHF extraction (issue 8): the project's DMP samples, plain and MTOM, prefixes, and the refusals that
// keep a forged or ambiguous VIHF from reading one way here and another at the DMP.
#include <gtest/gtest.h>

#include <openssl/x509.h>

#include <string>

#include "orgproxy/daemon/vihf.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/soap_samples.hpp"

namespace orgproxy::daemon {
namespace {

namespace tk = orgproxy::testkit;
using Status = VihfScan::Status;

constexpr const char* kSiteA = "312345678200002";

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(VihfExtract, dmp_sample_yields_structure_mode_sector_user_and_issuer) {
  const std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kSiteA);
  VihfScan s = scan_vihf(xml, true);
  ASSERT_EQ(s.status, Status::found) << s.error;
  EXPECT_EQ(s.vihf.structure_id, kSiteA);
  EXPECT_EQ(s.vihf.auth_mode, "INDIRECTE");
  EXPECT_EQ(s.vihf.sector, "SA09^1.2.250.1.71.4.2.4");
  EXPECT_EQ(s.vihf.name_id, "899700270616");
  EXPECT_EQ(s.vihf.issuer, std::string("CN=") + kSiteA + ",OU=" + kSiteA +
                               ",O=CABINET DE RADIOLOGIE EXEMPLE,ST=Paris (75),C=FR");
}

TEST(VihfExtract, a_prefix_ending_inside_the_header_is_incomplete_and_one_past_it_is_enough) {
  const std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kSiteA);
  const auto header_end = xml.find("</soap:Header>");
  ASSERT_NE(header_end, std::string::npos);
  EXPECT_EQ(scan_vihf(std::string_view(xml).substr(0, header_end - 40), false).status, Status::incomplete);
  // Reading stops at the header's end: the rest of the body is never needed.
  VihfScan s = scan_vihf(std::string_view(xml).substr(0, header_end + 40), false);
  ASSERT_EQ(s.status, Status::found) << s.error;
  EXPECT_EQ(s.vihf.structure_id, kSiteA);
}

TEST(VihfExtract, mtom_root_part_is_found_by_its_content_id_and_read) {
  const std::string body = tk::load_sample("dmp-iti41-provide-and-register.mtom", kSiteA);
  SoapEnvelopeSpan span = soap_envelope_of(tk::kIti41MtomContentType, body, true);
  ASSERT_TRUE(span.ok) << span.error;
  EXPECT_TRUE(span.envelope_complete);
  VihfScan s = scan_vihf(span.envelope, span.envelope_complete);
  ASSERT_EQ(s.status, Status::found) << s.error;
  EXPECT_EQ(s.vihf.structure_id, kSiteA);

  // A 2 KiB prefix stops before the assertion ends: more bytes needed, not an error.
  SoapEnvelopeSpan partial =
      soap_envelope_of(tk::kIti41MtomContentType, std::string_view(body).substr(0, 2048), false);
  ASSERT_TRUE(partial.ok);
  EXPECT_FALSE(partial.envelope_complete);
  EXPECT_EQ(scan_vihf(partial.envelope, false).status, Status::incomplete);

  // A start that names no part: an error once the whole body was seen.
  std::string wrong_start = replace_once(tk::kIti41MtomContentType, "root.part@ris.local", "other@ris.local");
  SoapEnvelopeSpan none = soap_envelope_of(wrong_start, body, true);
  EXPECT_FALSE(none.ok);
  EXPECT_NE(none.error.find("other@ris.local"), std::string::npos) << none.error;
}

TEST(VihfExtract, insi_sample_without_an_assertion_is_absent) {
  const std::string xml = tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", kSiteA);
  EXPECT_EQ(scan_vihf(xml, true).status, Status::absent);
}

TEST(VihfExtract, namespaces_count_not_prefixes) {
  std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kSiteA);
  // Another prefix bound to the same SAML namespace reads the same.
  std::string renamed = replace_once(xml, "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
                                     "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "
                                     "xmlns:s2=\"urn:oasis:names:tc:SAML:2.0:assertion\"");
  renamed = replace_once(renamed, "<saml:Assertion ", "<s2:Assertion ");
  renamed = replace_once(renamed, "</saml:Assertion>", "</s2:Assertion>");
  VihfScan ok = scan_vihf(renamed, true);
  ASSERT_EQ(ok.status, Status::found) << ok.error;
  EXPECT_EQ(ok.vihf.structure_id, kSiteA);
  // The `saml` prefix bound to a look-alike namespace is not a SAML 2.0 assertion.
  std::string lookalike = replace_once(xml, "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
                                       "xmlns:saml=\"urn:example:not-saml\"");
  EXPECT_EQ(scan_vihf(lookalike, true).status, Status::absent);
}

TEST(VihfExtract, a_dtd_or_an_entity_is_refused_and_nothing_is_fetched) {
  std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kSiteA);
  std::string with_dtd = replace_once(
      xml, "<soap:Envelope",
      "<!DOCTYPE soap:Envelope [<!ENTITY site SYSTEM \"http://127.0.0.1:9/x\"><!ENTITY a \"a\">]>\n<soap:Envelope");
  VihfScan s = scan_vihf(with_dtd, true);
  EXPECT_EQ(s.status, Status::malformed);
  EXPECT_NE(s.error.find("DTD"), std::string::npos) << s.error;
  EXPECT_TRUE(s.hostile);
  // An entity reference without a DTD is an XML error, never text substituted.
  std::string entity = replace_once(xml, std::string(">") + kSiteA + "</saml:AttributeValue>", ">&site;</saml:AttributeValue>");
  EXPECT_EQ(scan_vihf(entity, true).status, Status::malformed);
}

TEST(VihfExtract, two_assertions_or_two_structures_are_refused) {
  const std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kSiteA);
  const std::string attr = std::string("<saml:Attribute Name=\"Identifiant_Structure\"><saml:AttributeValue "
                                       "xsi:type=\"xs:string\">") + kSiteA + "</saml:AttributeValue></saml:Attribute>";
  std::string twice = replace_once(xml, attr, attr + "<saml:Attribute Name=\"Identifiant_Structure\"><saml:AttributeValue>498765432103017</saml:AttributeValue></saml:Attribute>");
  VihfScan s = scan_vihf(twice, true);
  EXPECT_EQ(s.status, Status::malformed);
  EXPECT_NE(s.error.find("Identifiant_Structure"), std::string::npos) << s.error;

  std::string two_values = replace_once(xml, std::string(">") + kSiteA + "</saml:AttributeValue></saml:Attribute>",
                                        std::string(">") + kSiteA +
                                            "</saml:AttributeValue><saml:AttributeValue>498765432103017"
                                            "</saml:AttributeValue></saml:Attribute>");
  EXPECT_EQ(scan_vihf(two_values, true).status, Status::malformed);

  const auto a_begin = xml.find("<saml:Assertion ");
  const auto a_end = xml.find("</saml:Assertion>") + std::string("</saml:Assertion>").size();
  std::string two = xml;
  two.insert(a_end, xml.substr(a_begin, a_end - a_begin));
  VihfScan t = scan_vihf(two, true);
  EXPECT_EQ(t.status, Status::malformed);
  EXPECT_NE(t.error.find("more than one"), std::string::npos) << t.error;
  EXPECT_TRUE(t.hostile);
}

TEST(VihfExtract, broken_xml_is_malformed_with_its_line_and_not_soap_is_refused) {
  std::string xml = tk::load_sample("dmp-iti41-provide-and-register.xml", kSiteA);
  std::string broken = replace_once(xml, "</wsa:MessageID>", "</wsa:MessageId>");
  VihfScan s = scan_vihf(broken, true);
  EXPECT_EQ(s.status, Status::malformed);
  EXPECT_NE(s.error.find("line"), std::string::npos) << s.error;
  EXPECT_FALSE(s.hostile);  // plain bad XML: refused only where the VIHF selects the site
  EXPECT_EQ(scan_vihf("<x:Envelope xmlns:x=\"http://schemas.xmlsoap.org/soap/envelope/\"/>", true).status,
            Status::malformed);
}

TEST(VihfExtract, chunked_prefix_is_decoded_across_cut_points) {
  const std::string payload = "0123456789abcdefghij";
  const std::string raw = "5;ext=1\r\n01234\r\nf\r\n56789abcdefghij\r\n0\r\n\r\n";
  std::string out;
  bool complete = false;
  ASSERT_TRUE(dechunk_prefix(raw, 1024, out, complete));
  EXPECT_TRUE(complete);
  EXPECT_EQ(out, payload);
  for (std::size_t cut = 0; cut < raw.size(); ++cut) {
    out.clear();
    ASSERT_TRUE(dechunk_prefix(std::string_view(raw).substr(0, cut), 1024, out, complete)) << cut;
    EXPECT_EQ(out, payload.substr(0, out.size())) << cut;
  }
  out.clear();
  EXPECT_FALSE(dechunk_prefix("zz\r\nabc\r\n", 1024, out, complete));
  out.clear();
  EXPECT_FALSE(dechunk_prefix("3\r\nabcX\r\n", 1024, out, complete));
}

struct NameFree {
  void operator()(X509_NAME* n) const { X509_NAME_free(n); }
};

std::unique_ptr<X509_NAME, NameFree> site_subject(const char* ou) {
  std::unique_ptr<X509_NAME, NameFree> n(X509_NAME_new());
  auto add = [&](const char* type, const char* value, int mb = MBSTRING_UTF8) {
    X509_NAME_add_entry_by_txt(n.get(), type, mb, reinterpret_cast<const unsigned char*>(value), -1, -1, 0);
  };
  add("C", "FR", MBSTRING_ASC);
  add("ST", "Paris (75)");
  add("O", "CABINET DE RADIOLOGIE EXEMPLE");
  add("OU", ou);
  add("CN", ou);
  return n;
}

TEST(VihfIssuer, issuer_is_compared_as_an_x509_name_not_as_text) {
  auto subject = site_subject(kSiteA);
  const std::string rfc4514 = std::string("CN=") + kSiteA + ",OU=" + kSiteA +
                              ",O=CABINET DE RADIOLOGIE EXEMPLE,ST=Paris (75),C=FR";
  EXPECT_TRUE(issuer_names_subject(rfc4514, subject.get()));
  // Case, spaces around separators and escapes do not matter to X.509 name comparison...
  EXPECT_TRUE(issuer_names_subject(std::string("cn=") + kSiteA + " , OU=" + kSiteA +
                                       ",O=Cabinet  de radiologie exemple,ST=Paris \\2875\\29,C=fr",
                                   subject.get()));
  // ... and the forward order (as OpenSSL prints it) names the same certificate.
  EXPECT_TRUE(issuer_names_subject(std::string("C=FR,ST=Paris (75),O=CABINET DE RADIOLOGIE EXEMPLE,OU=") + kSiteA +
                                       ",CN=" + kSiteA,
                                   subject.get()));
  // Another site, a missing RDN, an extra RDN, or garbage do not.
  EXPECT_FALSE(issuer_names_subject(
      "CN=498765432103017,OU=498765432103017,O=CABINET DE RADIOLOGIE EXEMPLE,ST=Paris (75),C=FR", subject.get()));
  EXPECT_FALSE(issuer_names_subject(std::string("CN=") + kSiteA + ",OU=" + kSiteA + ",ST=Paris (75),C=FR",
                                    subject.get()));
  EXPECT_FALSE(issuer_names_subject(rfc4514 + ",DC=example", subject.get()));
  EXPECT_FALSE(issuer_names_subject("not a DN", subject.get()));
  EXPECT_FALSE(issuer_names_subject("", subject.get()));
}

}  // namespace
}  // namespace orgproxy::daemon

namespace orgproxy::daemon {
namespace {

TEST(VihfExtract, chunked_sample_is_found_or_incomplete_at_every_cut_never_malformed) {
  const std::string xml = testkit::load_sample("dmp-iti41-provide-and-register.xml", kSiteA);
  std::string raw;
  for (std::size_t at = 0; at < xml.size(); at += 333) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", std::min<std::size_t>(333, xml.size() - at));
    raw += size + xml.substr(at, 333) + "\r\n";
  }
  raw += "0\r\n\r\n";
  for (std::size_t cut = 0; cut <= raw.size(); cut += 7) {
    std::string payload;
    bool complete = false;
    ASSERT_TRUE(dechunk_prefix(std::string_view(raw).substr(0, cut), 64 * 1024, payload, complete)) << cut;
    VihfScan s = scan_vihf(payload, complete);
    ASSERT_NE(s.status, VihfScan::Status::malformed) << "cut " << cut << ": " << s.error;
  }
}

}  // namespace
}  // namespace orgproxy::daemon
