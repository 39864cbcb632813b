#include "orgproxy/testkit/orgproxy_process.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "orgproxy/testkit/net.hpp"

namespace orgproxy::testkit {
namespace {

// YAML double-quoted scalar (YAML 1.2 §7.3.1): backslash and quote escaped; tests never need more.
std::string q(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

std::string OrgproxyConfig::yaml() const {
  std::ostringstream y;
  y << "# Written by the orgproxy test kit.\n"
    << "settings:\n  workers: " << workers << "\n  log_level: " << q(log_level) << "\n"
    << "pkcs11:\n  modules:\n    - { name: softhsm, path: " << q(module_path) << " }\n"
    << "  pin_file: " << q(pin_file) << "\n";
  if (allow_extractable_keys) y << "  allow_extractable_keys: true\n";
  y << "listeners:\n  - name: ris\n    address: " << q(listen_address) << "\n    port: " << port
    << "\n    selectors: [";
  for (std::size_t i = 0; i < selectors.size(); ++i) y << (i ? ", " : "") << selectors[i];
  y << "]\n";
  if (!listener_header_timeout.empty()) y << "    header_timeout: " << q(listener_header_timeout) << "\n";
  if (!listener_idle_timeout.empty()) y << "    idle_timeout: " << q(listener_idle_timeout) << "\n";
  if (!listener_body_timeout.empty()) y << "    body_timeout: " << q(listener_body_timeout) << "\n";
  if (!listener_body_min_rate.empty()) y << "    body_min_rate: " << q(listener_body_min_rate) << "\n";
  for (const auto& l : l4_listeners) {
    y << "  - name: " << q(l.name) << "\n    address: \"127.0.0.1\"\n    port: " << l.port << "\n    mode: " << l.mode
      << "\n    tenant: " << q(l.tenant) << "\n    upstream: " << q(l.upstream) << "\n";
    if (!l.idle_timeout.empty()) y << "    idle_timeout: " << q(l.idle_timeout) << "\n";
    if (l.max_connections) y << "    max_connections: " << l.max_connections << "\n";
    y << l.extra_yaml;
  }
  y << "upstreams:\n";
  for (const auto& u : upstreams) {
    y << "  " << u.name << ":\n"
      << "    " << (u.address.empty() ? "url: " + q(u.url) : "address: " + q(u.address)) << "\n    ca_file: "
      << q(u.ca_file) << "\n"
      << "    environment: " << u.environment << "\n    purpose: " << u.purpose << "\n";
    auto opt = [&](const char* key, const std::string& v) {
      if (!v.empty()) y << "    " << key << ": " << q(v) << "\n";
    };
    opt("sni", u.sni);
    opt("tls_min", u.tls_min);
    opt("tls_max", u.tls_max);
    opt("connect_timeout", u.connect_timeout);
    opt("handshake_timeout", u.handshake_timeout);
    opt("first_byte_timeout", u.first_byte_timeout);
    opt("idle_timeout", u.idle_timeout);
    y << u.extra_yaml;
  }
  y << "routes:\n";
  for (const auto& r : routes) y << "  - { prefix: " << q(r.prefix) << ", upstream: " << r.upstream << " }\n";
  y << "tenants:\n";
  for (const auto& t : tenants) {
    y << "  - id: " << q(t.id) << "\n    name: " << q(t.name) << "\n";
    if (!t.sector.empty()) y << "    sector: " << t.sector << "\n";
    if (!t.departement.empty()) y << "    departement: " << q(t.departement) << "\n";
    y << "    identities:\n";
    std::vector<std::string> purposes;
    for (const auto& i : t.identities) {
      if (std::find(purposes.begin(), purposes.end(), i.purpose) == purposes.end()) purposes.push_back(i.purpose);
    }
    for (const auto& p : purposes) {
      y << "      " << p << ":\n";
      for (const auto& i : t.identities) {
        if (i.purpose != p) continue;
        if (i.cert_file.empty())  // the certificate stored on the key's token
          y << "        - { key: " << q(i.key) << " }\n";
        else
          y << "        - { cert: " << q(i.cert_file) << ", key: " << q(i.key) << " }\n";
      }
    }
  }
  y << extra_yaml;
  return y.str();
}

OrgproxyProcess::OrgproxyProcess(const std::filesystem::path& dir, OrgproxyConfig config, OrgproxyStart start)
    : dir_(dir), config_(std::move(config)) {
  std::filesystem::create_directories(dir_);
  if (config_.port == 0) config_.port = free_loopback_port();
  for (auto& l : config_.l4_listeners)
    if (l.port == 0) l.port = free_loopback_port();
  write_file(config_file(), config_.yaml());
  process_ = std::make_unique<ChildProcess>(ProcessSpec{{start.binary, "run", "--config", config_file()},
                                                        start.env,
                                                        (dir_ / "orgproxy.log").string(),
                                                        dir_.string()});
  if (!start.wait_ready) return;
  const bool up = wait_for_port(config_.listen_address, config_.port, start.ready_timeout,
                                [this] { return process_->running(); });
  if (!up) {
    const bool exited = !process_->running();
    process_->stop();
    throw std::runtime_error(std::string("orgproxy ") + (exited ? "exited during start" : "did not listen in time") +
                             " (port " + std::to_string(config_.port) + "); log:\n" + log());
  }
}

OrgproxyProcess::~OrgproxyProcess() { process_->stop(std::chrono::seconds(10)); }

void OrgproxyProcess::rewrite_config(OrgproxyConfig config) {
  config.port = config_.port;
  config_ = std::move(config);
  write_file(config_file(), config_.yaml());
}

std::string OrgproxyProcess::log() const { return process_->log(); }

bool OrgproxyProcess::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (log().find(text) != std::string::npos) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace orgproxy::testkit
