#include "orgproxy/testkit/temp_dir.hpp"

#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace orgproxy::testkit {

bool keep_temp_dirs() {
  const char* keep = std::getenv("ORGPROXY_KEEP_TMP");
  return keep != nullptr && std::string_view(keep) == "1";
}

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/orgproxy-" + std::string(prefix) + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "TempDir: mkdtemp " + pattern);
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (keep_temp_dirs()) {
    std::cerr << "orgproxy testkit: keeping " << path_ << '\n';
    return;
  }
  std::error_code ec;  // a destructor never throws; leftovers in /tmp are harmless
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::file(std::string_view name) const { return (path_ / name).string(); }

std::filesystem::path TempDir::subdir(std::string_view name) const {
  auto p = path_ / name;
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace orgproxy::testkit
