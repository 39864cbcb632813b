#include "pin_file.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

std::string resolve_pin_path(const std::string& path) {
  if (path.rfind("credential:", 0) != 0) return path;
  const std::string name = path.substr(11);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw KeystoreError("PIN file " + path + ": a credential name is one file name (credential:pin)");
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0')
    throw KeystoreError("PIN file " + path + ": $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=" + name +
                        ":... provides it)");
  return std::string(dir) + "/" + name;
}

std::string read_pin_file(const std::string& configured) {
  const std::string path = resolve_pin_path(configured);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw KeystoreError("cannot read PIN file " + path + ": " + std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  std::string pin = content.str();
  if (pin.size() >= 2 && pin.compare(pin.size() - 2, 2, "\r\n") == 0) {
    pin.resize(pin.size() - 2);
  } else if (!pin.empty() && pin.back() == '\n') {
    pin.pop_back();
  }
  if (pin.empty()) throw KeystoreError("PIN file " + path + " is empty");
  return pin;
}

}  // namespace orgproxy::keystore
