// Identities: the certificate chain of one (tenant, purpose) and its token-held key; the load-time checks.
// Internal to the keystore.
#pragma once

#include <unordered_map>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "orgproxy/keystore/keystore.hpp"
#include "provider.hpp"
#include "token.hpp"

namespace orgproxy::keystore {

/// A certificate chain file, ordered: the leaf, then its issuer, then that one's issuer...
struct CertificateChain {
  X509Ptr leaf;
  X509StackPtr intermediates;
  std::string error;  ///< non-empty when the file is unusable (then leaf is null)
};

/// Reads a PEM file of certificates in any order. The leaf is the one certificate that issued no other in
/// the file; intermediates follow issuer links from it. Self-signed certificates (a root) are dropped: the
/// peer must anchor on its own trust, and sending the root only costs bytes. Certificates that are not on
/// the leaf's path make the file an error (it is not one chain).
CertificateChain read_certificate_chain(const std::string& file);

/// The CA certificates (X509_check_ca) met during one identity load, by their DER: the sites of a group
/// share one or two intermediates (IGC Santé's ORG CA), which are then parsed once (an OpenSSL 3 X509
/// decode costs tens of microseconds, mostly its public key) and held once (several KB each) instead of
/// once per site. Leaves are not kept. Not thread-safe; lives for one load.
class CaCertificateCache {
 public:
  /// The certificate of `der` (a new reference), parsed unless a CA certificate of the same DER was met;
  /// nullptr when it does not parse.
  X509Ptr get(const unsigned char* der, long length);

 private:
  std::unordered_map<std::string, X509Ptr> by_der_;
};

/// As read_certificate_chain(file), parsing through `cache` (same result, same errors).
CertificateChain read_certificate_chain(const std::string& file, CaCertificateCache& cache);

/// The chain of a token-held key from the token's own certificate objects, for an identity without a
/// certificate file (what `orgproxy keys install-cert` and `keys import` store). The leaf is a certificate
/// whose CKA_ID is the key's and whose public key is the key's; of several (a re-issued certificate), the
/// newest by notBefore among those valid at `now`, else the newest. Intermediates follow issuer links through
/// the token's other certificates; self-signed ones (roots) are left out, as read_certificate_chain does.
/// `error` says why when no leaf qualifies.
CertificateChain certificate_chain_from_token(const std::vector<TokenCertObject>& certificates,
                                              const TokenKeyObject& key, std::chrono::system_clock::time_point now);

/// Certificate checks of DESIGN.md: subject OU == `spec.tenant_id` (exactly one OU, exact string compare),
/// INSi purposes' CN (`INSI-AUTO` / `INSI-MANU`), clientAuth usage for TLS purposes, validity window at `now`.
/// Returns "" or the reason.
std::string check_certificate(X509* leaf, const IdentitySpec& spec, std::chrono::system_clock::time_point now);

/// Whether the token key's public part equals the certificate's. Returns "" when equal, the reason when
/// not, or "?" when the token does not reveal enough to compare (the caller then proves it by a signature).
std::string compare_public_parts(const TokenKeyObject& key, X509* leaf);

/// Signs a fixed message with `key` and verifies it with the certificate's public key. Returns "" or why.
std::string prove_key_by_signature(EVP_PKEY* key, X509* leaf, OSSL_LIB_CTX* libctx);

/// The loaded identity (the Identity interface of keystore.hpp).
class LoadedIdentity final : public Identity {
 public:
  LoadedIdentity(std::shared_ptr<PrivateLibCtx> libctx, const IdentitySpec& spec, CertificateChain chain,
                 std::shared_ptr<const TokenKey> token_key, EvpPkeyPtr private_key, bool supports_pss);

  const std::string& tenant_id() const override { return tenant_id_; }
  const std::string& purpose() const override { return purpose_; }
  X509* certificate() const override { return leaf_.get(); }
  STACK_OF(X509) * intermediates() const override { return intermediates_.get(); }
  EVP_PKEY* private_key() const override { return private_key_.get(); }
  std::chrono::system_clock::time_point not_before() const override { return not_before_; }
  std::chrono::system_clock::time_point not_after() const override { return not_after_; }
  const std::string& subject() const override { return subject_; }
  const std::string& serial_hex() const override { return serial_hex_; }
  bool usable() const override;
  bool supports_pss() const override { return supports_pss_; }

 private:
  // Declared first so it is destroyed last: every OpenSSL object below may belong to this library context.
  std::shared_ptr<PrivateLibCtx> libctx_;
  std::string tenant_id_, purpose_, subject_, serial_hex_;
  X509Ptr leaf_;
  X509StackPtr intermediates_;
  std::shared_ptr<const TokenKey> token_key_;  ///< null for a PEM key file
  EvpPkeyPtr private_key_;
  std::chrono::system_clock::time_point not_before_, not_after_;
  bool supports_pss_;
};

}  // namespace orgproxy::keystore
