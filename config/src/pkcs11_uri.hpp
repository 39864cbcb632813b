// Syntax check of RFC 7512 PKCS#11 URIs naming a private key. Only the syntax and the placement of PINs
// are checked here; finding the object on a token is the keystore's job.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace orgproxy::config::detail {

struct UriCheck {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

/// Checks a key URI (RFC 7512 §2.3): scheme `pkcs11:`; path attributes `name=value` separated by ';',
/// query attributes separated by '&'; every attribute known (or vendor `x-`), at most once; characters
/// outside the RFC's sets percent-encoded; `pin-value` only in the query and only when `allow_pin_value`;
/// `type`, when present, is `private`. `slot-id` draws a warning (slot ids move when a token is
/// re-initialised; name the token by label or serial). Messages never contain a PIN.
UriCheck check_pkcs11_key_uri(std::string_view uri, bool allow_pin_value);

}  // namespace orgproxy::config::detail
