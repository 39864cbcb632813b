// KeyAdmin's PKCS#12 import: the key goes to the token sensitive and not extractable, with its certificate and
// the file's CA certificates. Internal.
#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "admin_keys.hpp"
#include "admin_objects.hpp"
#include "identity.hpp"

namespace orgproxy::keystore::admin_detail {
namespace {

/// Private bytes (cleansed on destruction).
struct Secret {
  std::string bytes;
  ~Secret() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

std::string bn_param(EVP_PKEY* key, const char* name, size_t pad_to = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || bn == nullptr) return {};
  std::string out(std::max<size_t>(pad_to, static_cast<size_t>(BN_num_bytes(bn))), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_clear_free(bn);
  return out;
}

}  // namespace

std::string import_pkcs12_file(Token& token, const std::string& tenant_id, const std::string& purpose,
                               const std::string& p12_file, const std::string& password) {
  require(tenant_id, "tenant id");
  require(purpose, "purpose");
  BioPtr in(BIO_new_file(p12_file.c_str(), "rb"));
  PKCS12* p12 = in ? d2i_PKCS12_bio(in.get(), nullptr) : nullptr;
  if (p12 == nullptr) {
    ERR_clear_error();
    throw KeystoreError(p12_file + ": not a readable PKCS#12 file");
  }
  if (PKCS12_mac_present(p12) && PKCS12_verify_mac(p12, password.c_str(), static_cast<int>(password.size())) != 1) {
    PKCS12_free(p12);
    ERR_clear_error();
    throw KeystoreError(p12_file + ": wrong password (MAC check failed)");
  }
  EVP_PKEY* key_raw = nullptr;
  X509* cert_raw = nullptr;
  STACK_OF(X509)* ca = nullptr;
  const int parsed = PKCS12_parse(p12, password.c_str(), &key_raw, &cert_raw, &ca);
  PKCS12_free(p12);
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> ca_certificates(
      ca, [](STACK_OF(X509)* stack) { sk_X509_pop_free(stack, X509_free); });
  EvpPkeyPtr key(key_raw);
  X509Ptr cert(cert_raw);
  ERR_clear_error();
  if (parsed != 1) throw KeystoreError(p12_file + ": cannot decrypt (wrong password or unsupported encryption)");
  if (!key || !cert) throw KeystoreError(p12_file + ": needs both a private key and its certificate");
  if (std::string why = check_ou(cert.get(), tenant_id); !why.empty()) throw KeystoreError(p12_file + ": " + why);
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    throw KeystoreError(p12_file + ": the private key does not match the certificate");
  }

