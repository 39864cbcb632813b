// Issue 3 point 3: every key algorithm a site's ORG certificate may carry (RSA-2048 with PKCS#1 v1.5 or PSS
// signatures, ECDSA P-256, ECDSA P-384) authenticates the real daemon to the real nginx over TLS 1.2 and
// TLS 1.3, the key signing inside the token. The shim's call log shows the mechanism the token was asked for,
// so a handshake that signed outside the token, or with the wrong padding, cannot pass.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "keystore_daemon_world.hpp"

namespace orgproxy::keystore_it {
namespace {

using ::testing::HasSubstr;

// PKCS#11 v2.40 mechanism numbers, as the shim logs them.
constexpr unsigned long kCkmRsaPkcs = 0x1, kCkmRsaPkcsPss = 0xd, kCkmEcdsa = 0x1041;

struct AlgorithmCase {
  const char* name;
  tk::KeyType key;
  tk::TlsProtocols protocol;
  /// What nginx accepts in the client's CertificateVerify (ssl_conf_command ClientSignatureAlgorithms);
  /// "" = OpenSSL's default list. Used to pin TLS 1.2 to one padding: OpenSSL prefers PSS when allowed.
  const char* server_sigalgs;
  unsigned long mechanism;  ///< what C_SignInit must be called with
};

std::ostream& operator<<(std::ostream& out, const AlgorithmCase& c) { return out << c.name; }

class KeystoreAlgorithms : public KeystoreDaemonWorld, public ::testing::WithParamInterface<AlgorithmCase> {};

TEST_P(KeystoreAlgorithms, site_key_signs_the_handshake_in_the_token_and_nginx_sees_the_sites_certificate) {
  const AlgorithmCase& c = GetParam();
  const std::string tenant(tk::kSiteA);
  const TokenSite site = make_site(*token_a_, tenant, c.key);
  const std::string extra =
      *c.server_sigalgs ? std::string("ssl_conf_command ClientSignatureAlgorithms ") + c.server_sigalgs + ";" : "";
  auto nginx = start_nginx(c.protocol, extra);
  tk::OrgproxyProcess daemon(tmp_.subdir("daemon"), config(nginx->url("/dmp-services"), {site}), start());

  const int sign_inits_before = shim_calls("C_SignInit", "Cabinet A");  // the load's key/cert proof, if any
  auto r = get(daemon.port(), tenant, "/dmp/registry");
  const std::string diagnostics = "\n--- daemon ---\n" + daemon.log() + "\n--- nginx ---\n" + nginx->error_log();
  ASSERT_EQ(r.status, 200) << r.header("X-Orgproxy-Error") << diagnostics;
  EXPECT_EQ(r.header("X-Client-DN"), site.dn);
  EXPECT_EQ(r.header("X-Client-Serial"), site.serial);
  EXPECT_EQ(r.header("X-Client-Verify"), "SUCCESS");
  EXPECT_EQ(r.header("X-Tls-Protocol"), c.protocol == tk::TlsProtocols::tls1_2 ? "TLSv1.2" : "TLSv1.3");
  EXPECT_EQ(r.header("X-Seen-Uri"), "/dmp-services/registry");

  // The handshake's CertificateVerify was signed by the token, with the mechanism this algorithm needs.
  const auto signs = shim_lines("C_SignInit", "Cabinet A");
  ASSERT_GT(static_cast<int>(signs.size()), sign_inits_before) << "no signature was made in the token";
  char expected[40];
  std::snprintf(expected, sizeof expected, " 0x0 mechanism=0x%lx", c.mechanism);
  for (std::size_t i = static_cast<std::size_t>(sign_inits_before); i < signs.size(); ++i)
    EXPECT_THAT(signs[i], HasSubstr(expected)) << c.name;
  EXPECT_EQ(shim_calls("C_Login", "Cabinet A"), 1) << "one login at start, none per handshake";
}

INSTANTIATE_TEST_SUITE_P(
    KeyAlgorithmsAndTlsVersions, KeystoreAlgorithms,
    ::testing::Values(
        AlgorithmCase{"rsa_pkcs1_tls12", tk::KeyType::rsa2048, tk::TlsProtocols::tls1_2, "RSA+SHA256", kCkmRsaPkcs},
        AlgorithmCase{"rsa_pss_tls12", tk::KeyType::rsa2048, tk::TlsProtocols::tls1_2, "rsa_pss_rsae_sha256",
                      kCkmRsaPkcsPss},
        // TLS 1.3 has no PKCS#1 v1.5 CertificateVerify (RFC 8446 §4.2.3): RSA is PSS there.
        AlgorithmCase{"rsa_pss_tls13", tk::KeyType::rsa2048, tk::TlsProtocols::tls1_3, "", kCkmRsaPkcsPss},
        AlgorithmCase{"ecdsa_p256_tls12", tk::KeyType::ec_p256, tk::TlsProtocols::tls1_2, "ECDSA+SHA256", kCkmEcdsa},
        AlgorithmCase{"ecdsa_p256_tls13", tk::KeyType::ec_p256, tk::TlsProtocols::tls1_3, "", kCkmEcdsa},
        AlgorithmCase{"ecdsa_p384_tls12", tk::KeyType::ec_p384, tk::TlsProtocols::tls1_2, "ECDSA+SHA384", kCkmEcdsa},
        AlgorithmCase{"ecdsa_p384_tls13", tk::KeyType::ec_p384, tk::TlsProtocols::tls1_3, "", kCkmEcdsa}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace orgproxy::keystore_it
