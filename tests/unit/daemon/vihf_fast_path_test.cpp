// The VIHF check's fast path (vihf_surely_absent) against the full libxml2 scan: wherever the fast path
// answers "surely absent", the full scan must decide the same way where the VIHF is only checked (no VIHF
// found, nothing hostile). Differential over the project's samples, the bench's body and many mutations:
// encodings, BOMs, DTDs, entities, comments, CDATA, renamed and re-prefixed assertions, random bytes.
#include <gtest/gtest.h>

#include <iconv.h>

#include <random>
#include <string>
#include <vector>

#include "orgproxy/daemon/vihf.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/soap_samples.hpp"

namespace orgproxy::daemon {
namespace {

namespace tk = orgproxy::testkit;
using Status = VihfScan::Status;

constexpr const char* kSiteA = "312345678200002";

// What the gate does with a scan where the VIHF is only checked (vihf_gate.cpp read_vihf).
enum class Decision { forward, check_vihf, refuse };
Decision decide(const VihfScan& s) {
  if (s.status == Status::found) return Decision::check_vihf;
  if (s.status == Status::malformed && s.hostile) return Decision::refuse;
  return Decision::forward;
}

// The differential property on one input; returns whether the fast path fired.
bool fast_path_agrees(const std::string& xml, const std::string& label) {
  const bool fast = vihf_surely_absent(xml);
  if (fast) {
    const VihfScan full = scan_vihf(xml, true);
    EXPECT_EQ(decide(full), Decision::forward)
        << label << ": the fast path said no VIHF, the full scan says " << static_cast<int>(full.status)
        << " hostile=" << full.hostile << " " << full.error;
  }
  return fast;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string convert(const std::string& in, const char* to) {
  iconv_t cd = iconv_open(to, "UTF-8");
  EXPECT_NE(cd, reinterpret_cast<iconv_t>(-1)) << to;
  if (cd == reinterpret_cast<iconv_t>(-1)) return {};
  std::string out(in.size() * 4 + 16, '\0');
  char* src = const_cast<char*>(in.data());
  std::size_t src_left = in.size();
  char* dst = out.data();
  std::size_t dst_left = out.size();
  const std::size_t rc = iconv(cd, &src, &src_left, &dst, &dst_left);
  iconv_close(cd);
  EXPECT_NE(rc, static_cast<std::size_t>(-1)) << to;
  out.resize(out.size() - dst_left);
  return out;
}

// The bench's load body (bench/lib/load.lua): SOAP 1.2, an empty header, 2,048 bytes.
std::string bench_body() {
  std::string b = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/"
                  "soap-envelope\" xmlns:ns=\"urn:bench\"><soap:Header/><soap:Body><ns:Request>";
  for (int i = 1; i <= 40; ++i) b += "<ns:Item id=\"" + std::to_string(i) + "\">value-" + std::string(20, 'x') + "</ns:Item>";
  b += "</ns:Request></soap:Body></soap:Envelope>";
  b.resize(2048, ' ');
  return b;
}

std::string dmp() { return tk::load_sample("dmp-iti41-provide-and-register.xml", kSiteA); }
std::string insi() { return tk::load_sample("insi-rechercher-ins-avec-traits-identite.xml", kSiteA); }
std::string mtom_root() {
  static const std::string body = tk::load_sample("dmp-iti41-provide-and-register.mtom", kSiteA);
  SoapEnvelopeSpan span = soap_envelope_of(tk::kIti41MtomContentType, body, true);
  EXPECT_TRUE(span.ok && span.envelope_complete);
  return std::string(span.envelope);
}

// The DMP sample with its assertion's element renamed (the assertion is then no VIHF: the full scan says absent).
std::string dmp_without_assertion(const std::string& to) { return replace_all(dmp(), "saml:Assertion", "saml:" + to); }

TEST(VihfFastPath, fires_on_bodies_without_an_assertion_and_agrees_with_the_full_scan) {
  // Positive controls: these are what the fast path exists for; the full scan agrees they carry no VIHF.
  EXPECT_TRUE(fast_path_agrees(bench_body(), "bench body"));
  EXPECT_TRUE(fast_path_agrees(insi(), "INSi sample"));
  EXPECT_TRUE(fast_path_agrees(dmp_without_assertion("Statement"), "DMP, assertion renamed"));
  EXPECT_TRUE(fast_path_agrees("\xEF\xBB\xBF" + insi(), "INSi with a UTF-8 BOM"));
  EXPECT_TRUE(fast_path_agrees(replace_all(insi(), "encoding=\"UTF-8\"", "encoding='us-ascii'"), "US-ASCII"));
  EXPECT_TRUE(fast_path_agrees(replace_all(bench_body(), "value-", "&#65;ssertion &amp; &lt;&#x41;&gt;"),
                               "character references spelling Assertion in text"));
  EXPECT_EQ(scan_vihf(bench_body(), true).status, Status::absent);
}

TEST(VihfFastPath, never_fires_where_a_vihf_or_something_hostile_may_hide) {
  const std::string with_vihf[] = {dmp(), mtom_root()};
  for (const auto& xml : with_vihf) {
    EXPECT_EQ(scan_vihf(xml, true).status, Status::found);
    EXPECT_FALSE(vihf_surely_absent(xml));
  }
  // A DTD (with or without entities) and an entity reference: refused by the full scan, never skipped.
  const std::string dtd = replace_all(insi(), "<soap:Envelope", "<!DOCTYPE soap:Envelope [<!ENTITY a \"b\">]>\n<soap:Envelope");
  EXPECT_TRUE(scan_vihf(dtd, true).hostile);
  EXPECT_FALSE(vihf_surely_absent(dtd));
  EXPECT_FALSE(vihf_surely_absent(replace_all(bench_body(), "value-", "&site;")));
  EXPECT_FALSE(vihf_surely_absent(replace_all(bench_body(), "value-", "&#;")));
  // "Assertion" in a comment, CDATA or text: conservative, the parser decides.
  EXPECT_FALSE(vihf_surely_absent(replace_all(bench_body(), "<soap:Header/>", "<!-- saml:Assertion --><soap:Header/>")));
  EXPECT_FALSE(vihf_surely_absent(replace_all(bench_body(), "value-", "<![CDATA[Assertion]]>")));
  // Encodings in which "Assertion" need not be spelled with its ASCII bytes.
  for (const char* enc : {"UTF-16LE", "UTF-16BE", "UTF-16", "UTF-32", "UTF-7", "IBM037"}) {
    const std::string encoded = convert(replace_all(dmp(), "encoding=\"UTF-8\"", std::string("encoding=\"") + enc + "\""), enc);
    EXPECT_FALSE(vihf_surely_absent(encoded)) << enc;
  }
  EXPECT_FALSE(vihf_surely_absent(replace_all(insi(), "encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"")));
  EXPECT_FALSE(vihf_surely_absent(replace_all(insi(), "encoding=\"UTF-8\"", "encoding=UTF-8")));
  // An overlong UTF-8 form of 'A' (0xC1 0x81): never taken as "no Assertion here".
  EXPECT_FALSE(vihf_surely_absent(replace_all(dmp(), "saml:Assertion", "saml:\xC1\x81ssertion")));
  EXPECT_FALSE(vihf_surely_absent(replace_all(dmp(), "saml:Assertion", "saml:\xE0\x81\x81ssertion")));
  // A NUL byte, leading whitespace, or nothing at all: the parser decides.
  EXPECT_FALSE(vihf_surely_absent(std::string(insi()).insert(100, 1, '\0')));
  EXPECT_FALSE(vihf_surely_absent(" " + insi()));
  EXPECT_FALSE(vihf_surely_absent(""));
}

TEST(VihfFastPath, agrees_with_the_full_scan_over_many_mutations) {
  std::vector<std::pair<std::string, std::string>> seeds = {
      {"bench", bench_body()},
      {"insi", insi()},
      {"dmp", dmp()},
      {"mtom root", mtom_root()},
      {"dmp renamed", dmp_without_assertion("Assertio")},
      {"dmp re-prefixed", replace_all(dmp(), "saml:Assertion", "s2:Statement")},
      {"dmp assertion in a comment", replace_all(dmp(), "<saml:Assertion ", "<!-- saml:Assertion --><saml:Statement ")},
  };
  // Structural mutations applied to each seed.
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"<soap:Header", "<!DOCTYPE x><soap:Header"},
      {"<soap:Header", "<!ENTITY x 'y'><soap:Header"},
      {"<soap:Body", "<![CDATA[ Assertion ]]><soap:Body"},
      {"<soap:Body", "<!-- <!DOCTYPE --><soap:Body"},
      {"<soap:Body", "&amp;&quot;&apos;&#x20;&#32;<soap:Body"},
      {"<soap:Body", "&unknown;<soap:Body"},
      {"encoding=\"UTF-8\"", "encoding=\"utf-16\""},
      {"encoding=\"UTF-8\"", "encoding=\"windows-1252\""},
      {"<soap:Header>", "<soap:Header/><soap:Header>"},
      {"soap:Envelope", "soap:Envelop"},
      {"http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/"},
  };
  int fired = 0, total = 0;
  std::mt19937 rng(20261130);
  for (const auto& [name, xml] : seeds) {
    for (const auto& [from, to] : edits) {
      if (xml.find(from) == std::string::npos) continue;
      fired += fast_path_agrees(replace_all(xml, from, to), name + " with " + to);
      ++total;
    }
    // Cuts: an envelope truncated anywhere, taken as complete.
    for (std::size_t cut = 1; cut < xml.size(); cut += 1 + xml.size() / 97) {
      fired += fast_path_agrees(xml.substr(0, cut), name + " cut at " + std::to_string(cut));
      ++total;
    }
    // Random byte substitutions, insertions of markup characters, and damage to "Assertion" itself.
    static const std::string alphabet = std::string("<>!&;#?-[]\"'=/ :aAsS\x80\xC1\xEF\xFE\xFF") + '\0';
    for (int i = 0; i < 300; ++i) {
      std::string m = xml;
      const int changes = 1 + static_cast<int>(rng() % 3);
      for (int c = 0; c < changes; ++c) {
        std::size_t at = xml.find("Assertion");
        if (at != std::string::npos && rng() % 2 == 0) at += rng() % 9;
        else at = rng() % m.size();
        m[at] = alphabet[rng() % alphabet.size()];
      }
      fired += fast_path_agrees(m, name + " mutation " + std::to_string(i));
      ++total;
    }
  }
  // The property must have been exercised both ways, not vacuously.
  EXPECT_GT(fired, total / 10) << fired << " of " << total;
  EXPECT_LT(fired, total) << fired << " of " << total;
}

}  // namespace
}  // namespace orgproxy::daemon
