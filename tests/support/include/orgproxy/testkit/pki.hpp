// TestPki: a throw-away PKI shaped like IGC Santé TEST (root → "ORGANISATIONS" intermediate → ORG leaves),
// built with the OpenSSL API only (no openssl CLI), for tests and the demo.
// All keys are RSA-2048 (the real IGC Santé CAs are RSA-4096; 2048 keeps fixtures fast).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace orgproxy::testkit {

/// Deleters for the OpenSSL handles the fixtures hand out (the test kit does not depend on the keystore).
struct OpenSslFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
  void operator()(X509* p) const noexcept { X509_free(p); }
};
using PkeyHandle = std::unique_ptr<EVP_PKEY, OpenSslFree>;
using CertHandle = std::unique_ptr<X509, OpenSslFree>;

/// Key algorithm of a key the fixtures generate.
enum class KeyType { rsa2048, ec_p256, ec_p384 };

/// Generates a software key pair (default library context). Throws std::runtime_error.
PkeyHandle generate_software_key(KeyType type);

/// Reads the first certificate of a PEM file; throws std::runtime_error naming the file.
CertHandle read_pem_certificate(const std::filesystem::path& file);
/// Reads every certificate of a PEM file, in file order.
std::vector<CertHandle> read_pem_certificates(const std::filesystem::path& file);

/// Distinguished names of the two CAs; the defaults mirror IGC Santé TEST.
struct TestPkiNames {
  std::string root_cn = "TEST AC RACINE IGC-SANTE ELEMENTAIRE";
  std::string intermediate_cn = "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS";
  std::string organisation = "ASIP-SANTE";
};

/// Subject of an ORG certificate: C=FR, ST=<departement>, O=<organisation>, OU=<structure_id>, CN=<common_name>.
struct OrgSubject {
  std::string departement = "75";
  std::string organisation;
  std::string structure_id;  ///< the tenant id, e.g. "312345678200002"; empty = no OU at all
  std::string common_name;
};

/// Order of the certificates in an identity chain file.
enum class ChainLayout { leaf_then_intermediate, intermediate_then_leaf, leaf_only };

struct OrgCertOptions {
  OrgSubject subject;
  /// Validity window; the defaults are "valid since an hour, for a year".
  std::chrono::system_clock::time_point not_before = std::chrono::system_clock::now() - std::chrono::hours(1);
  std::chrono::system_clock::time_point not_after = std::chrono::system_clock::now() + std::chrono::hours(24 * 365);
  ChainLayout layout = ChainLayout::leaf_then_intermediate;
  std::string file_stem;  ///< output file name without extension; default derived from OU and CN
};

/// Files of a certificate issued with a fresh software key.
struct IssuedFiles {
  std::filesystem::path chain;  ///< PEM: leaf (and intermediate per the layout)
  std::filesystem::path key;    ///< PEM PKCS#8 private key, unencrypted (0600)
};

/// A root CA and an intermediate CA, in `dir` (created if missing). Writes root.pem, intermediate.pem and
/// ca-bundle.pem (the root only: upstreams trust the root, identity chain files carry the intermediate).
/// A second TestPki (e.g. TestPki::rogue) is an independent PKI for negative tests.
class TestPki {
 public:
  /// Throws std::runtime_error on any OpenSSL or file failure.
  explicit TestPki(std::filesystem::path dir, TestPkiNames names = {});
  /// An unrelated PKI whose names say ROGUE (so a wrong trust shows in messages).
  static TestPki rogue(std::filesystem::path dir);

  TestPki(TestPki&&) noexcept = default;
  TestPki& operator=(TestPki&&) noexcept = default;
  ~TestPki();

  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& root_pem() const { return root_pem_; }
  const std::filesystem::path& intermediate_pem() const { return intermediate_pem_; }
  const std::filesystem::path& ca_bundle_pem() const { return ca_bundle_pem_; }
  X509* root_certificate() const { return root_cert_.get(); }
  X509* intermediate_certificate() const { return intermediate_cert_.get(); }

  /// TLS server certificate (serverAuth, RSA-2048 key) issued by the intermediate, for nginx and test
  /// servers. `dns_names` go to SAN dNSName, `ip_addresses` ("127.0.0.1", "::1") to SAN iPAddress; the CN is
  /// the first DNS name (or first IP). Writes <stem>.pem (leaf then intermediate) and <stem>.key.
  IssuedFiles issue_server_cert(const std::string& stem, const std::vector<std::string>& dns_names,
                                const std::vector<std::string>& ip_addresses);

  /// ORG client certificate (clientAuth) for an existing public key (e.g. one held in a token).
  /// Writes <stem>.pem laid out per `options.layout`; returns its path.
  std::filesystem::path issue_org_cert(EVP_PKEY* public_key, const OrgCertOptions& options);

  /// ORG client certificate with a fresh software key written as <stem>.key (for nginx-side contenders and
  /// negative tests).
  IssuedFiles issue_org_cert_with_key(const OrgCertOptions& options, KeyType key_type = KeyType::rsa2048);

  /// A CRL (v2, PEM) signed by the intermediate CA — the CA that issues the server and ORG leaves — listing
  /// the serial numbers of the first certificate of each file of `revoked` (none: an empty, valid CRL).
  /// thisUpdate an hour ago, nextUpdate in a week. Writes <stem>.crl.pem; returns its path.
  std::filesystem::path issue_intermediate_crl(const std::string& stem,
                                               const std::vector<std::filesystem::path>& revoked);

 private:
  std::filesystem::path write_chain(const std::string& stem, X509* leaf, ChainLayout layout) const;

  std::filesystem::path dir_;
  std::filesystem::path root_pem_, intermediate_pem_, ca_bundle_pem_;
  PkeyHandle root_key_, intermediate_key_;
  CertHandle root_cert_, intermediate_cert_;
  unsigned file_counter_ = 0;
};

}  // namespace orgproxy::testkit
