// Helpers shared by the config unit tests: load a YAML text, collect its diagnostics, temporary dirs.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "orgproxy/config/load.hpp"

namespace orgproxy::config {
/// Readable diagnostics in gtest failure messages.
inline void PrintTo(const Diagnostic& d, std::ostream* os) { *os << d.str(); }
}  // namespace orgproxy::config

namespace orgproxy::config::test {

/// Drops the newline that follows R"( so that line 1 of the YAML is the first line written.
inline std::string yaml(std::string_view text) {
  if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  return std::string(text);
}

/// Loads `text` as file "t.yaml" (relative paths resolve against /cfg). Fails the test on errors.
inline LoadResult load_ok(const std::string& text) {
  try {
    return load_config_text(text, "t.yaml", "/cfg");
  } catch (const ConfigError& e) {
    ADD_FAILURE() << "expected a valid configuration, got:\n" << e.what();
    return {};
  }
}

/// Every diagnostic (errors and warnings) of a configuration expected to be refused.
inline std::vector<Diagnostic> load_errors(const std::string& text) {
  try {
    load_config_text(text, "t.yaml", "/cfg");
  } catch (const ConfigError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "expected the configuration to be refused:\n" << text;
  return {};
}

inline std::vector<Diagnostic> errors_only(const std::vector<Diagnostic>& all) {
  std::vector<Diagnostic> out;
  for (const auto& d : all)
    if (d.severity == Severity::error) out.push_back(d);
  return out;
}

/// gmock matcher: a diagnostic of `severity` at line:col whose message contains `text`.
MATCHER_P4(DiagAt, severity, line, col, text,
           std::string("a diagnostic at ") + std::to_string(line) + ":" + std::to_string(col) + " containing \"" +
               text + "\"") {
  *result_listener << "which is " << arg.str();
  return arg.severity == severity && arg.mark.line == line && arg.mark.column == col &&
         arg.message.find(text) != std::string::npos;
}
inline auto ErrorAt(int line, int col, std::string text) { return DiagAt(Severity::error, line, col, text); }
inline auto WarningAt(int line, int col, std::string text) { return DiagAt(Severity::warning, line, col, text); }

/// The smallest valid configuration; tests append sections after it (it ends at line 12).
inline const std::string kBase = yaml(R"(
listeners:
  - { name: ris, address: 127.0.0.1, port: 8080, selectors: [header, path] }
upstreams:
  dmp:
    url: https://lps2.dmp.gouv.fr/si-dmp-server/v2/services
    ca_file: /etc/orgproxy/igc-sante.pem
    environment: production
    purpose: dmp
routes:
  - { prefix: /dmp, upstream: dmp }
tenants:
  - { id: "312345678200002", identities: { dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a;type=private" }] } }
)");

/// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "orgproxy-config-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  /// Writes `text` to `relative` (creating directories) and returns the full path.
  std::filesystem::path write(const std::string& relative, const std::string& text) const {
    const auto p = path_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace orgproxy::config::test