  RwSession s(token);
  const std::string label = next_label(token, s, tenant_id, purpose);
  CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
  CK_KEY_TYPE key_type;
  std::vector<CK_ATTRIBUTE> priv{attr(CKA_CLASS, &priv_class, sizeof priv_class), attr(CKA_TOKEN, kTrue),
                                 attr(CKA_PRIVATE, kTrue), attr(CKA_SENSITIVE, kTrue), attr(CKA_EXTRACTABLE, kFalse),
                                 attr(CKA_SIGN, kTrue), attr(CKA_ID, label), attr(CKA_LABEL, label)};
  std::vector<CK_ATTRIBUTE> pub{attr(CKA_CLASS, &pub_class, sizeof pub_class), attr(CKA_TOKEN, kTrue),
                                attr(CKA_PRIVATE, kFalse), attr(CKA_VERIFY, kTrue), attr(CKA_ID, label),
                                attr(CKA_LABEL, label)};
  Secret d, p, q, dp, dq, qinv, ec_value;
  std::string n, e, ec_params, ec_point;
  if (EVP_PKEY_is_a(key.get(), "RSA")) {
    key_type = CKK_RSA;
    n = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N);
    e = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E);
    d.bytes = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_D);
    p.bytes = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_FACTOR1);
    q.bytes = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_FACTOR2);
    dp.bytes = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_EXPONENT1);
    dq.bytes = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_EXPONENT2);
    qinv.bytes = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
    for (const auto* part : {&n, &e, &d.bytes, &p.bytes, &q.bytes, &dp.bytes, &dq.bytes, &qinv.bytes})
      if (part->empty()) throw KeystoreError(p12_file + ": incomplete RSA private key");
    priv.insert(priv.end(), {attr(CKA_MODULUS, n), attr(CKA_PUBLIC_EXPONENT, e), attr(CKA_PRIVATE_EXPONENT, d.bytes),
                             attr(CKA_PRIME_1, p.bytes), attr(CKA_PRIME_2, q.bytes), attr(CKA_EXPONENT_1, dp.bytes),
                             attr(CKA_EXPONENT_2, dq.bytes), attr(CKA_COEFFICIENT, qinv.bytes)});
    pub.insert(pub.end(), {attr(CKA_MODULUS, n), attr(CKA_PUBLIC_EXPONENT, e)});
  } else if (EVP_PKEY_is_a(key.get(), "EC")) {
    key_type = CKK_EC;
    char group[64] = {0};
    size_t group_length = 0;
    EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &group_length);
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef) nid = OBJ_ln2nid(group);
    unsigned char* der = nullptr;
    int der_length = nid == NID_undef ? 0 : i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &der);
    if (der_length <= 0) throw KeystoreError(p12_file + ": unsupported EC curve '" + group + "'");
    ec_params.assign(reinterpret_cast<char*>(der), static_cast<size_t>(der_length));
    OPENSSL_free(der);
    const size_t field = static_cast<size_t>((EVP_PKEY_get_bits(key.get()) + 7) / 8);
    ec_value.bytes = bn_param(key.get(), OSSL_PKEY_PARAM_PRIV_KEY, field);
    unsigned char point[160];
    size_t point_length = 0;
    EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &point_length);
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, point, static_cast<int>(point_length));
    unsigned char* os_der = nullptr;
    int os_length = i2d_ASN1_OCTET_STRING(os, &os_der);
    ec_point.assign(reinterpret_cast<char*>(os_der), os_length > 0 ? static_cast<size_t>(os_length) : 0);
    OPENSSL_free(os_der);
    ASN1_OCTET_STRING_free(os);
    if (ec_value.bytes.empty() || ec_point.empty()) throw KeystoreError(p12_file + ": incomplete EC private key");
    priv.insert(priv.end(), {attr(CKA_EC_PARAMS, ec_params), attr(CKA_VALUE, ec_value.bytes)});
    pub.insert(pub.end(), {attr(CKA_EC_PARAMS, ec_params), attr(CKA_EC_POINT, ec_point)});
  } else {
    throw KeystoreError(p12_file + ": the key is neither RSA nor EC");
  }
  priv.push_back(attr(CKA_KEY_TYPE, &key_type, sizeof key_type));
  pub.push_back(attr(CKA_KEY_TYPE, &key_type, sizeof key_type));
  CK_OBJECT_HANDLE h;
  check_ck(s.f()->C_CreateObject(s.get(), priv.data(), priv.size(), &h), token.display(),
           "C_CreateObject (private key)");
  check_ck(s.f()->C_CreateObject(s.get(), pub.data(), pub.size(), &h), token.display(), "C_CreateObject (public key)");
  store_certificate(token, s, cert.get(), label, label);
  // The CA certificates of the file go to the token too (once each), as install-cert does with a chain file's
  // intermediates: an identity configured without a cert: file then presents [leaf, intermediate], which an
  // upstream trusting only the IGC Santé root needs.
  const int ca_count = ca_certificates ? sk_X509_num(ca_certificates.get()) : 0;
  int ca_stored = 0;
  if (ca_count > 0) {
    std::set<std::string> on_token;
    CK_OBJECT_CLASS cert_class = CKO_CERTIFICATE;
    for (CK_OBJECT_HANDLE h :
         find_objects(s.f(), s.get(), {attr(CKA_CLASS, &cert_class, sizeof cert_class)}, token.display()))
      on_token.insert(read_attributes(s.f(), s.get(), h, {CKA_VALUE})[CKA_VALUE]);
    for (int i = 0; i < ca_count; ++i) {
      X509* ca_cert = sk_X509_value(ca_certificates.get(), i);
      if (!on_token.insert(der_of(ca_cert)).second) continue;
      store_ca_certificate(token, s, ca_cert);
      ++ca_stored;
    }
  }
  spdlog::info("keystore: {}: key and certificate '{}' imported (sensitive, not extractable); {} CA certificate(s) "
               "of the file stored ({} already on the token)",
               token.display(), label, ca_stored, ca_count - ca_stored);
  return key_uri(token, label);
}

}  // namespace orgproxy::keystore::admin_detail
