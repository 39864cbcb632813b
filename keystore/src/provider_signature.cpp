// Signature operations of the orgproxy-pkcs11 provider. The digest is computed in software (default
// provider); only the private-key step runs in the token, with the mechanism a hardened HSM accepts:
//   RSA PKCS#1 v1.5 -> CKM_RSA_PKCS over DigestInfo(hash)               (RFC 8017 §9.2)
//   RSA-PSS         -> CKM_RSA_PKCS_PSS {hash, MGF1(hash), salt}        (PKCS#11 v2.40 §2.1.14)
//   ECDSA           -> CKM_ECDSA over the hash; raw r||s re-encoded as DER Ecdsa-Sig-Value (RFC 5480)
// Raw RSA (CKM_RSA_X_509, padding "none") is never used: many HSMs and FIPS policies refuse it.
#include <cstring>
#include <string>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"
#include "provider.hpp"
#include "token.hpp"

namespace orgproxy::keystore {
namespace {

struct SignatureContext {
  OSSL_LIB_CTX* libctx = nullptr;
  KeyAlgorithm algorithm = KeyAlgorithm::rsa;
  std::shared_ptr<const TokenKey> key;
  EVP_MD* md = nullptr;             ///< hash of the message (null: `tbs` is used as given)
  EVP_MD* mgf1_md = nullptr;        ///< PSS MGF1 hash (null: same as md)
  EVP_MD_CTX* md_ctx = nullptr;     ///< digest_sign_* running hash
  int pad_mode = RSA_PKCS1_PADDING;
  int salt_length = RSA_PSS_SALTLEN_DIGEST;

  ~SignatureContext() {
    EVP_MD_free(md);
    EVP_MD_free(mgf1_md);
    EVP_MD_CTX_free(md_ctx);
  }
};

int raise(const std::string& message) {
  ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "%s", message.c_str());
  spdlog::warn("keystore: token signature: {}", message);
  return 0;
}

void* new_context(void* provctx, KeyAlgorithm algorithm) {
  auto* ctx = new SignatureContext;
  ctx->libctx = static_cast<ProviderContext*>(provctx)->libctx;
  ctx->algorithm = algorithm;
  return ctx;
}
void* new_rsa(void* provctx, const char*) { return new_context(provctx, KeyAlgorithm::rsa); }
void* new_ecdsa(void* provctx, const char*) { return new_context(provctx, KeyAlgorithm::ec); }
void free_context(void* ctx) { delete static_cast<SignatureContext*>(ctx); }

void* dup_context(void* from_ptr) {
  const auto* from = static_cast<const SignatureContext*>(from_ptr);
  auto* ctx = new SignatureContext;
  ctx->libctx = from->libctx;
  ctx->algorithm = from->algorithm;
  ctx->key = from->key;
  ctx->pad_mode = from->pad_mode;
  ctx->salt_length = from->salt_length;
  if (from->md != nullptr && EVP_MD_up_ref(from->md)) ctx->md = from->md;
  if (from->mgf1_md != nullptr && EVP_MD_up_ref(from->mgf1_md)) ctx->mgf1_md = from->mgf1_md;
  if (from->md_ctx != nullptr) {
    ctx->md_ctx = EVP_MD_CTX_new();
    if (ctx->md_ctx == nullptr || EVP_MD_CTX_copy_ex(ctx->md_ctx, from->md_ctx) != 1) {
      delete ctx;
      return nullptr;
    }
  }
  return ctx;
}

bool set_md(EVP_MD*& slot, OSSL_LIB_CTX* libctx, const char* name) {
  EVP_MD* md = EVP_MD_fetch(libctx, name, nullptr);
  if (md == nullptr) return false;
  EVP_MD_free(slot);
  slot = md;
  return true;
}

int set_params(void* ctx_ptr, const OSSL_PARAM params[]) {
  auto* ctx = static_cast<SignatureContext*>(ctx_ptr);
  if (params == nullptr) return 1;
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) {
    const char* name = nullptr;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !set_md(ctx->md, ctx->libctx, name)) return 0;
  }
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) {
    const char* name = nullptr;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !set_md(ctx->mgf1_md, ctx->libctx, name)) return 0;
  }
  // Padding mode and salt length arrive as integers (EVP_PKEY_CTX_set_rsa_*) or strings (ctrl_str and the
  // 3.0 ctrl-to-param translation); both are accepted.
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) {
    int mode = 0;
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
      const std::string s = static_cast<const char*>(p->data);
      if (s == OSSL_PKEY_RSA_PAD_MODE_PKCSV15) mode = RSA_PKCS1_PADDING;
      else if (s == OSSL_PKEY_RSA_PAD_MODE_PSS) mode = RSA_PKCS1_PSS_PADDING;
      else return raise("padding mode '" + s + "' is not offered (only pkcs1 and pss)");
    } else if (!OSSL_PARAM_get_int(p, &mode)) {
      return 0;
    }
    if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING)
      return raise("padding mode " + std::to_string(mode) + " is not offered (never raw RSA)");
    ctx->pad_mode = mode;
  }
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) {
    int salt = 0;
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
      const std::string s = static_cast<const char*>(p->data);
      if (s == OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) salt = RSA_PSS_SALTLEN_DIGEST;
      else if (s == OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) salt = RSA_PSS_SALTLEN_MAX;
      else if (s == OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) salt = RSA_PSS_SALTLEN_MAX;  // signing: auto = max
      else if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 6) salt = std::stoi(s);
      else return raise("PSS salt length '" + s + "' is not understood");
    } else if (!OSSL_PARAM_get_int(p, &salt)) {
      return 0;
    }
    ctx->salt_length = salt == RSA_PSS_SALTLEN_AUTO ? RSA_PSS_SALTLEN_MAX : salt;
  }
  return 1;
}

