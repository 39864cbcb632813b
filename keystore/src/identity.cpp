#include "identity.hpp"

#include <ctime>
#include <vector>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace orgproxy::keystore {
namespace {

std::vector<std::string> subject_values(X509* cert, int nid) {
  std::vector<std::string> values;
  X509_NAME* name = X509_get_subject_name(cert);
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0; i = X509_NAME_get_index_by_NID(name, nid, i)) {
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n >= 0) values.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
  }
  return values;
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string rfc2253(X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string serial_hex_of(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = bn ? BN_bn2hex(bn) : nullptr;
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

bool is_self_signed(X509* cert) { return X509_check_issued(cert, cert) == X509_V_OK; }

std::string bn_bytes(const BIGNUM* bn) {
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string strip_leading_zeros(std::string s) {
  size_t i = s.find_first_not_of('\0');
  return i == std::string::npos ? std::string() : s.substr(i);
}

}  // namespace

X509Ptr CaCertificateCache::get(const unsigned char* der, long length) {
  std::string key(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
  if (auto it = by_der_.find(key); it != by_der_.end()) {
    X509_up_ref(it->second.get());
    return X509Ptr(it->second.get());
  }
  const unsigned char* p = der;
  X509Ptr cert(d2i_X509(nullptr, &p, length));
  if (!cert) {
    ERR_clear_error();
    return nullptr;
  }
  if (X509_check_ca(cert.get()) > 0) {
    X509_up_ref(cert.get());
    by_der_.emplace(std::move(key), X509Ptr(cert.get()));
  }
  return cert;
}

namespace {

// The certificates of a PEM file, in file order, as PEM_read_bio_X509 would give them (blocks named
// CERTIFICATE or X509 CERTIFICATE; other blocks skipped; reading stops at the first undecodable one).
bool read_pem_certificates(const std::string& file, CaCertificateCache* cache, std::vector<X509Ptr>& certs) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return false;
  }
  if (cache == nullptr) {
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(c);
    ERR_clear_error();
    return true;
  }
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long length = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &length) != 1) break;
    const std::string_view kind(name);
    X509Ptr cert;
    const bool is_certificate = kind == PEM_STRING_X509 || kind == PEM_STRING_X509_OLD;
    if (is_certificate) cert = cache->get(data, length);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (!is_certificate) continue;
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  ERR_clear_error();
  return true;
}

CertificateChain read_chain(const std::string& file, CaCertificateCache* cache) {
  CertificateChain chain;
  std::vector<X509Ptr> certs;
  if (!read_pem_certificates(file, cache, certs)) {
    chain.error = "cannot read certificate file " + file;
    return chain;
  }
  if (certs.size() > 1) std::erase_if(certs, [](const X509Ptr& c) { return is_self_signed(c.get()); });
  if (certs.empty()) {
    chain.error = "no PEM certificate in " + file;
    return chain;
  }
  // The leaf issued nothing else in the file.
  std::vector<size_t> leaves;
  for (size_t i = 0; i < certs.size(); ++i) {
    bool issued_another = false;
    for (size_t j = 0; j < certs.size() && !issued_another; ++j)
      issued_another = i != j && X509_check_issued(certs[i].get(), certs[j].get()) == X509_V_OK;
    if (!issued_another) leaves.push_back(i);
  }
  if (leaves.size() != 1) {
    chain.error = file + " holds " + std::to_string(certs.size()) + " certificates that do not form one chain";
    return chain;
  }
  chain.leaf = std::move(certs[leaves[0]]);
  chain.intermediates.reset(sk_X509_new_null());
  X509* current = chain.leaf.get();
  size_t used = 1;
  for (bool found = true; found;) {
    found = false;
    for (X509Ptr& c : certs) {
      if (c && X509_check_issued(c.get(), current) == X509_V_OK) {
        current = c.get();
        sk_X509_push(chain.intermediates.get(), c.release());
        ++used;
        found = true;
        break;
      }
    }
  }
  if (used != certs.size()) {
    chain.leaf.reset();
    chain.error = file + " holds certificates that are not on the leaf's issuer chain";
  }
  return chain;
}

}  // namespace

CertificateChain read_certificate_chain(const std::string& file) { return read_chain(file, nullptr); }

CertificateChain read_certificate_chain(const std::string& file, CaCertificateCache& cache) {
  return read_chain(file, &cache);
}

std::string check_certificate(X509* leaf, const IdentitySpec& spec, std::chrono::system_clock::time_point now) {
  if (spec.tls_server) {
    if (X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) != 1)
      return "certificate is not valid for TLS server authentication (key usage / extended key usage)";
    time_t t = std::chrono::system_clock::to_time_t(now);
    if (X509_cmp_time(X509_get0_notBefore(leaf), &t) > 0) return "certificate is not valid yet (notBefore in the future)";
    if (X509_cmp_time(X509_get0_notAfter(leaf), &t) < 0) return "certificate has expired (notAfter in the past)";
    return {};
  }
  const auto ous = subject_values(leaf, NID_organizationalUnitName);
  if (ous.empty()) return "certificate subject has no OU (not an ORG certificate)";
  if (ous.size() > 1) return "certificate subject has " + std::to_string(ous.size()) + " OUs, expected one";
  if (ous[0] != spec.tenant_id) return "certificate OU '" + ous[0] + "' is not the tenant id '" + spec.tenant_id + "'";
  const auto cns = subject_values(leaf, NID_commonName);
  const std::string cn = cns.empty() ? std::string() : cns[0];
  if (spec.purpose == "insi-auto" && cn != "INSI-AUTO")
    return "purpose insi-auto needs CN exactly 'INSI-AUTO', certificate has CN '" + cn + "'";
  if (spec.purpose == "insi-manu" && cn != "INSI-MANU")
    return "purpose insi-manu needs CN exactly 'INSI-MANU', certificate has CN '" + cn + "'";
  if (spec.purpose != "vihf-sign" && X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0) != 1)
    return "certificate is not valid for TLS client authentication (key usage / extended key usage)";
  time_t t = std::chrono::system_clock::to_time_t(now);
  if (X509_cmp_time(X509_get0_notBefore(leaf), &t) > 0) return "certificate is not valid yet (notBefore in the future)";
  if (X509_cmp_time(X509_get0_notAfter(leaf), &t) < 0) return "certificate has expired (notAfter in the past)";
  return {};
}

