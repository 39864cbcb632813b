// YAML → validated Config snapshot.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "orgproxy/config/config.hpp"

namespace orgproxy::config {

enum class Severity { error, warning };

/// One problem found in a configuration, located at file:line:col.
struct Diagnostic {
  Severity severity = Severity::error;
  SourceMark mark;
  std::string message;
  /// "file:line:col: error: message"
  std::string str() const;
};

/// Thrown when a configuration has at least one error; carries every diagnostic found (all at once).
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

/// Result of a successful load: the snapshot plus warnings (never errors).
struct LoadResult {
  ConfigPtr config;
  std::vector<Diagnostic> warnings;
};

/// Reads, parses and validates the YAML file at `path` (and its `include:` files).
/// Scalars are read as their exact source text; identifiers never pass through a numeric conversion.
/// Relative file paths in the config are resolved against the directory of the file that names them.
/// Throws ConfigError with every error found, each with file:line:col. Never throws anything else for
/// bad input (I/O errors become diagnostics too).
LoadResult load_config(const std::filesystem::path& path);

/// Same, from a YAML text; `name` is used as the file name in marks.
LoadResult load_config_text(const std::string& yaml, const std::string& name,
                            const std::filesystem::path& base_dir = ".");

/// Why the file at `path` cannot be used as a file the daemon reads ("no such file", "not a regular file",
/// "permission denied"), or "" when it exists, is a regular file and opens for reading.
std::string unreadable_file(const std::string& path);

/// The files a start would refuse to do without, checked without opening the token (check-config
/// --offline does it; the online check and the start as well): each listener's tls cert, key (unless a
/// pkcs11: URI) and client_ca, and each egress proxy's credentials_file. One error per unusable file, at
/// the file:line:col of its setting. Identity certificates are not checked here: a missing one makes its
/// identity unavailable, not the start impossible (DESIGN.md).
std::vector<Diagnostic> check_referenced_files(const Config& config);

}  // namespace orgproxy::config
