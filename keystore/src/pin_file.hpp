// Reading the user PIN of the tokens from a file (systemd credential, /run/secrets...).
#pragma once

#include <string>

namespace orgproxy::keystore {

/// Reads the user PIN from `path`. Exactly one trailing "\n" or "\r\n" is stripped; nothing else (leading or
/// inner spaces, a second newline) is touched, because PKCS#11 PINs are arbitrary UTF-8 (field case C21).
/// Throws KeystoreError naming the file (never its content) when it cannot be read or is empty.
std::string read_pin_file(const std::string& path);

}  // namespace orgproxy::keystore
