// Shared by the onboarding integration tests: the real orgproxy binary run with stdout and stderr apart,
// a real slapd serving the test health directory, and the FHIR directory test server.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/temp_dir.hpp"

namespace orgproxy::onboarding_it {

namespace tk = orgproxy::testkit;

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// tests/integration/data/<name> in the source tree.
inline std::string data_file(const std::string& name) {
  return std::string(ORGPROXY_SOURCE_DIR) + "/tests/integration/data/" + name;
}

struct CliRun {
  int exit_code = -1;
  std::string out;  ///< stdout only
  std::string err;  ///< stderr only
};

/// Runs the orgproxy binary with `args`; stdout and stderr captured separately (JSON/YAML on stdout must
/// stay parseable whatever is logged).
inline CliRun run_orgproxy(const tk::TempDir& tmp, const std::vector<std::string>& args, const tk::EnvVars& env = {}) {
  static int counter = 0;
  const std::string err_file = tmp.file("cli-stderr-" + std::to_string(++counter));
  std::string command = "exec " + shell_quote(ORGPROXY_BINARY);
  for (const std::string& a : args) command += " " + shell_quote(a);
  command += " 2>" + shell_quote(err_file);
  tk::CommandResult r = tk::run_command({"/bin/sh", "-c", command}, env, std::chrono::seconds(120));
  EXPECT_FALSE(r.timed_out) << "orgproxy " << (args.empty() ? "" : args[0]) << " timed out";
  return {r.exit_code, r.output, tk::read_file(err_file)};
}

/// A program from $PATH or the system directories (sbin is often not in a test's PATH).
inline std::string system_program(const std::string& name) {
  std::string p = tk::find_program(name);
  if (!p.empty()) return p;
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/"}) {
    const std::string candidate = std::string(dir) + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

/// A real slapd on 127.0.0.1 serving the test directory (base o=TEST,c=fr) from an mdb database loaded with
/// slapadd before the start; its own config file, database and pid file in `dir`; logs (stats level: one
/// line per search) in dir/slapd.log. Stopped (SIGTERM, then SIGKILL) on destruction.
class SlapdDirectory {
 public:
  explicit SlapdDirectory(const std::filesystem::path& dir) : dir_(dir) {
    const std::string slapd = system_program("slapd"), slapadd = system_program("slapadd");
    if (slapd.empty() || slapadd.empty())
      throw std::runtime_error("slapd/slapadd not found: install the slapd package (scripts/install-deps.sh)");
    std::filesystem::create_directories(dir_ / "db");
    const std::string conf = (dir_ / "slapd.conf").string();
    tk::write_file(conf, "include " + data_file("annuaire-test.schema") + "\n" +
                             "pidfile " + (dir_ / "slapd.pid").string() + "\n" +
                             "argsfile " + (dir_ / "slapd.args").string() + "\n" +
                             "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
                             "database mdb\nmaxsize 16777216\nsuffix \"o=TEST,c=fr\"\n"
                             "rootdn \"cn=admin,o=TEST,c=fr\"\n"
                             "directory " + (dir_ / "db").string() + "\n");
    tk::CommandResult load = tk::run_command({slapadd, "-f", conf, "-l", data_file("annuaire-test.ldif")});
    if (load.exit_code != 0) throw std::runtime_error("slapadd failed: " + load.output);
    // A free port can be taken between the probe and the bind: retry with another one.
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = tk::free_loopback_port();
      tk::ProcessSpec spec;
      spec.argv = {slapd, "-f", conf, "-h", url(), "-d", "stats"};
      spec.log_file = log_file();
      process_ = std::make_unique<tk::ChildProcess>(spec);
      if (tk::wait_for_port("127.0.0.1", port_, std::chrono::seconds(30), [&] { return process_->running(); })) return;
      process_->stop();
    }
    throw std::runtime_error("slapd did not start: " + process_->log());
  }
  ~SlapdDirectory() {
    if (process_) process_->stop();
  }
  std::string url() const { return "ldap://127.0.0.1:" + std::to_string(port_) + "/"; }
  std::string log_file() const { return (dir_ / "slapd.log").string(); }
  /// Search operations the server has logged so far.
  std::size_t searches() const {
    const std::string log = process_ ? process_->log() : "";
    std::size_t n = 0;
    for (std::size_t pos = 0; (pos = log.find(" SRCH base=", pos)) != std::string::npos; ++pos) ++n;
    return n;
  }

 private:
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<tk::ChildProcess> process_;
};

}  // namespace orgproxy::onboarding_it
