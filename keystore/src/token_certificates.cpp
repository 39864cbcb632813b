// Identities whose certificate lives on the token next to its key (no `cert:` file in the configuration).
#include <ctime>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "identity.hpp"

namespace orgproxy::keystore {
namespace {

X509Ptr parse_der(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  return cert;
}

bool valid_at(X509* cert, std::time_t t) {
  return X509_cmp_time(X509_get0_notBefore(cert), &t) <= 0 && X509_cmp_time(X509_get0_notAfter(cert), &t) >= 0;
}

// True when `a` starts after `b` (ASN1_TIME_compare: -1, 0, 1).
bool newer(X509* a, X509* b) { return ASN1_TIME_compare(X509_get0_notBefore(a), X509_get0_notBefore(b)) > 0; }

}  // namespace

CertificateChain certificate_chain_from_token(const std::vector<TokenCertObject>& certificates,
                                              const TokenKeyObject& key, std::chrono::system_clock::time_point now) {
  CertificateChain chain;
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::vector<X509Ptr> others;
  int with_id = 0;
  for (const TokenCertObject& object : certificates) {
    X509Ptr cert = parse_der(object.der);
    if (!cert) continue;
    if (object.id != key.id || key.id.empty()) {
      others.push_back(std::move(cert));
      continue;
    }
    ++with_id;
    const std::string mismatch = compare_public_parts(key, cert.get());
    if (!mismatch.empty() && mismatch != "?") continue;  // "?" is settled by the caller's test signature
    const bool better = !chain.leaf || (valid_at(cert.get(), t) && !valid_at(chain.leaf.get(), t)) ||
                        (valid_at(cert.get(), t) == valid_at(chain.leaf.get(), t) && newer(cert.get(), chain.leaf.get()));
    if (better) chain.leaf = std::move(cert);
  }
  if (!chain.leaf) {
    chain.error = with_id == 0 ? "no certificate on the token has the key's CKA_ID (install one with "
                                 "`orgproxy keys install-cert`, or name a cert: file)"
                               : std::to_string(with_id) + " certificate(s) on the token have the key's CKA_ID, "
                                                           "none for this key";
    return chain;
  }
  chain.intermediates.reset(sk_X509_new_null());
  X509* current = chain.leaf.get();
  for (bool found = true; found && sk_X509_num(chain.intermediates.get()) < 8;) {
    found = false;
    for (X509Ptr& c : others) {
      if (!c || X509_check_issued(c.get(), current) != X509_V_OK || X509_check_issued(c.get(), c.get()) == X509_V_OK)
        continue;
      current = c.get();
      sk_X509_push(chain.intermediates.get(), c.release());
      found = true;
      break;
    }
  }
  return chain;
}

}  // namespace orgproxy::keystore
