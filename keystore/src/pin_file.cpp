#include "pin_file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

std::string read_pin_file(const std::string& path) {
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
