// TestPki: certificates made with the OpenSSL 3 API (X509_* / X509V3_*), never the openssl CLI, so the tests
// need no external tool and control every field (dates in the past, missing OU, chain order).
#include "orgproxy/testkit/pki.hpp"

#include <fstream>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace orgproxy::testkit {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& what) {
  std::string detail;
  if (unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    detail = std::string(": ") + buf;
  }
  ERR_clear_error();
  throw std::runtime_error("TestPki: " + what + detail);
}

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free_all(b); }
};
using BioHandle = std::unique_ptr<BIO, BioFree>;

std::string to_pem(X509* cert) {
  BioHandle bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("PEM encoding of a certificate failed");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

void write_file(const fs::path& path, const std::string& content, fs::perms perms = fs::perms::none) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("TestPki: cannot write " + path.string());
  if (perms != fs::perms::none) fs::permissions(path, perms);
}

void write_private_key(const fs::path& path, EVP_PKEY* key) {
  BioHandle bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("PEM encoding of a private key failed");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  write_file(path, std::string(data, static_cast<size_t>(len)), fs::perms::owner_read | fs::perms::owner_write);
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (value.empty()) return;
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()),
                                 -1, -1, 0) != 1)
    fail(std::string("cannot set subject field ") + field);
}

void set_random_serial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) fail("RAND_bytes");
  bytes[0] &= 0x7f;  // positive, as RFC 5280 §4.1.2.2 requires
  bytes[0] |= 0x01;  // and never shorter than 16 bytes
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(bytes, sizeof bytes, nullptr), BN_free);
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) fail("cannot set serial");
}

void set_validity(X509* cert, std::chrono::system_clock::time_point from, std::chrono::system_clock::time_point to) {
  if (!ASN1_TIME_set(X509_getm_notBefore(cert), std::chrono::system_clock::to_time_t(from)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert), std::chrono::system_clock::to_time_t(to)))
    fail("cannot set validity");
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) fail("bad extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) fail("cannot add extension " + std::string(OBJ_nid2sn(nid)));
}

/// Builds and signs one certificate. `issuer == nullptr` makes it self-signed with `signer_key`.
CertHandle make_certificate(X509_NAME* subject, EVP_PKEY* public_key, X509* issuer, EVP_PKEY* signer_key,
                            std::chrono::system_clock::time_point from, std::chrono::system_clock::time_point to,
                            const std::vector<std::pair<int, std::string>>& extensions) {
  CertHandle cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) fail("X509_new");
  set_random_serial(cert.get());
  set_validity(cert.get(), from, to);
  if (X509_set_subject_name(cert.get(), subject) != 1 ||
      X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject) != 1 ||
      X509_set_pubkey(cert.get(), public_key) != 1)
    fail("cannot set names or public key");
  X509* issuer_cert = issuer ? issuer : cert.get();
  add_extension(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  if (issuer) add_extension(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always");
  for (const auto& [nid, value] : extensions) add_extension(cert.get(), issuer_cert, nid, value);
  if (X509_sign(cert.get(), signer_key, EVP_sha256()) <= 0) fail("X509_sign");
  return cert;
}

struct NameFree {
  void operator()(X509_NAME* n) const noexcept { X509_NAME_free(n); }
};
using NameHandle = std::unique_ptr<X509_NAME, NameFree>;

NameHandle ca_name(const TestPkiNames& names, const std::string& cn) {
  NameHandle name(X509_NAME_new());
  if (!name) fail("X509_NAME_new");
  add_name_entry(name.get(), "C", "FR");
  add_name_entry(name.get(), "O", names.organisation);
  add_name_entry(name.get(), "OU", "IGC-SANTE TEST");
  add_name_entry(name.get(), "CN", cn);
  return name;
}

std::string sanitise_stem(std::string s) {
  for (char& c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      c = '_';
  return s;
}

}  // namespace

PkeyHandle generate_software_key(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::rsa2048: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}); break;
    case KeyType::ec_p256: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyType::ec_p384: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
  }
  if (key == nullptr) fail("key generation failed");
  return PkeyHandle(key);
}

