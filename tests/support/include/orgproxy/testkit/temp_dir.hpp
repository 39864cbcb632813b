// A private temporary directory for one test's world (configs, tokens, logs), removed at the end.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace orgproxy::testkit {

/// Creates a fresh directory under $TMPDIR (or /tmp) named `orgproxy-<prefix>-XXXXXX` (mode 0700) and removes
/// it with everything in it on destruction, unless the environment variable ORGPROXY_KEEP_TMP=1 is set (then
/// the path is printed to stderr so a failing test's files can be inspected).
/// Throws std::runtime_error when the directory cannot be created.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// path() / name, as a string (convenient for configs and command lines).
  std::string file(std::string_view name) const;
  /// Creates (if needed) and returns the subdirectory path() / name.
  std::filesystem::path subdir(std::string_view name) const;

 private:
  std::filesystem::path path_;
};

/// True when ORGPROXY_KEEP_TMP=1: temporary directories are kept for inspection.
bool keep_temp_dirs();

}  // namespace orgproxy::testkit