const OSSL_PARAM* settable_params(void*, void*) {
  static const OSSL_PARAM params[] = {OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
                                      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
                                      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
                                      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
                                      OSSL_PARAM_END};
  return params;
}

int get_params(void* ctx_ptr, OSSL_PARAM params[]) {
  auto* ctx = static_cast<SignatureContext*>(ctx_ptr);
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST))
    if (ctx->md == nullptr || !OSSL_PARAM_set_utf8_string(p, EVP_MD_get0_name(ctx->md))) return 0;
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) {
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
      if (!OSSL_PARAM_set_utf8_string(p, ctx->pad_mode == RSA_PKCS1_PSS_PADDING ? OSSL_PKEY_RSA_PAD_MODE_PSS
                                                                                  : OSSL_PKEY_RSA_PAD_MODE_PKCSV15))
        return 0;
    } else if (!OSSL_PARAM_set_int(p, ctx->pad_mode)) {
      return 0;
    }
  }
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN))
    if (p->data_type != OSSL_PARAM_UTF8_STRING && !OSSL_PARAM_set_int(p, ctx->salt_length)) return 0;
  return 1;
}

const OSSL_PARAM* gettable_params(void*, void*) {
  static const OSSL_PARAM params[] = {OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
                                      OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr),
                                      OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr), OSSL_PARAM_END};
  return params;
}

int sign_init(void* ctx_ptr, void* keydata, const OSSL_PARAM params[]) {
  auto* ctx = static_cast<SignatureContext*>(ctx_ptr);
  const auto* key = static_cast<const ProviderKey*>(keydata);
  if (key == nullptr || !key->token_key || key->algorithm != ctx->algorithm)
    return raise("not a token-held key of the right type");
  ctx->key = key->token_key;
  ctx->pad_mode = RSA_PKCS1_PADDING;
  ctx->salt_length = RSA_PSS_SALTLEN_DIGEST;
  return set_params(ctx, params);
}

int digest_sign_init(void* ctx_ptr, const char* mdname, void* keydata, const OSSL_PARAM params[]) {
  auto* ctx = static_cast<SignatureContext*>(ctx_ptr);
  if (!sign_init(ctx, keydata, params)) return 0;
  if (!set_md(ctx->md, ctx->libctx, mdname != nullptr ? mdname : "SHA256"))
    return raise(std::string("digest ") + (mdname ? mdname : "SHA256") + " is not available");
  if (ctx->md_ctx == nullptr) ctx->md_ctx = EVP_MD_CTX_new();
  return ctx->md_ctx != nullptr && EVP_DigestInit_ex2(ctx->md_ctx, ctx->md, nullptr) == 1;
}

