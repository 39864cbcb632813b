// Provider entry point, private library context, and building token-backed EVP_PKEYs.
#include "provider.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {
namespace {

// Names as the default provider spells them, so EVP_PKEY_is_a(key, "RSA"/"EC") holds for the TLS stack.
const OSSL_ALGORITHM kKeymgmt[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", kProviderQuery, kKeymgmtRsaFunctions, "token-held RSA key"},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", kProviderQuery, kKeymgmtEcFunctions, "token-held EC key"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kSignature[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", kProviderQuery, kSignatureRsaFunctions, "RSA signing in a token"},
    {"ECDSA", kProviderQuery, kSignatureEcdsaFunctions, "ECDSA signing in a token"},
    {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM* query_operation(void*, int operation_id, int* no_cache) {
  *no_cache = 0;
  switch (operation_id) {
    case OSSL_OP_KEYMGMT: return kKeymgmt;
    case OSSL_OP_SIGNATURE: return kSignature;
    default: return nullptr;
  }
}

void teardown(void* provctx) { delete static_cast<ProviderContext*>(provctx); }

const OSSL_PARAM* gettable_params(void*) {
  static const OSSL_PARAM params[] = {OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, nullptr, 0),
                                      OSSL_PARAM_END};
  return params;
}

int get_params(void*, OSSL_PARAM params[]) {
  OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
  return p == nullptr || OSSL_PARAM_set_utf8_ptr(p, "orgproxy PKCS#11 bridge");
}

const OSSL_DISPATCH kProviderFunctions[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, reinterpret_cast<void (*)()>(teardown)},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, reinterpret_cast<void (*)()>(query_operation)},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, reinterpret_cast<void (*)()>(gettable_params)},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, reinterpret_cast<void (*)()>(get_params)},
    {0, nullptr}};

int provider_init(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in, const OSSL_DISPATCH** out,
                  void** provctx) {
  OSSL_FUNC_core_get_libctx_fn* get_libctx = nullptr;
  for (; in->function_id != 0; ++in)
    if (in->function_id == OSSL_FUNC_CORE_GET_LIBCTX) get_libctx = OSSL_FUNC_core_get_libctx(in);
  if (get_libctx == nullptr) return 0;
  // A built-in provider runs in the same libcrypto: its core context is the OSSL_LIB_CTX itself (this is
  // how OpenSSL's own built-in providers use it).
  auto* ctx = new ProviderContext{reinterpret_cast<OSSL_LIB_CTX*>(get_libctx(handle))};
  *provctx = ctx;
  *out = kProviderFunctions;
  return 1;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

PrivateLibCtx::PrivateLibCtx() {
  libctx_ = OSSL_LIB_CTX_new();
  if (libctx_ == nullptr) throw KeystoreError("OSSL_LIB_CTX_new failed");
  if (OSSL_PROVIDER_add_builtin(libctx_, kProviderName, provider_init) != 1 ||
      (default_ = OSSL_PROVIDER_load(libctx_, "default")) == nullptr ||
      (ours_ = OSSL_PROVIDER_load(libctx_, kProviderName)) == nullptr ||
      EVP_set_default_properties(libctx_, "?provider=default") != 1) {
    std::string why = openssl_error();
    release();
    throw KeystoreError("cannot set up the private OpenSSL library context: " + why);
  }
}

PrivateLibCtx::~PrivateLibCtx() { release(); }

void PrivateLibCtx::release() noexcept {
  if (ours_ != nullptr) OSSL_PROVIDER_unload(ours_);
  if (default_ != nullptr) OSSL_PROVIDER_unload(default_);
  if (libctx_ != nullptr) OSSL_LIB_CTX_free(libctx_);
  ours_ = default_ = nullptr;
  libctx_ = nullptr;
}

EvpPkeyPtr public_copy(OSSL_LIB_CTX* libctx, const EVP_PKEY* key) {
  OSSL_PARAM* params = nullptr;
  if (EVP_PKEY_todata(key, EVP_PKEY_PUBLIC_KEY, &params) != 1) return nullptr;
  const char* type = EVP_PKEY_is_a(key, "EC") ? "EC" : "RSA";
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(libctx, type, "provider=default"));
  EVP_PKEY* out = nullptr;
  bool ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
            EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_PUBLIC_KEY, params) == 1;
  OSSL_PARAM_free(params);
  if (!ok) return nullptr;
  return EvpPkeyPtr(out);
}

EvpPkeyPtr make_token_pkey(OSSL_LIB_CTX* libctx, std::shared_ptr<const TokenKey> key) {
  const char* type = key->algorithm == KeyAlgorithm::ec ? "EC" : "RSA";
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(libctx, type, kProviderQuery));
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(kTokenKeyParam, &key, sizeof key), OSSL_PARAM_END};
  EVP_PKEY* out = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_KEYPAIR, params) != 1)
    throw KeystoreError(key->description + ": cannot build the OpenSSL key: " + openssl_error());
  return EvpPkeyPtr(out);
}

}  // namespace orgproxy::keystore
