// Looking for keys on the tokens without loading identities: which configured key references exist, and
// whether each matches a certificate. For offline inventories (`orgproxy sites inventory`), where a site's key
// may exist long before its certificate does.
#pragma once

#include <string>
#include <vector>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

/// One key reference to look for, with the certificate it should match (optional).
struct KeyProbeRequest {
  std::string key;        ///< RFC 7512 pkcs11: URI (or a PEM key file path when options allow key files)
  std::string cert_file;  ///< PEM certificate (leaf first) to compare with the key; "" = presence only
};

/// What was found for one request.
struct KeyProbe {
  bool found = false;    ///< exactly one private key matches the reference
  std::string error;     ///< why not found: no token / no key / several keys / bad URI (never a PIN)
  std::string where;     ///< "token '...' (serial ..., module ...) key id=%01 label '...'" when found
  /// Only when found and cert_file was given: "" = the certificate's public key is the key's, "?" = the
  /// token does not reveal enough to compare, else why they differ or why the certificate is unreadable.
  std::string mismatch;
};

/// Opens the modules of `options` (p11-kit managed mode), logs in to the tokens that the references name
/// (PIN file of `options`, or the URI's pin-source/pin-value when allowed), searches each token's private
/// keys once (PKCS#11 v2.40 §5.8 C_FindObjects) and answers every request in order. Throws KeystoreError
/// only for what stops the whole probe (module not loadable, PIN refused, PIN file unreadable); a reference
/// that finds nothing comes back with `error` set.
std::vector<KeyProbe> probe_keys(const KeystoreOptions& options, const std::vector<KeyProbeRequest>& requests);

}  // namespace orgproxy::keystore