int digest_sign_update(void* ctx_ptr, const unsigned char* data, size_t length) {
  auto* ctx = static_cast<SignatureContext*>(ctx_ptr);
  return ctx->md_ctx != nullptr && EVP_DigestUpdate(ctx->md_ctx, data, length) == 1;
}

/// DigestInfo DER prefixes of RFC 8017 §9.2 note 1 (the hash value follows).
std::string digest_info_prefix(const EVP_MD* md) {
  if (EVP_MD_is_a(md, "SHA256")) return std::string("\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20", 19);
  if (EVP_MD_is_a(md, "SHA384")) return std::string("\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30", 19);
  if (EVP_MD_is_a(md, "SHA512")) return std::string("\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40", 19);
  if (EVP_MD_is_a(md, "SHA224")) return std::string("\x30\x2d\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x04\x05\x00\x04\x1c", 19);
  if (EVP_MD_is_a(md, "SHA1")) return std::string("\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14", 15);
  return {};
}

bool pss_hash(const EVP_MD* md, CK_MECHANISM_TYPE& hash, CK_RSA_PKCS_MGF_TYPE& mgf) {
  if (EVP_MD_is_a(md, "SHA256")) { hash = CKM_SHA256; mgf = CKG_MGF1_SHA256; return true; }
  if (EVP_MD_is_a(md, "SHA384")) { hash = CKM_SHA384; mgf = CKG_MGF1_SHA384; return true; }
  if (EVP_MD_is_a(md, "SHA512")) { hash = CKM_SHA512; mgf = CKG_MGF1_SHA512; return true; }
  if (EVP_MD_is_a(md, "SHA224")) { hash = CKM_SHA224; mgf = CKG_MGF1_SHA224; return true; }
  if (EVP_MD_is_a(md, "SHA1")) { hash = CKM_SHA_1; mgf = CKG_MGF1_SHA1; return true; }
  return false;
}

/// Signs `digest` (or, without a digest algorithm, the message as given) in the token.
int sign_digest(SignatureContext* ctx, const unsigned char* digest, size_t digest_length, unsigned char* sig,
                size_t* siglen, size_t sigsize) {
  const TokenKey& key = *ctx->key;
  const size_t max_size = static_cast<size_t>(EVP_PKEY_get_size(key.public_key.get()));
  std::vector<unsigned char> out;
  try {
    if (ctx->algorithm == KeyAlgorithm::ec) {
      // CKM_ECDSA signs the leftmost bits of the hash; trim to the order size ourselves (tokens differ).
      const size_t field = static_cast<size_t>((EVP_PKEY_get_bits(key.public_key.get()) + 7) / 8);
      CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
      std::vector<unsigned char> raw =
          key.token->sign(*key.ref, mech, digest, std::min(digest_length, field), 2 * field);
      if (raw.size() % 2 != 0) return raise(key.description + ": odd ECDSA signature length");
      ECDSA_SIG* es = ECDSA_SIG_new();
      BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(raw.size() / 2), nullptr);
      BIGNUM* s = BN_bin2bn(raw.data() + raw.size() / 2, static_cast<int>(raw.size() / 2), nullptr);
      if (es == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return raise("cannot encode the ECDSA signature");
      }
      int der_length = i2d_ECDSA_SIG(es, nullptr);
      out.resize(der_length > 0 ? static_cast<size_t>(der_length) : 0);
      unsigned char* p = out.data();
      i2d_ECDSA_SIG(es, &p);
      ECDSA_SIG_free(es);
    } else if (ctx->pad_mode == RSA_PKCS1_PSS_PADDING) {
      CK_RSA_PKCS_PSS_PARAMS pss{};
      CK_RSA_PKCS_MGF_TYPE unused_mgf = 0;
      if (ctx->md == nullptr || !pss_hash(ctx->md, pss.hashAlg, unused_mgf))
        return raise("RSA-PSS needs a SHA-1/SHA-2 digest");
      if (!pss_hash(ctx->mgf1_md != nullptr ? ctx->mgf1_md : ctx->md, unused_mgf, pss.mgf))
        return raise("unsupported MGF1 digest");
      if (!key.pss_available) return raise(key.description + ": the token does not offer CKM_RSA_PKCS_PSS");
      const int md_size = EVP_MD_get_size(ctx->md);
      int salt = ctx->salt_length;
      if (salt == RSA_PSS_SALTLEN_DIGEST) salt = md_size;
      else if (salt == RSA_PSS_SALTLEN_MAX) salt = static_cast<int>(max_size) - md_size - 2;
      if (salt < 0 || static_cast<size_t>(digest_length) != static_cast<size_t>(md_size))
        return raise("bad PSS salt length or digest length");
      pss.sLen = static_cast<CK_ULONG>(salt);
      CK_MECHANISM mech{CKM_RSA_PKCS_PSS, &pss, sizeof pss};
      out = key.token->sign(*key.ref, mech, digest, digest_length, max_size);
    } else {
      std::string input;
      if (ctx->md != nullptr && !EVP_MD_is_a(ctx->md, "MD5-SHA1")) {
        input = digest_info_prefix(ctx->md);
        if (input.empty()) return raise(std::string("no DigestInfo for ") + EVP_MD_get0_name(ctx->md));
      }
      input.append(reinterpret_cast<const char*>(digest), digest_length);
      CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
      out = key.token->sign(*key.ref, mech, reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                            max_size);
    }
  } catch (const KeystoreError& e) {
    return raise(e.what());
  }
  if (out.size() > sigsize) return raise("signature buffer too small");
  std::memcpy(sig, out.data(), out.size());
  *siglen = out.size();
  return 1;
}

