// The files a configuration names that the daemon cannot start without, checked where the configuration is
// checked: a fresh install learns of a missing listener certificate from `check-config --offline`, at the
// line of its setting, not from an OpenSSL message at the first start.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "orgproxy/config/load.hpp"

namespace orgproxy::config {

std::string unreadable_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    return ec && ec != std::errc::no_such_file_or_directory ? ec.message() : "no such file";
  if (!std::filesystem::is_regular_file(status)) return "not a regular file";
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno != 0 ? std::strerror(errno) : "cannot be opened for reading";
  return {};
}

std::vector<Diagnostic> check_referenced_files(const Config& config) {
  std::vector<Diagnostic> out;
  auto check = [&out](const std::string& file, const SourceMark& mark, const std::string& setting) {
    if (file.empty()) return;
    if (std::string why = unreadable_file(file); !why.empty())
      out.push_back({Severity::error, mark, setting + ": cannot read '" + file + "': " + why});
  };
  for (const Listener& l : config.listeners) {
    if (!l.tls) continue;
    const std::string where = "listener '" + l.name + "': tls: ";
    check(l.tls->cert_file, l.tls->cert_mark, where + "cert");
    if (!l.tls->key.starts_with("pkcs11:")) check(l.tls->key, l.tls->key_mark, where + "key");
    check(l.tls->client_ca_file, l.tls->client_ca_mark, where + "client_ca");
  }
  for (const auto& [name, u] : config.upstreams)
    if (u.proxy)
      check(u.proxy->credentials_file, u.proxy->credentials_mark, "upstream '" + name + "': proxy: credentials_file");
  return out;
}

}  // namespace orgproxy::config
