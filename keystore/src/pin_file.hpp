// Reading the user PIN of the tokens from a file (systemd credential, /run/secrets...).
#pragma once

#include <string>

namespace orgproxy::keystore {

/// `credential:NAME` → $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=); any other text is a path.
/// Throws KeystoreError when the credential name is not one file name or the variable is unset.
std::string resolve_pin_path(const std::string& path);

/// Reads the user PIN from `path` (after resolve_pin_path). Exactly one trailing "\n" or "\r\n" is stripped; nothing else (leading or
/// inner spaces, a second newline) is touched, because PKCS#11 PINs are arbitrary UTF-8 (field case C21).
/// Throws KeystoreError naming the file (never its content) when it cannot be read or is empty.
std::string read_pin_file(const std::string& path);

}  // namespace orgproxy::keystore
