// Key management of the orgproxy-pkcs11 provider: token-held keys ("RSA", "EC"). Private parts are never
// exported (they are not here to export); public parts are, and public keys can be imported and matched, so
// that X509_check_private_key / SSL_CTX_check_private_key can compare a certificate with a token key.
#include <cstring>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "provider.hpp"

namespace orgproxy::keystore {
namespace {

ProviderKey* new_key(void* provctx, KeyAlgorithm algorithm) {
  auto* key = new ProviderKey;
  key->algorithm = algorithm;
  key->libctx = static_cast<ProviderContext*>(provctx)->libctx;
  return key;
}
void* new_rsa(void* provctx) { return new_key(provctx, KeyAlgorithm::rsa); }
void* new_ec(void* provctx) { return new_key(provctx, KeyAlgorithm::ec); }

void free_key(void* keydata) { delete static_cast<ProviderKey*>(keydata); }

int has(const void* keydata, int selection) {
  const auto* key = static_cast<const ProviderKey*>(keydata);
  if (key == nullptr) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && !key->token_key) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) && !key->public_key) return 0;
  return 1;
}

int match(const void* keydata1, const void* keydata2, int selection) {
  const auto* a = static_cast<const ProviderKey*>(keydata1);
  const auto* b = static_cast<const ProviderKey*>(keydata2);
  if (!a->public_key || !b->public_key) return 0;
  if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) return EVP_PKEY_eq(a->public_key.get(), b->public_key.get()) == 1;
  return EVP_PKEY_parameters_eq(a->public_key.get(), b->public_key.get()) == 1;
}

int import(void* keydata, int selection, const OSSL_PARAM params[]) {
  auto* key = static_cast<ProviderKey*>(keydata);
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, kTokenKeyParam)) {
    if (p->data_type != OSSL_PARAM_OCTET_STRING || p->data_size != sizeof(std::shared_ptr<const TokenKey>))
      return 0;
    auto token_key = *static_cast<const std::shared_ptr<const TokenKey>*>(p->data);
    if (!token_key || token_key->algorithm != key->algorithm) return 0;
    key->public_key = public_copy(key->libctx, token_key->public_key.get());
    if (!key->public_key) return 0;
    key->token_key = std::move(token_key);
    return 1;
  }
  // Anything else is a public key (e.g. a certificate's, exported by the default provider for a comparison).
  // Private key material is refused: keys enter this provider only as token references.
  if (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) != nullptr ||
      OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_D) != nullptr)
    return 0;
  if (!(selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY)) return 0;
  const char* type = key->algorithm == KeyAlgorithm::ec ? "EC" : "RSA";
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(key->libctx, type, "provider=default"));
  EVP_PKEY* pub = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pub, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) != 1)
    return 0;
  key->public_key.reset(pub);
  return 1;
}

const OSSL_PARAM* rsa_import_types(int) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                     OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                     OSSL_PARAM_octet_string(kTokenKeyParam, nullptr, 0), OSSL_PARAM_END};
  return types;
}
const OSSL_PARAM* ec_import_types(int) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
                                     OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                     OSSL_PARAM_octet_string(kTokenKeyParam, nullptr, 0), OSSL_PARAM_END};
  return types;
}

int export_key(void* keydata, int selection, OSSL_CALLBACK* callback, void* cbarg) {
  const auto* key = static_cast<const ProviderKey*>(keydata);
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) || !key->public_key) return 0;  // never leaves the token
  OSSL_PARAM* params = nullptr;
  if (EVP_PKEY_todata(key->public_key.get(), EVP_PKEY_PUBLIC_KEY, &params) != 1) return 0;
  int ok = callback(params, cbarg);
  OSSL_PARAM_free(params);
  return ok;
}

const OSSL_PARAM* rsa_export_types(int selection) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                     OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0), OSSL_PARAM_END};
  return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) ? nullptr : types;
}
const OSSL_PARAM* ec_export_types(int selection) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
                                     OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0), OSSL_PARAM_END};
  return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) ? nullptr : types;
}

/// bits, security-bits, max-size, RSA n/e, EC group/encoded point/point format, default digest: answered
/// by the default provider's copy of the public part (it holds no private material to leak).
int get_params(void* keydata, OSSL_PARAM params[]) {
  const auto* key = static_cast<const ProviderKey*>(keydata);
  if (!key->public_key) return 0;
  for (OSSL_PARAM* p = params; p->key != nullptr; ++p)
    if (std::strcmp(p->key, OSSL_PKEY_PARAM_PRIV_KEY) == 0 || std::strcmp(p->key, OSSL_PKEY_PARAM_RSA_D) == 0)
      return 0;
  return EVP_PKEY_get_params(key->public_key.get(), params);
}

const OSSL_PARAM* rsa_gettable_params(void*) {
  static const OSSL_PARAM params[] = {OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
                                      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
                                      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
                                      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
                                      OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                      OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                      OSSL_PARAM_END};
  return params;
}
const OSSL_PARAM* ec_gettable_params(void*) {
  static const OSSL_PARAM params[] = {
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
      OSSL_PARAM_END};
  return params;
}

/// The signature operation's name for an EC key is "ECDSA", not "EC": without it OpenSSL finds no
/// signature implementation and the handshake fails with an empty error queue (notes/pkcs11-bridge.md).
const char* ec_operation_name(int operation_id) { return operation_id == OSSL_OP_SIGNATURE ? "ECDSA" : "EC"; }
const char* rsa_operation_name(int) { return "RSA"; }

void* dup_key(const void* keydata, int selection) {
  const auto* from = static_cast<const ProviderKey*>(keydata);
  auto* key = new ProviderKey;
  key->algorithm = from->algorithm;
  key->libctx = from->libctx;
  if (from->public_key) {
    EVP_PKEY_up_ref(from->public_key.get());
    key->public_key.reset(from->public_key.get());
  }
  if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) key->token_key = from->token_key;
  return key;
}

#define ORGPROXY_FN(id, f) {id, reinterpret_cast<void (*)()>(f)}

}  // namespace

const OSSL_DISPATCH kKeymgmtRsaFunctions[] = {ORGPROXY_FN(OSSL_FUNC_KEYMGMT_NEW, new_rsa),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_FREE, free_key),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_HAS, has),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_MATCH, match),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_IMPORT, import),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, rsa_import_types),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_EXPORT, export_key),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, rsa_export_types),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, get_params),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, rsa_gettable_params),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, rsa_operation_name),
                                              ORGPROXY_FN(OSSL_FUNC_KEYMGMT_DUP, dup_key),
                                              {0, nullptr}};

const OSSL_DISPATCH kKeymgmtEcFunctions[] = {ORGPROXY_FN(OSSL_FUNC_KEYMGMT_NEW, new_ec),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_FREE, free_key),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_HAS, has),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_MATCH, match),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_IMPORT, import),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, ec_import_types),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_EXPORT, export_key),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, ec_export_types),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, get_params),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, ec_gettable_params),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, ec_operation_name),
                                             ORGPROXY_FN(OSSL_FUNC_KEYMGMT_DUP, dup_key),
                                             {0, nullptr}};

}  // namespace orgproxy::keystore
