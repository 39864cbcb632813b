// Key creation for KeyAdmin: RSA-2048 generation in the token with a CSR signed by the token, installation of a
// certificate beside the key it was issued for, and the certificate-object helpers the PKCS#12 import
// (admin_import.cpp) shares.
#include "admin_keys.hpp"

#include <map>
#include <memory>
#include <set>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "admin_objects.hpp"
#include "identity.hpp"
#include "provider.hpp"

namespace orgproxy::keystore::admin_detail {

std::string der_of(X509_NAME* name) {
  unsigned char* der = nullptr;
  int n = i2d_X509_NAME(name, &der);
  std::string out(n > 0 ? reinterpret_cast<char*>(der) : "", n > 0 ? static_cast<size_t>(n) : 0);
  OPENSSL_free(der);
  return out;
}

/// The first free generation label of (tenant, purpose) on the token.
std::string next_label(Token& token, RwSession& s, const std::string& tenant_id, const std::string& purpose) {
  std::map<std::string, bool> taken;
  for (CK_OBJECT_HANDLE h : find_objects(s.f(), s.get(), {}, token.display())) {
    AttributeMap a = read_attributes(s.f(), s.get(), h, {CKA_LABEL, CKA_ID});
    taken[a[CKA_LABEL]] = true;
    taken[a[CKA_ID]] = true;
  }
  const std::string base = tenant_id + "-" + purpose;
  if (!taken.count(base)) return base;
  for (int n = 2;; ++n)
    if (!taken.count(base + "-" + std::to_string(n))) return base + "-" + std::to_string(n);
}

void require(const std::string& value, const char* what) {
  if (value.empty()) throw KeystoreError(std::string(what) + " is empty");
}

/// The certificate of a key: CKA_ID = the key's CKA_ID (how the daemon finds it when `cert:` is absent).
void store_certificate(Token& token, RwSession& s, X509* cert, const std::string& id, const std::string& label) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  if (n <= 0) throw KeystoreError("cannot encode the certificate");
  std::string value(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  unsigned char* serial_der = nullptr;
  int serial_length = i2d_ASN1_INTEGER(X509_get_serialNumber(cert), &serial_der);
  std::string serial(reinterpret_cast<char*>(serial_der), serial_length > 0 ? static_cast<size_t>(serial_length) : 0);
  OPENSSL_free(serial_der);
  const std::string subject = der_of(X509_get_subject_name(cert)), issuer = der_of(X509_get_issuer_name(cert));
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  std::vector<CK_ATTRIBUTE> t{attr(CKA_CLASS, &cls, sizeof cls), attr(CKA_CERTIFICATE_TYPE, &type, sizeof type),
                              attr(CKA_TOKEN, kTrue), attr(CKA_PRIVATE, kFalse), attr(CKA_ID, id),
                              attr(CKA_LABEL, label), attr(CKA_SUBJECT, subject), attr(CKA_ISSUER, issuer),
                              attr(CKA_SERIAL_NUMBER, serial), attr(CKA_VALUE, value)};
  CK_OBJECT_HANDLE h;
  check_ck(s.f()->C_CreateObject(s.get(), t.data(), t.size(), &h), token.display(), "C_CreateObject (certificate)");
}

std::string der_of(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  std::string value(reinterpret_cast<char*>(der), n > 0 ? static_cast<size_t>(n) : 0);
  OPENSSL_free(der);
  return value;
}

/// A CA certificate of an identity's chain: CKA_CERTIFICATE_CATEGORY authority (PKCS#11 v2.40 §4.6.3), no
/// CKA_ID (it belongs to no key), labelled with its subject CN.
void store_ca_certificate(Token& token, RwSession& s, X509* cert) {
  const std::string value = der_of(cert);
  const std::string subject = der_of(X509_get_subject_name(cert)), issuer = der_of(X509_get_issuer_name(cert));
  char cn[256] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  const std::string label = std::string("CA ") + cn;
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  CK_ULONG category = 2;  // authority
  std::vector<CK_ATTRIBUTE> t{attr(CKA_CLASS, &cls, sizeof cls), attr(CKA_CERTIFICATE_TYPE, &type, sizeof type),
                              attr(CKA_TOKEN, kTrue), attr(CKA_PRIVATE, kFalse),
                              attr(CKA_CERTIFICATE_CATEGORY, &category, sizeof category), attr(CKA_LABEL, label),
                              attr(CKA_SUBJECT, subject), attr(CKA_ISSUER, issuer), attr(CKA_VALUE, value)};
  CK_OBJECT_HANDLE h;
  check_ck(s.f()->C_CreateObject(s.get(), t.data(), t.size(), &h), token.display(),
           "C_CreateObject (CA certificate)");
}

GeneratedKey generate_key_pair(const std::shared_ptr<Token>& token, const std::string& tenant_id,
                               const std::string& purpose, const OrgRequestSubject& subject) {
  require(tenant_id, "tenant id");
  require(purpose, "purpose");
  require(subject.organisation, "organisation (O)");
  require(subject.common_name, "common name (CN)");
  RwSession s(*token);
  GeneratedKey out;
  out.label = next_label(*token, s, tenant_id, purpose);
  const CK_ULONG bits = 2048;
  const unsigned char exponent[] = {0x01, 0x00, 0x01};
  std::vector<CK_ATTRIBUTE> pub{attr(CKA_TOKEN, kTrue),       attr(CKA_PRIVATE, kFalse),
                                attr(CKA_VERIFY, kTrue),      attr(CKA_MODULUS_BITS, &bits, sizeof bits),
                                attr(CKA_PUBLIC_EXPONENT, exponent, sizeof exponent),
                                attr(CKA_ID, out.label),      attr(CKA_LABEL, out.label)};
  std::vector<CK_ATTRIBUTE> priv{attr(CKA_TOKEN, kTrue),     attr(CKA_PRIVATE, kTrue),   attr(CKA_SENSITIVE, kTrue),
                                 attr(CKA_EXTRACTABLE, kFalse), attr(CKA_SIGN, kTrue),   attr(CKA_ID, out.label),
                                 attr(CKA_LABEL, out.label)};
  CK_MECHANISM mechanism{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  CK_OBJECT_HANDLE pub_handle, priv_handle;
  check_ck(s.f()->C_GenerateKeyPair(s.get(), &mechanism, pub.data(), pub.size(), priv.data(), priv.size(),
                                    &pub_handle, &priv_handle),
           token->display(), "C_GenerateKeyPair (RSA-2048)");
  spdlog::info("keystore: {}: RSA-2048 key '{}' generated (sensitive, not extractable)", token->display(), out.label);

  // The public key, as the default provider's key, from the token's public object.
  AttributeMap a = read_attributes(s.f(), s.get(), pub_handle, {CKA_MODULUS, CKA_PUBLIC_EXPONENT});
  BIGNUM* n = BN_bin2bn(reinterpret_cast<const unsigned char*>(a[CKA_MODULUS].data()),
                        static_cast<int>(a[CKA_MODULUS].size()), nullptr);
  BIGNUM* e = BN_bin2bn(reinterpret_cast<const unsigned char*>(a[CKA_PUBLIC_EXPONENT].data()),
                        static_cast<int>(a[CKA_PUBLIC_EXPONENT].size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* fromdata = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* public_raw = nullptr;
  if (fromdata == nullptr || EVP_PKEY_fromdata_init(fromdata) != 1 ||
      EVP_PKEY_fromdata(fromdata, &public_raw, EVP_PKEY_PUBLIC_KEY, params) != 1)
    public_raw = nullptr;
  EVP_PKEY_CTX_free(fromdata);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(n);
  BN_free(e);
  if (public_raw == nullptr) throw KeystoreError(token->display() + ": cannot read the new public key");
  EvpPkeyPtr public_key(public_raw);

  // The request, signed in the token through our provider: tbs encoded, signed, then the signature set.
  auto libctx = std::make_shared<PrivateLibCtx>();
  auto token_key = std::make_shared<TokenKey>();
  token_key->token = token;
  token_key->ref = std::make_shared<KeyRef>();
  token_key->ref->id = out.label;
  token_key->ref->label = out.label;
  token_key->ref->handle = priv_handle;
  token_key->ref->epoch = token->epoch();
  token_key->algorithm = KeyAlgorithm::rsa;
  token_key->public_key.reset(EVP_PKEY_dup(public_key.get()));
  token_key->description = token->display() + " key '" + out.label + "'";
  EvpPkeyPtr signing_key = make_token_pkey(libctx->get(), token_key);

  X509_REQ* req = X509_REQ_new();
  X509_NAME* name = X509_NAME_new();
  auto add = [&](const char* field, const std::string& value) {
    if (!value.empty())
      X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0);
  };
  add("C", "FR");
  add("ST", subject.departement);
  add("O", subject.organisation);
  add("OU", subject.tenant_id.empty() ? tenant_id : subject.tenant_id);
  add("CN", subject.common_name);
  X509_REQ_set_version(req, 0);
  X509_REQ_set_subject_name(req, name);
  X509_NAME_free(name);
  X509_REQ_set_pubkey(req, public_key.get());
  X509_ALGOR* algorithm = X509_ALGOR_new();
  X509_ALGOR_set0(algorithm, OBJ_nid2obj(NID_sha256WithRSAEncryption), V_ASN1_NULL, nullptr);
  X509_REQ_set1_signature_algo(req, algorithm);
  X509_ALGOR_free(algorithm);
  unsigned char* tbs = nullptr;
  int tbs_length = i2d_re_X509_REQ_tbs(req, &tbs);
  std::vector<unsigned char> sig(static_cast<size_t>(EVP_PKEY_get_size(public_key.get())));
  size_t sig_length = sig.size();
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  const bool signed_ok =
      tbs_length > 0 &&
      EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", libctx->get(), nullptr, signing_key.get(), nullptr) == 1 &&
      EVP_DigestSign(md.get(), sig.data(), &sig_length, tbs, static_cast<size_t>(tbs_length)) == 1;
  OPENSSL_free(tbs);
  if (signed_ok) {
    ASN1_BIT_STRING* bits_sig = ASN1_BIT_STRING_new();
    ASN1_BIT_STRING_set(bits_sig, sig.data(), static_cast<int>(sig_length));
    // Zero unused bits, stated explicitly: without the flag the encoder derives "unused bits" from trailing
    // zero bits of the signature, and about one request in two would not verify (as ASN1_item_sign does).
    bits_sig->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    bits_sig->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    X509_REQ_set0_signature(req, bits_sig);
  }
  const bool verifies = signed_ok && X509_REQ_verify(req, public_key.get()) == 1;
  BIO* bio = BIO_new(BIO_s_mem());
  if (verifies) PEM_write_bio_X509_REQ(bio, req);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  out.csr_pem.assign(data != nullptr ? data : "", length > 0 ? static_cast<size_t>(length) : 0);
  BIO_free(bio);
  X509_REQ_free(req);
  ERR_clear_error();
  if (!verifies) throw KeystoreError(token->display() + ": the token could not sign the request for '" + out.label + "'");
  out.key_uri = key_uri(*token, out.label);
  return out;
}

std::string install_certificate_file(Token& token, const std::string& tenant_id, const std::string& purpose,
                                     const std::string& cert_file) {
  CertificateChain chain = read_certificate_chain(cert_file);
  if (!chain.leaf) throw KeystoreError(chain.error.empty() ? cert_file + ": no certificate" : chain.error);
  X509Ptr leaf = std::move(chain.leaf);
  if (std::string why = check_ou(leaf.get(), tenant_id); !why.empty()) throw KeystoreError(cert_file + ": " + why);
  RwSession s(token);
  std::map<std::string, std::string> ec_points;  // by CKA_ID, from public key objects
  std::vector<TokenKeyObject> keys;
  std::map<std::string, std::vector<CK_OBJECT_HANDLE>> certificates;  // by CKA_ID
  std::set<std::string> certificate_values;                           // DER of every certificate on the token
  for (CK_OBJECT_HANDLE h : find_objects(s.f(), s.get(), {}, token.display())) {
    AttributeMap a = read_attributes(s.f(), s.get(), h,
                                     {CKA_CLASS, CKA_ID, CKA_LABEL, CKA_KEY_TYPE, CKA_MODULUS, CKA_PUBLIC_EXPONENT,
                                      CKA_EC_PARAMS, CKA_EC_POINT});
    auto cls = attribute_ulong(a, CKA_CLASS);
    if (cls == CKO_CERTIFICATE) certificate_values.insert(read_attributes(s.f(), s.get(), h, {CKA_VALUE})[CKA_VALUE]);
    if (!is_generation_label(a[CKA_LABEL], tenant_id, purpose)) continue;
    if (cls == CKO_PUBLIC_KEY && a.count(CKA_EC_POINT)) ec_points[a[CKA_ID]] = a[CKA_EC_POINT];
    if (cls == CKO_CERTIFICATE) certificates[a[CKA_ID]].push_back(h);
    if (cls != CKO_PRIVATE_KEY) continue;
    TokenKeyObject k;
    k.handle = h;
    k.id = a[CKA_ID];
    k.label = a[CKA_LABEL];
    k.key_type = attribute_ulong(a, CKA_KEY_TYPE).value_or(CKK_VENDOR_DEFINED);
    k.modulus = a[CKA_MODULUS];
    k.public_exponent = a[CKA_PUBLIC_EXPONENT];
    k.ec_params = a[CKA_EC_PARAMS];
    keys.push_back(std::move(k));
  }
  if (keys.empty())
    throw KeystoreError(token.display() + ": no key of tenant " + tenant_id + " purpose " + purpose +
                        " (run `orgproxy keys generate` first)");
  for (TokenKeyObject& k : keys) {
    if (k.ec_point.empty() && ec_points.count(k.id)) k.ec_point = ec_points[k.id];
    if (!compare_public_parts(k, leaf.get()).empty()) continue;
    // A certificate re-issued for the same key replaces the one stored before.
    for (CK_OBJECT_HANDLE old : certificates[k.id]) s.f()->C_DestroyObject(s.get(), old);
    store_certificate(token, s, leaf.get(), k.id, k.label);
    // The intermediates of the file go to the token too (once each), so an identity configured without a
    // cert: file presents its whole chain: upstreams trust the IGC Santé root, not the ORGANISATIONS CA.
    for (int i = 0; i < sk_X509_num(chain.intermediates.get()); ++i) {
      X509* ca = sk_X509_value(chain.intermediates.get(), i);
      if (certificate_values.count(der_of(ca))) continue;
      store_ca_certificate(token, s, ca);
      certificate_values.insert(der_of(ca));
    }
    spdlog::info("keystore: {}: certificate installed for key '{}'", token.display(), k.label);
    return key_uri(token, k.label);
  }
  throw KeystoreError(cert_file + ": the certificate's public key matches none of the " +
                      std::to_string(keys.size()) + " key(s) of tenant " + tenant_id + " purpose " + purpose + " on " +
                      token.display());
}

}  // namespace orgproxy::keystore::admin_detail