std::string compare_public_parts(const TokenKeyObject& key, X509* leaf) {
  EVP_PKEY* cert_key = X509_get0_pubkey(leaf);
  if (cert_key == nullptr) return "certificate public key cannot be decoded";
  const bool cert_rsa = EVP_PKEY_is_a(cert_key, "RSA");
  const bool cert_ec = EVP_PKEY_is_a(cert_key, "EC");
  if (key.key_type == CKK_RSA) {
    if (!cert_rsa) return "token key is RSA, certificate key is not";
    if (key.modulus.empty() || key.public_exponent.empty()) return "?";
    BIGNUM *n = nullptr, *e = nullptr;
    EVP_PKEY_get_bn_param(cert_key, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(cert_key, OSSL_PKEY_PARAM_RSA_E, &e);
    bool same = n && e && bn_bytes(n) == strip_leading_zeros(key.modulus) &&
                bn_bytes(e) == strip_leading_zeros(key.public_exponent);
    BN_free(n);
    BN_free(e);
    return same ? "" : "token key does not match the certificate (RSA modulus differs)";
  }
  if (key.key_type == CKK_EC) {
    if (!cert_ec) return "token key is EC, certificate key is not";
    if (key.ec_point.empty()) return "?";
    unsigned char point[256];
    size_t point_length = 0;
    if (EVP_PKEY_get_octet_string_param(cert_key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &point_length) != 1)
      return "certificate EC point cannot be read";
    // CKA_EC_POINT is normally a DER OCTET STRING; a few tokens give the bare point.
    std::string token_point = key.ec_point;
    const auto* p = reinterpret_cast<const unsigned char*>(key.ec_point.data());
    if (ASN1_OCTET_STRING* os = d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(key.ec_point.size()))) {
      token_point.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(os)), ASN1_STRING_length(os));
      ASN1_OCTET_STRING_free(os);
    }
    ERR_clear_error();
    return token_point == std::string(reinterpret_cast<char*>(point), point_length)
               ? ""
               : "token key does not match the certificate (EC point differs)";
  }
  return "token key type is neither RSA nor EC";
}

std::string prove_key_by_signature(EVP_PKEY* key, X509* leaf, OSSL_LIB_CTX* libctx) {
  static const unsigned char message[] = "orgproxy key/certificate match check";
  EvpMdCtxPtr sign_ctx(EVP_MD_CTX_new());
  std::vector<unsigned char> sig(static_cast<size_t>(EVP_PKEY_get_size(key)));
  size_t sig_length = sig.size();
  if (!sign_ctx || EVP_DigestSignInit_ex(sign_ctx.get(), nullptr, "SHA256", libctx, nullptr, key, nullptr) != 1 ||
      EVP_DigestSign(sign_ctx.get(), sig.data(), &sig_length, message, sizeof message) != 1) {
    ERR_clear_error();
    return "the token refused a test signature with this key";
  }
  EvpMdCtxPtr verify_ctx(EVP_MD_CTX_new());
  bool ok = verify_ctx &&
            EVP_DigestVerifyInit_ex(verify_ctx.get(), nullptr, "SHA256", nullptr, nullptr, X509_get0_pubkey(leaf),
                                    nullptr) == 1 &&
            EVP_DigestVerify(verify_ctx.get(), sig.data(), sig_length, message, sizeof message) == 1;
  ERR_clear_error();
  return ok ? "" : "token key does not match the certificate (test signature does not verify)";
}

LoadedIdentity::LoadedIdentity(std::shared_ptr<PrivateLibCtx> libctx, const IdentitySpec& spec,
                               CertificateChain chain, std::shared_ptr<const TokenKey> token_key,
                               EvpPkeyPtr private_key, bool supports_pss)
    : libctx_(std::move(libctx)),
      tenant_id_(spec.tenant_id),
      purpose_(spec.purpose),
      leaf_(std::move(chain.leaf)),
      intermediates_(std::move(chain.intermediates)),
      token_key_(std::move(token_key)),
      private_key_(std::move(private_key)),
      supports_pss_(supports_pss) {
  subject_ = rfc2253(X509_get_subject_name(leaf_.get()));
  serial_hex_ = serial_hex_of(leaf_.get());
  not_before_ = to_time_point(X509_get0_notBefore(leaf_.get()));
  not_after_ = to_time_point(X509_get0_notAfter(leaf_.get()));
}

bool LoadedIdentity::usable() const { return !token_key_ || token_key_->token->usable(); }

}  // namespace orgproxy::keystore
