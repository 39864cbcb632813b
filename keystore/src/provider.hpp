// orgproxy's own OpenSSL 3 provider ("orgproxy-pkcs11"), registered with OSSL_PROVIDER_add_builtin in a
// private OSSL_LIB_CTX beside the "default" provider (notes/pkcs11-bridge.md). Its key management holds a
// reference to a key in a PKCS#11 token; its signature operations hash in software and sign the digest in the
// token (CKM_RSA_PKCS over a DigestInfo, CKM_RSA_PKCS_PSS, CKM_ECDSA), never raw RSA. Internal to the keystore.
#pragma once

#include <memory>
#include <string>

#include <openssl/core_dispatch.h>
#include <openssl/types.h>

#include "orgproxy/keystore/ossl_ptr.hpp"
#include "pkcs11.hpp"

namespace orgproxy::keystore {

class Token;
struct KeyRef;

inline constexpr const char* kProviderName = "orgproxy-pkcs11";
inline constexpr const char* kProviderQuery = "provider=orgproxy-pkcs11";
/// Private import parameter: octet string holding a std::shared_ptr<const TokenKey> (copied by the import).
inline constexpr const char* kTokenKeyParam = "orgproxy-token-key";

enum class KeyAlgorithm { rsa, ec };

/// A private key kept in a token, as the provider sees it. The public part comes from the certificate,
/// after the load checked that it equals the token's (so a mismatching key is never built).
struct TokenKey {
  std::shared_ptr<Token> token;
  std::shared_ptr<KeyRef> ref;  ///< handle + what finds it again after a recovery
  KeyAlgorithm algorithm = KeyAlgorithm::rsa;
  EvpPkeyPtr public_key;  ///< public part, default library context
  bool pss_available = false;  ///< the token offers CKM_RSA_PKCS_PSS
  std::string description;     ///< "token 'x' id=%01" for messages
};

/// The private library context: "default" + "orgproxy-pkcs11". Its default property query prefers the
/// default provider ("?provider=default"), so only keys built explicitly through our key management (and
/// their signature operations, fetched from the key's provider) use the token; certificate parsing, digests
/// and the server's public keys stay with the default provider.
class PrivateLibCtx {
 public:
  PrivateLibCtx();  ///< throws KeystoreError
  ~PrivateLibCtx();
  PrivateLibCtx(const PrivateLibCtx&) = delete;
  PrivateLibCtx& operator=(const PrivateLibCtx&) = delete;
  OSSL_LIB_CTX* get() const { return libctx_; }

 private:
  void release() noexcept;

  OSSL_LIB_CTX* libctx_ = nullptr;
  OSSL_PROVIDER* default_ = nullptr;
  OSSL_PROVIDER* ours_ = nullptr;
};

/// An EVP_PKEY of `libctx` whose private operations run in the token (EVP_PKEY_fromdata through our key
/// management). Throws KeystoreError.
EvpPkeyPtr make_token_pkey(OSSL_LIB_CTX* libctx, std::shared_ptr<const TokenKey> key);

/// A copy of the public part of `key` as a key of the default provider of `libctx`; nullptr on failure.
EvpPkeyPtr public_copy(OSSL_LIB_CTX* libctx, const EVP_PKEY* key);

// Dispatch tables (provider_keymgmt.cpp, provider_signature.cpp).
extern const OSSL_DISPATCH kKeymgmtRsaFunctions[];
extern const OSSL_DISPATCH kKeymgmtEcFunctions[];
extern const OSSL_DISPATCH kSignatureRsaFunctions[];
extern const OSSL_DISPATCH kSignatureEcdsaFunctions[];

/// The provider context: the library context the provider was activated in.
struct ProviderContext {
  OSSL_LIB_CTX* libctx = nullptr;
};

/// Key management's key object.
struct ProviderKey {
  KeyAlgorithm algorithm = KeyAlgorithm::rsa;
  OSSL_LIB_CTX* libctx = nullptr;
  std::shared_ptr<const TokenKey> token_key;  ///< null for a public key imported to be compared
  EvpPkeyPtr public_key;                      ///< default provider of `libctx`
};

}  // namespace orgproxy::keystore