std::vector<CertHandle> read_pem_certificates(const std::filesystem::path& file) {
  BioHandle bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) fail("cannot open " + file.string());
  std::vector<CertHandle> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(cert);
  ERR_clear_error();  // the end of the file shows as a "no start line" error
  if (certs.empty()) throw std::runtime_error("TestPki: no certificate in " + file.string());
  return certs;
}

CertHandle read_pem_certificate(const std::filesystem::path& file) {
  return std::move(read_pem_certificates(file).front());
}

TestPki::TestPki(std::filesystem::path dir, TestPkiNames names) : dir_(std::move(dir)) {
  fs::create_directories(dir_);
  const auto now = std::chrono::system_clock::now();
  const auto from = now - std::chrono::hours(24);
  const auto to = now + std::chrono::hours(24 * 365 * 10);

  root_key_ = generate_software_key(KeyType::rsa2048);
  NameHandle root_name = ca_name(names, names.root_cn);
  root_cert_ = make_certificate(root_name.get(), root_key_.get(), nullptr, root_key_.get(), from, to,
                                {{NID_basic_constraints, "critical,CA:TRUE"},
                                 {NID_key_usage, "critical,keyCertSign,cRLSign"}});

  intermediate_key_ = generate_software_key(KeyType::rsa2048);
  NameHandle intermediate_name = ca_name(names, names.intermediate_cn);
  intermediate_cert_ =
      make_certificate(intermediate_name.get(), intermediate_key_.get(), root_cert_.get(), root_key_.get(), from, to,
                       {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                        {NID_key_usage, "critical,keyCertSign,cRLSign"}});

  root_pem_ = dir_ / "root.pem";
  intermediate_pem_ = dir_ / "intermediate.pem";
  ca_bundle_pem_ = dir_ / "ca-bundle.pem";
  write_file(root_pem_, to_pem(root_cert_.get()));
  write_file(intermediate_pem_, to_pem(intermediate_cert_.get()));
  write_file(ca_bundle_pem_, to_pem(root_cert_.get()));
}

TestPki::~TestPki() = default;

TestPki TestPki::rogue(std::filesystem::path dir) {
  TestPkiNames names;
  names.root_cn = "ROGUE AC RACINE";
  names.intermediate_cn = "ROGUE AC ORGANISATIONS";
  names.organisation = "ROGUE";
  return TestPki(std::move(dir), names);
}

std::filesystem::path TestPki::write_chain(const std::string& stem, X509* leaf, ChainLayout layout) const {
  std::string content;
  switch (layout) {
    case ChainLayout::leaf_then_intermediate: content = to_pem(leaf) + to_pem(intermediate_cert_.get()); break;
    case ChainLayout::intermediate_then_leaf: content = to_pem(intermediate_cert_.get()) + to_pem(leaf); break;
    case ChainLayout::leaf_only: content = to_pem(leaf); break;
  }
  fs::path path = dir_ / (stem + ".pem");
  write_file(path, content);
  return path;
}

