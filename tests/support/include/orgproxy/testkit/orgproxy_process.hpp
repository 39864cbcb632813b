// The real orgproxy daemon as a child process: a YAML configuration written from a small model, the binary
// started with `orgproxy run --config FILE`, its logs captured to a file the test can read.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "orgproxy/testkit/child_process.hpp"

namespace orgproxy::testkit {

/// One identity of a tenant: purpose ("dmp", "insi-auto", ...), certificate chain file, key reference.
struct ConfigIdentity {
  std::string purpose;
  std::string cert_file;  ///< "" = not written: the daemon reads the certificate from the key's token
  std::string key;  ///< RFC 7512 pkcs11: URI
};

struct ConfigTenant {
  std::string id;  ///< full structure identifier, written quoted (never a YAML number)
  std::string name;
  std::string sector;       ///< "SA07", "SA08", "SA09" ("" = not written)
  std::string departement;  ///< "75" ("" = not written)
  std::vector<ConfigIdentity> identities;
};

struct ConfigUpstream {
  std::string name;
  std::string url;      ///< https://127.0.0.1:<port>/base/path
  std::string ca_file;  ///< trust anchors for the upstream's server certificate
  std::string purpose = "dmp";
  std::string environment = "test";
  std::string tls_min;  ///< "1.2"/"1.3"; "" = the default
  std::string tls_max;
  std::string sni;      ///< "" = not written
  /// Timeouts as the schema's duration strings ("2s", "500ms"); "" = the default.
  std::string connect_timeout, handshake_timeout, first_byte_timeout, idle_timeout;
  std::string address;  ///< L4 upstream host:port; written instead of `url` when set (last: keeps brace-init order)
  /// Keys the model does not cover (proxy, crl_files, max_idle_per_key...), written verbatim inside this
  /// upstream's mapping: each line indented by four spaces, e.g. "    max_idle_per_key: 0\n".
  std::string extra_yaml;
};

/// An upstream with the defaults of the schema for everything but name, URL, CA bundle and purpose.
inline ConfigUpstream make_upstream(std::string name, std::string url, std::string ca_file,
                                    std::string purpose = "dmp") {
  ConfigUpstream u;
  u.name = std::move(name);
  u.url = std::move(url);
  u.ca_file = std::move(ca_file);
  u.purpose = std::move(purpose);
  return u;
}

struct ConfigRoute {
  std::string prefix;
  std::string upstream;
};

/// An L4 listener (SCHEMA.md `mode`): one site, one upstream with an address.
struct ConfigL4Listener {
  std::string name;
  std::string mode = "tunnel";  ///< "tunnel", "smtp-starttls", "imap-starttls"
  std::string tenant;
  std::string upstream;
  std::uint16_t port = 0;        ///< 0: a free loopback port is chosen when the process starts
  std::string idle_timeout;      ///< duration string; "" = the default
  unsigned max_connections = 0;  ///< 0 = the default
  std::string extra_yaml;        ///< appended verbatim inside the listener (keys at 4 spaces, e.g. `tls:`)
};

/// The configuration a test runs the daemon with (a model of config/SCHEMA.md, reduced to what tests set).
struct OrgproxyConfig {
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: a free loopback port is chosen when the process starts
  std::vector<std::string> selectors{"header"};
  /// The listener's header_timeout and idle_timeout as duration strings; "" = the schema default.
  std::string listener_header_timeout, listener_idle_timeout;
  /// The listener's body_timeout (duration) and body_min_rate (size per second); "" = the schema default.
  std::string listener_body_timeout, listener_body_min_rate;
  std::string module_path = ORGPROXY_SOFTHSM2_MODULE;
  std::string pin_file;
  bool allow_extractable_keys = false;
  unsigned workers = 2;
  std::string log_level = "debug";
  std::vector<ConfigUpstream> upstreams;
  std::vector<ConfigRoute> routes;
  std::vector<ConfigL4Listener> l4_listeners;  ///< written after the HTTP listener `ris`
  std::vector<ConfigTenant> tenants;
  std::string extra_yaml;  ///< appended verbatim (sections the model does not cover)

  /// The YAML text. Every string is double-quoted, so identifiers stay text.
  std::string yaml() const;
};

/// Options of a daemon start.
struct OrgproxyStart {
  std::string binary = ORGPROXY_BINARY;
  EnvVars env;  ///< added to this process's environment (which carries SOFTHSM2_CONF set by SoftHsmToken)
  std::chrono::milliseconds ready_timeout = std::chrono::seconds(20);
  bool wait_ready = true;  ///< wait until the listener port accepts (else return right after the start)
};

/// A running daemon. The constructor writes `dir`/orgproxy.yaml, starts the binary with its output going to
/// `dir`/orgproxy.log and (by default) waits until the listener accepts connections. Throws
/// std::runtime_error quoting the log when the daemon exits or does not listen in time.
/// Destruction stops it (SIGTERM, SIGKILL after 10 s).
class OrgproxyProcess {
 public:
  OrgproxyProcess(const std::filesystem::path& dir, OrgproxyConfig config, OrgproxyStart start = {});
  ~OrgproxyProcess();
  OrgproxyProcess(const OrgproxyProcess&) = delete;
  OrgproxyProcess& operator=(const OrgproxyProcess&) = delete;

  std::uint16_t port() const { return config_.port; }
  /// The daemon's process id (e.g. to count its open descriptors in /proc).
  pid_t pid() const { return process_->pid(); }
  const OrgproxyConfig& config() const { return config_; }
  std::string config_file() const { return (dir_ / "orgproxy.yaml").string(); }
  /// Rewrites the configuration file (e.g. before a SIGHUP reload). Keeps the port.
  void rewrite_config(OrgproxyConfig config);
  /// Everything the daemon wrote to stdout and stderr so far.
  std::string log() const;
  /// Polls the log until it contains `text` or `timeout` passes.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  bool running() { return process_->running(); }
  void send_signal(int sig) { process_->send_signal(sig); }
  /// Waits for the daemon to exit by itself; exit code or nothing on timeout.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout) { return process_->wait_for_exit(timeout); }
  /// SIGTERM, then SIGKILL after `grace`; returns the exit code.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10)) { return process_->stop(grace); }

 private:
  std::filesystem::path dir_;
  OrgproxyConfig config_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace orgproxy::testkit
