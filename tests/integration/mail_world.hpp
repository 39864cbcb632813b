// Shared by the mail listener tests: real mail servers started by the test with their own configuration on
// loopback (dovecot for IMAP, aiosmtpd for SMTP submission), both requiring client certificates, and the
// fixture that runs one L4 mail listener of site A in front of them.
#pragma once

#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "l4_world.hpp"
#include "orgproxy/testkit/child_process.hpp"
#include "orgproxy/testkit/files.hpp"
#include "orgproxy/testkit/net.hpp"
#include "orgproxy/testkit/tls_script_server.hpp"

namespace orgproxy::l4test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline constexpr const char* kPython = "/usr/bin/python3";  // Debian's python3-aiosmtpd is for the system interpreter

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// dovecot on 127.0.0.1:port, IMAP only: STARTTLS required before any login, a client certificate
// chaining to `client_ca` required to authenticate; one user `ris` / `secret`. Runs as the mail user
// `nobody` when the tests run as root (dovecot refuses uid 0 for mail), else as the current user. Also
// IMAPS (implicit TLS, same certificate rules) on imaps_port().
class Dovecot {
 public:
  Dovecot(const fs::path& dir, const tk::IssuedFiles& server, const std::string& client_ca)
      : port_(tk::free_loopback_port()), imaps_port_(tk::free_loopback_port()) {
    fs::create_directories(dir / "home");
    // Dovecot's unprivileged processes must reach the configuration's files.
    for (fs::path p = dir; p.has_relative_path() && p != p.root_path(); p = p.parent_path()) {
      if (p.string().rfind("/tmp", 0) != 0 || p == "/tmp") break;
      fs::permissions(p, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
    }
    const bool root = ::geteuid() == 0;
    const std::string uid = root ? "65534" : std::to_string(::geteuid());
    const std::string gid = root ? "65534" : std::to_string(::getegid());
    if (root && ::chown((dir / "home").c_str(), 65534, 65534) != 0) throw std::runtime_error("chown home");
    tk::write_file(dir / "passwd", "ris:{PLAIN}secret::::::\n", 0644);
    const std::string d = dir.string();
    std::string conf = "base_dir = " + d + "/run\nstate_dir = " + d + "/state\nlog_path = " + d + "/dovecot.log\n" +
                       "protocols = imap\nlisten = 127.0.0.1\nssl = required\n" +
                       "ssl_cert = <" + server.chain.string() + "\nssl_key = <" + server.key.string() + "\n" +
                       "ssl_ca = <" + client_ca + "\nssl_verify_client_cert = yes\nauth_ssl_require_client_cert = yes\n" +
                       "ssl_require_crl = no\ndisable_plaintext_auth = yes\nauth_mechanisms = plain\n" +
                       "passdb {\n  driver = passwd-file\n  args = " + d + "/passwd\n}\n" +
                       "userdb {\n  driver = static\n  args = uid=" + uid + " gid=" + gid + " home=" + d + "/home/%u\n}\n" +
                       "mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\nfirst_valid_gid = 1\n" +
                       "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = " +
                       std::to_string(port_) + "\n  }\n  inet_listener imaps {\n    address = 127.0.0.1\n    port = " +
                       std::to_string(imaps_port_) + "\n    ssl = yes\n  }\n}\n";
    if (!root) {  // unprivileged: every dovecot process runs as the current user
      const passwd* me = ::getpwuid(::geteuid());
      const std::string name = me ? me->pw_name : "nobody";
      conf += "default_login_user = " + name + "\ndefault_internal_user = " + name + "\n";
    }
    tk::write_file(dir / "dovecot.conf", conf, 0644);
    process_ = std::make_unique<tk::ChildProcess>(
        tk::ProcessSpec{{"dovecot", "-F", "-c", (dir / "dovecot.conf").string()}, {}, (dir / "stdout.log").string(), d});
    if (!tk::wait_for_port("127.0.0.1", port_, 20s, [this] { return process_->running(); }))
      throw std::runtime_error("dovecot did not start: " + process_->log() + read_text(dir / "dovecot.log"));
    log_ = dir / "dovecot.log";
  }
  std::uint16_t port() const { return port_; }
  std::uint16_t imaps_port() const { return imaps_port_; }
  std::string log() const { return read_text(log_); }

 private:
  std::uint16_t port_;
  std::uint16_t imaps_port_;
  fs::path log_;
  std::unique_ptr<tk::ChildProcess> process_;
};

// aiosmtpd (tests/integration/data/aiosmtpd_mtls.py): STARTTLS required, client certificate required; or,
// `implicit`, TLS from the first byte (SMTPS), client certificate required.
class Aiosmtpd {
 public:
  Aiosmtpd(const fs::path& dir, const tk::IssuedFiles& server, const std::string& client_ca, bool implicit = false)
      : port_(tk::free_loopback_port()), dir_(dir) {
    fs::create_directories(dir / "spool");
    process_ = std::make_unique<tk::ChildProcess>(tk::ProcessSpec{
        {kPython, std::string(ORGPROXY_SOURCE_DIR) + "/tests/integration/data/aiosmtpd_mtls.py", server.chain.string(),
         server.key.string(), client_ca, std::to_string(port_), (dir / "spool").string(),
         implicit ? "implicit" : "starttls"},
        {},
        (dir / "aiosmtpd.log").string(),
        dir.string()});
    if (!tk::wait_for_port("127.0.0.1", port_, 30s, [this] { return process_->running(); }))
      throw std::runtime_error("aiosmtpd did not start: " + process_->log());
  }
  std::uint16_t port() const { return port_; }
  fs::path spool() const { return dir_ / "spool"; }
  std::string log() const { return process_->log(); }

 private:
  std::uint16_t port_;
  fs::path dir_;
  std::unique_ptr<tk::ChildProcess> process_;
};

class Mail : public L4Fixture {
 protected:
  Mail() : L4Fixture("l4-mail") {}
  // One L4 listener of `mode` for site A to 127.0.0.1:upstream_port, with `listener_yaml` inside it
  // (e.g. its `tls`); returns its port.
  std::uint16_t start(const std::string& mode, std::uint16_t upstream_port, const std::string& listener_yaml = "") {
    config_.upstreams.push_back(l4_upstream("mss", upstream_port, ca()));
    config_.l4_listeners.push_back({"mail", mode, kA, "mss", 0, "", 0, listener_yaml});
    return start_daemon();
  }
  tk::CommandResult curl(std::vector<std::string> args) {
    args.insert(args.begin(), {"curl", "-sS", "--max-time", "60"});
    return tk::run_command(args, {}, 90s);
  }
  std::string message(const std::string& subject) {
    const auto file = tmp_.subdir("client") / (subject + ".eml");
    tk::write_file(file, "From: ris@site-a.mssante.example\r\nTo: dr@hopital.mssante.example\r\nSubject: " + subject +
                             "\r\n\r\nCompte rendu d'examen.\r\n");
    return file.string();
  }
};

}  // namespace orgproxy::l4test
