// print_effective: the snapshot back to YAML, written by hand (not yaml-cpp's emitter) so that every
// string is double-quoted and every number keeps the config's own spelling (5s, 64KiB).
#include "orgproxy/config/print.hpp"

#include <cstdio>
#include <string_view>

#include "scalars.hpp"

namespace orgproxy::config {
namespace {

using detail::format_duration;
using detail::format_size;

// YAML double-quoted scalar (YAML 1.2 §7.3.1): backslash escapes for '"', '\' and control characters;
// UTF-8 passes through.
std::string q(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

const char* b(bool v) { return v ? "true" : "false"; }

// A comment must stay on one line whatever the file name holds.
std::string from(const SourceMark& m) {
  if (m.file.empty()) return {};
  std::string s = m.str();
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return "  # " + s;
}

// RFC 7512 query attribute pin-value: the value goes, the attribute stays (so the output says a PIN is
// written there).
std::string redact_key(std::string_view key) {
  std::string out(key);
  static constexpr std::string_view kPin = "pin-value=";
  for (std::size_t pos = 0; (pos = out.find(kPin, pos)) != std::string::npos;) {
    const std::size_t start = pos + kPin.size();
    std::size_t end = out.find_first_of("&;", start);
    if (end == std::string::npos) end = out.size();
    out.replace(start, end - start, "REDACTED");
    pos = start;
  }
  return out;
}

class Printer {
 public:
  explicit Printer(const PrintOptions& options) : options_(options) {}

  std::string str() && { return std::move(out_); }

  void line(int indent, std::string_view text) {
    out_.append(static_cast<std::size_t>(indent) * 2, ' ');
    out_ += text;
    out_ += '\n';
  }
  void kv(int indent, std::string_view key, std::string_view value) {
    line(indent, std::string(key) + ": " + std::string(value));
  }
  /// `key:` then one `- item` per value (already formatted), or nothing when empty.
  void list(int indent, std::string_view key, const std::vector<std::string>& items) {
    if (items.empty()) return;
    line(indent, std::string(key) + ":");
    for (const auto& i : items) line(indent + 1, "- " + i);
  }
  std::vector<std::string> quoted(const std::vector<std::string>& v) {
    std::vector<std::string> out;
    for (const auto& s : v) out.push_back(q(s));
    return out;
  }
  std::vector<std::string> bearer(const std::vector<std::string>& hashes) {
    std::vector<std::string> out;
    for (const auto& h : hashes)
      out.push_back(options_.full_bearer_hashes ? q(h) : q(h.substr(0, 8) + "...") + "  # truncated");
    return out;
  }

  void settings(const Settings& s) {
    line(0, "settings:");
    kv(1, "workers", std::to_string(s.workers));
    kv(1, "require_all_identities", b(s.require_all_identities));
    kv(1, "log_level", q(s.log_level));
    kv(1, "shutdown_grace", format_duration(s.shutdown_grace));
    kv(1, "max_idle_connections", std::to_string(s.max_idle_connections));
  }

  void pkcs11(const Pkcs11Settings& p) {
    line(0, "pkcs11:");
    if (!p.modules.empty()) {
      line(1, "modules:");
      for (const auto& m : p.modules) {
        line(2, "- name: " + q(m.name) + from(m.mark));
        if (!m.path.empty()) kv(3, "path", q(m.path));
      }
    }
    if (!p.pin_file.empty()) kv(1, "pin_file", q(p.pin_file));
    kv(1, "allow_pin_value", b(p.allow_pin_value));
    kv(1, "allow_key_files", b(p.allow_key_files));
    kv(1, "allow_extractable_keys", b(p.allow_extractable_keys));
    kv(1, "max_concurrent_signs", std::to_string(p.max_concurrent_signs));
  }

  void selectors(const Listener& l) {
    line(2, "selectors:");
    for (SelectorKind k : l.selectors) {
      const std::string name(to_string(k));
      if (k == SelectorKind::source && !l.source_tenants.empty()) {
        line(3, "- " + name + ":");
        for (const auto& r : l.source_tenants) line(5, q(r.network.text) + ": " + q(r.tenant) + from(r.mark));
      } else if (k == SelectorKind::client_cert && !l.client_cert_tenants.empty()) {
        line(3, "- " + name + ":");
        for (const auto& r : l.client_cert_tenants) {
          const std::string key = r.match == ClientCertTenantRule::Match::ou ? "OU=" + r.value : r.value;
          line(5, q(key) + ": " + q(r.tenant) + from(r.mark));
        }
      } else {
        line(3, "- " + name);
      }
    }
  }

  void listener(const Listener& l) {
    line(1, "- name: " + q(l.name) + from(l.mark));
    kv(2, "address", q(l.address));
    kv(2, "port", std::to_string(l.port));
    if (l.mode != ListenerMode::http) {  // http listeners print as before (the default mode)
      kv(2, "mode", std::string(to_string(l.mode)));
      kv(2, "upstream", q(l.upstream));
      kv(2, "max_connections", std::to_string(l.max_connections));
    }
    selectors(l);
    kv(2, "tenant_header", q(l.tenant_header));
    if (!l.fixed_tenant.empty()) kv(2, "tenant", q(l.fixed_tenant));
    kv(2, "header_timeout", format_duration(l.header_timeout));
    kv(2, "idle_timeout", format_duration(l.idle_timeout));
    kv(2, "body_timeout", format_duration(l.body_timeout));
    kv(2, "body_min_rate", format_size(l.body_min_rate));
    kv(2, "max_header_bytes", format_size(l.max_header_bytes));
    kv(2, "max_header_count", std::to_string(l.max_header_count));
    kv(2, "vihf_check", b(l.vihf_check));
    kv(2, "vihf_max_bytes", format_size(l.vihf_max_bytes));
    if (l.tls) {
      line(2, "tls:" + from(l.tls->mark));
      kv(3, "cert", q(l.tls->cert_file));
      kv(3, "key", q(redact_key(l.tls->key)));
      if (!l.tls->client_ca_file.empty()) kv(3, "client_ca", q(l.tls->client_ca_file));
      kv(3, "require_client_cert", b(l.tls->require_client_cert));
      if (l.mode == ListenerMode::smtp_starttls || l.mode == ListenerMode::imap_starttls)
        kv(3, "require_starttls", b(l.tls->require_starttls));
    }
  }

  void upstream(const Upstream& u) {
    line(1, q(u.name) + ":" + from(u.mark));
    if (u.address.empty())
      kv(2, "url", q(u.url));
    else
      kv(2, "address", q(u.address));
    if (!u.sni.empty()) kv(2, "sni", q(u.sni));  // none for an IP literal host (RFC 6066)
    kv(2, "ca_file", q(u.ca_file));
    kv(2, "environment", std::string(to_string(u.environment)));
    kv(2, "purpose", std::string(to_string(u.purpose)));
    kv(2, "tls_min", q(to_string(u.tls_min)));
    kv(2, "tls_max", q(to_string(u.tls_max)));
    kv(2, "connect_timeout", format_duration(u.connect_timeout));
    kv(2, "handshake_timeout", format_duration(u.handshake_timeout));
    kv(2, "first_byte_timeout", format_duration(u.first_byte_timeout));
    kv(2, "idle_timeout", format_duration(u.idle_timeout));
    kv(2, "max_idle_per_key", std::to_string(u.max_idle_per_key));
    if (u.proxy) {
      line(2, "proxy:" + from(u.proxy->mark));
      kv(3, "url", q(u.proxy->url));
      if (!u.proxy->credentials_file.empty()) kv(3, "credentials_file", q(u.proxy->credentials_file));
      kv(3, "connect_timeout", format_duration(u.proxy->connect_timeout));
    }
    if (!u.crl_files.empty()) {
      line(2, "crl_files:");
      for (const auto& f : u.crl_files) line(3, "- " + q(f));
    }
  }

  void route(const Route& r) {
    line(1, "- prefix: " + q(r.prefix) + from(r.mark));
    if (!r.host.empty()) kv(2, "host", q(r.host));
    kv(2, "upstream", q(r.upstream));
    kv(2, "max_body", format_size(r.max_body_bytes));
  }

  void tenant(const Tenant& t) {
    line(1, "- id: " + q(t.id) + from(t.mark));
    if (!t.name.empty()) kv(2, "name", q(t.name));
    if (!t.sector.empty()) kv(2, "sector", q(t.sector));
    if (!t.departement.empty()) kv(2, "departement", q(t.departement));
    if (!t.responsible_rpps.empty()) kv(2, "responsible_rpps", q(t.responsible_rpps));
    if (!t.legal_representative.empty()) kv(2, "legal_representative", q(t.legal_representative));
    if (t.identities.empty()) return;
    line(2, "identities:");
    for (const auto& [purpose, refs] : t.identities) {
      line(3, std::string(to_string(purpose)) + ":");
      for (const auto& ref : refs) {
        if (ref.cert_file.empty()) {  // the certificate is read from the key's token
          line(4, "- key: " + q(redact_key(ref.key)) + from(ref.mark));
        } else {
          line(4, "- cert: " + q(ref.cert_file) + from(ref.mark));
          kv(5, "key", q(redact_key(ref.key)));
        }
      }
    }
  }

  void client(const Client& c) {
    line(1, "- name: " + q(c.name) + from(c.mark));
    std::vector<std::string> cidrs;
    for (const auto& n : c.cidrs) cidrs.push_back(q(n.text));
    list(2, "cidr", cidrs);
    list(2, "cert_sha256", quoted(c.cert_sha256));
    list(2, "cert_subject", quoted(c.cert_subjects));
    list(2, "bearer_sha256", bearer(c.bearer_sha256));
    // Groups are already expanded into `tenants`: the effective list is printed, groups kept for reading.
    if (c.all_tenants)
      kv(2, "tenants", q("*"));
    else if (!c.tenants.empty() || c.groups.empty())
      line(2, "tenants: " + (c.tenants.empty() ? std::string("[]") : std::string()));
    if (!c.all_tenants)
      for (const auto& id : c.tenants) line(3, "- " + q(id));
    list(2, "groups", quoted(c.groups));
    if (c.all_upstreams)
      kv(2, "upstreams", q("*"));
    else
      line(2, "upstreams: " + (c.upstreams.empty() ? std::string("[]") : std::string()));
    if (!c.all_upstreams)
      for (const auto& u : c.upstreams) line(3, "- " + q(u));
    if (c.max_connections) kv(2, "max_connections", std::to_string(c.max_connections));
    if (c.rate) {
      kv(2, "rate", std::to_string(c.rate));
      kv(2, "burst", std::to_string(c.burst));
    }
  }

  void admin(const AdminListener& a) {
    line(0, "admin:" + from(a.mark));
    kv(1, "address", q(a.address));
    kv(1, "port", std::to_string(a.port));
    list(1, "bearer_sha256", bearer(a.bearer_sha256));
    kv(1, "per_tenant_metrics", b(a.per_tenant_metrics));
  }

  void logging(const LoggingSettings& l) {
    line(0, "logging:");
    kv(1, "access_log", q(l.access_log));
    if (l.rotate_size) {
      kv(1, "rotate_size", format_size(l.rotate_size));
      kv(1, "rotate_count", std::to_string(l.rotate_count));
    }
  }

 private:
  const PrintOptions& options_;
  std::string out_;
};

}  // namespace

std::string print_effective(const Config& config, const PrintOptions& options) {
  Printer p(options);
  std::string head = config.source_file;
  for (char& c : head)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  p.line(0, "# Effective orgproxy configuration of " + head + ": includes merged, defaults written out,");
  p.line(0, "# relative paths resolved. Comments name where each entry was written. Secrets are not shown.");
  p.settings(config.settings);
  p.pkcs11(config.pkcs11);
  p.line(0, std::string("listeners:") + (config.listeners.empty() ? " []" : ""));
  for (const auto& l : config.listeners) p.listener(l);
  if (!config.upstreams.empty()) {
    p.line(0, "upstreams:");
    for (const auto& [name, u] : config.upstreams) p.upstream(u);
  }
  if (!config.routes.empty()) {
    p.line(0, "routes:  # longest prefix first, as matched");
    for (const auto& r : config.routes) p.route(r);
  }
  if (!config.tenants.empty()) {
    p.line(0, "tenants:");
    for (const auto& t : config.tenants) p.tenant(t);
  }
  if (!config.tenant_groups.empty()) {
    p.line(0, "tenant_groups:");
    for (const auto& [name, ids] : config.tenant_groups) {
      p.line(1, q(name) + ":" + (ids.empty() ? " []" : ""));
      for (const auto& id : ids) p.line(2, "- " + q(id));
    }
  }
  if (!config.clients.empty()) {
    p.line(0, "clients:  # first match wins");
    for (const auto& c : config.clients) p.client(c);
  }
  if (config.admin) p.admin(*config.admin);
  p.logging(config.logging);
  if (!config.crl_files.empty()) {
    p.line(0, "crl_files:");
    for (const auto& f : config.crl_files) p.line(1, "- " + q(f));
  }
  if (const DirectorySettings& d = config.directory;
      !d.ldap_url.empty() || !d.base_dn.empty() || !d.fhir_url.empty() || !d.api_key_file.empty()) {
    p.line(0, "directory:");
    p.line(1, "source: " + q(d.source));
    if (!d.ldap_url.empty()) p.line(1, "ldap_url: " + q(d.ldap_url));
    if (!d.base_dn.empty()) p.line(1, "base_dn: " + q(d.base_dn));
    if (!d.fhir_url.empty()) p.line(1, "fhir_url: " + q(d.fhir_url));
    if (!d.api_key_file.empty()) p.line(1, "api_key_file: " + q(d.api_key_file));
    p.line(1, "timeout: " + format_duration(d.timeout));
  }
  return std::move(p).str();
}

}  // namespace orgproxy::config
