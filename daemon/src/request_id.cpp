#include "orgproxy/daemon/request_id.hpp"

namespace orgproxy::daemon {

bool is_well_formed_request_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string_view adopt_request_id(std::string_view given, std::string& storage, std::string_view generated) {
  if (!is_well_formed_request_id(given)) return generated;
  storage.assign(given);
  return storage;
}

}  // namespace orgproxy::daemon