int sign(void* ctx_ptr, unsigned char* sig, size_t* siglen, size_t sigsize, const unsigned char* tbs, size_t tbslen) {
  auto* ctx = static_cast<SignatureContext*>(ctx_ptr);
  if (!ctx->key) return raise("sign without sign_init");
  if (sig == nullptr) {
    *siglen = static_cast<size_t>(EVP_PKEY_get_size(ctx->key->public_key.get()));
    return 1;
  }
  if (ctx->md != nullptr && tbslen != static_cast<size_t>(EVP_MD_get_size(ctx->md)))
    return raise("digest length does not match the digest algorithm");
  return sign_digest(ctx, tbs, tbslen, sig, siglen, sigsize);
}

int digest_sign_final(void* ctx_ptr, unsigned char* sig, size_t* siglen, size_t sigsize) {
  auto* ctx = static_cast<SignatureContext*>(ctx_ptr);
  if (!ctx->key || ctx->md_ctx == nullptr) return raise("digest_sign_final without digest_sign_init");
  if (sig == nullptr) {
    *siglen = static_cast<size_t>(EVP_PKEY_get_size(ctx->key->public_key.get()));
    return 1;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (EVP_DigestFinal_ex(ctx->md_ctx, digest, &digest_length) != 1) return 0;
  return sign_digest(ctx, digest, digest_length, sig, siglen, sigsize);
}

#define ORGPROXY_FN(id, f) {id, reinterpret_cast<void (*)()>(f)}
#define ORGPROXY_SIGNATURE_COMMON                                                 \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_FREECTX, free_context),                         \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_DUPCTX, dup_context),                           \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, sign_init),                          \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_SIGN, sign),                                    \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, digest_sign_init),            \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, digest_sign_update),        \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, digest_sign_final),          \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, get_params),                    \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, gettable_params),          \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, set_params),                    \
  ORGPROXY_FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, settable_params),          \
  {0, nullptr}

}  // namespace

const OSSL_DISPATCH kSignatureRsaFunctions[] = {ORGPROXY_FN(OSSL_FUNC_SIGNATURE_NEWCTX, new_rsa),
                                                ORGPROXY_SIGNATURE_COMMON};
const OSSL_DISPATCH kSignatureEcdsaFunctions[] = {ORGPROXY_FN(OSSL_FUNC_SIGNATURE_NEWCTX, new_ecdsa),
                                                  ORGPROXY_SIGNATURE_COMMON};

}  // namespace orgproxy::keystore