IssuedFiles TestPki::issue_server_cert(const std::string& stem, const std::vector<std::string>& dns_names,
                                       const std::vector<std::string>& ip_addresses) {
  if (dns_names.empty() && ip_addresses.empty()) throw std::invalid_argument("TestPki: server cert needs a name");
  std::string san;
  for (const auto& d : dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;

  PkeyHandle key = generate_software_key(KeyType::rsa2048);
  NameHandle name(X509_NAME_new());
  add_name_entry(name.get(), "C", "FR");
  add_name_entry(name.get(), "O", "ORGPROXY TEST UPSTREAM");
  add_name_entry(name.get(), "CN", dns_names.empty() ? ip_addresses.front() : dns_names.front());
  const auto now = std::chrono::system_clock::now();
  CertHandle cert = make_certificate(name.get(), key.get(), intermediate_cert_.get(), intermediate_key_.get(),
                                     now - std::chrono::hours(1), now + std::chrono::hours(24 * 365),
                                     {{NID_basic_constraints, "critical,CA:FALSE"},
                                      {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                                      {NID_ext_key_usage, "serverAuth"},
                                      {NID_subject_alt_name, san}});
  IssuedFiles files;
  files.chain = write_chain(stem, cert.get(), ChainLayout::leaf_then_intermediate);
  files.key = dir_ / (stem + ".key");
  write_private_key(files.key, key.get());
  return files;
}

std::filesystem::path TestPki::issue_org_cert(EVP_PKEY* public_key, const OrgCertOptions& options) {
  if (public_key == nullptr) throw std::invalid_argument("TestPki: issue_org_cert needs a public key");
  const OrgSubject& s = options.subject;
  NameHandle name(X509_NAME_new());
  add_name_entry(name.get(), "C", "FR");
  add_name_entry(name.get(), "ST", s.departement);
  add_name_entry(name.get(), "O", s.organisation);
  add_name_entry(name.get(), "OU", s.structure_id);
  add_name_entry(name.get(), "CN", s.common_name);
  const bool is_rsa = EVP_PKEY_is_a(public_key, "RSA");
  CertHandle cert = make_certificate(
      name.get(), public_key, intermediate_cert_.get(), intermediate_key_.get(), options.not_before,
      options.not_after,
      {{NID_basic_constraints, "critical,CA:FALSE"},
       {NID_key_usage, is_rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature"},
       {NID_ext_key_usage, "clientAuth"}});
  std::string stem = options.file_stem;
  if (stem.empty())
    stem = sanitise_stem(s.structure_id + "-" + s.common_name) + "-" + std::to_string(++file_counter_);
  return write_chain(stem, cert.get(), options.layout);
}

IssuedFiles TestPki::issue_org_cert_with_key(const OrgCertOptions& options, KeyType key_type) {
  PkeyHandle key = generate_software_key(key_type);
  IssuedFiles files;
  files.chain = issue_org_cert(key.get(), options);
  files.key = fs::path(files.chain).replace_extension(".key");
  write_private_key(files.key, key.get());
  return files;
}

std::filesystem::path TestPki::issue_intermediate_crl(const std::string& stem,
                                                      const std::vector<std::filesystem::path>& revoked) {
  struct CrlFree {
    void operator()(X509_CRL* c) const noexcept { X509_CRL_free(c); }
  };
  struct TimeFree {
    void operator()(ASN1_TIME* t) const noexcept { ASN1_TIME_free(t); }
  };
  std::unique_ptr<X509_CRL, CrlFree> crl(X509_CRL_new());
  if (!crl || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(intermediate_cert_.get())) != 1)
    fail("X509_CRL_new");
  const auto now = std::chrono::system_clock::now();
  std::unique_ptr<ASN1_TIME, TimeFree> last(ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(now - std::chrono::hours(1))));
  std::unique_ptr<ASN1_TIME, TimeFree> next(ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(now + std::chrono::hours(24 * 7))));
  if (!last || !next || X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1)
    fail("cannot set CRL dates");
  for (const auto& file : revoked) {
    CertHandle cert = read_pem_certificate(file);
    X509_REVOKED* entry = X509_REVOKED_new();
    if (!entry || X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(cert.get())) != 1 ||
        X509_REVOKED_set_revocationDate(entry, last.get()) != 1 || X509_CRL_add0_revoked(crl.get(), entry) != 1) {
      X509_REVOKED_free(entry);
      fail("cannot add a revoked serial");
    }
  }
  if (X509_CRL_sort(crl.get()) != 1 || X509_CRL_sign(crl.get(), intermediate_key_.get(), EVP_sha256()) <= 0)
    fail("X509_CRL_sign");
  BioHandle bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) fail("PEM_write_bio_X509_CRL");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  const fs::path path = dir_ / (sanitise_stem(stem) + ".crl.pem");
  write_file(path, std::string(data, static_cast<std::size_t>(len)));
  return path;
}

}  // namespace orgproxy::testkit
