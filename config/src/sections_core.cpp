// settings, pkcs11 and listeners sections.
#include <algorithm>
#include <array>
#include <cctype>

#include "net.hpp"
#include "pkcs11_uri.hpp"
#include "sections.hpp"

namespace orgproxy::config::detail {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

namespace {
constexpr std::array<std::string_view, 13> kRootKeys{"settings", "pkcs11",  "listeners", "upstreams",
                                                     "routes",   "tenants", "include",   "tenant_groups",
                                                     "clients",  "admin",   "logging",   "crl_files",
                                                     "directory"};
constexpr std::array<std::string_view, 4> kIncludeKeys{"upstreams", "routes", "tenants", "include"};
}  // namespace

std::span<const std::string_view> root_keys() { return kRootKeys; }
std::span<const std::string_view> include_keys() { return kIncludeKeys; }

bool is_simple_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

MapView sub_map(const MapView& parent, std::string_view key, std::string what,
                std::span<const std::string_view> known) {
  const Field* f = parent.field(key);
  YAML::Node node = f ? f->value : YAML::Node();
  SourceMark where = f ? mark_of(f->key, parent.file()) : parent.mark();
  return MapView(node, std::move(where), parent.file(), parent.diags(), std::move(what), known);
}

void parse_settings(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 5> kKeys{"workers", "require_all_identities", "log_level",
                                                         "shutdown_grace", "max_idle_connections"};
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kLevels{{{"trace", "trace"},
                                                                                         {"debug", "debug"},
                                                                                         {"info", "info"},
                                                                                         {"warn", "warn"},
                                                                                         {"error", "error"},
                                                                                         {"critical", "critical"},
                                                                                         {"off", "off"}}};
  MapView m = sub_map(top, "settings", "settings", kKeys);
  if (!m.valid()) return;
  Settings& s = state.config.settings;
  if (auto v = m.integer("workers", 0, 1024)) s.workers = static_cast<unsigned>(*v);
  if (auto v = m.boolean("require_all_identities")) s.require_all_identities = *v;
  if (auto v = m.choice<std::string_view>("log_level", kLevels)) s.log_level = std::string(*v);
  if (auto v = m.duration("shutdown_grace", 0ms, 10min)) s.shutdown_grace = *v;
  if (auto v = m.integer("max_idle_connections", 0, 1000000)) s.max_idle_connections = static_cast<std::size_t>(*v);
}

void parse_pkcs11(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 6> kKeys{
      "modules", "pin_file", "allow_pin_value", "allow_key_files", "allow_extractable_keys", "max_concurrent_signs"};
  static constexpr std::array<std::string_view, 2> kModuleKeys{"name", "path"};
  MapView m = sub_map(top, "pkcs11", "pkcs11", kKeys);
  if (!m.valid()) return;
  Pkcs11Settings& p = state.config.pkcs11;
  p.mark = m.mark();
  // `credential:NAME` is $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=), resolved by the keystore at
  // start: kept as written, never made relative to the configuration's directory.
  if (auto t = m.text("pin_file"); t && t->value.rfind("credential:", 0) == 0) {
    const std::string name = t->value.substr(11);
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      m.error_at("pin_file", "'" + t->value + "': a credential name is one file name (credential:pin)");
    else
      p.pin_file = t->value;
  } else if (auto v = m.path("pin_file")) {
    p.pin_file = *v;
  }
  if (auto v = m.boolean("allow_pin_value")) p.allow_pin_value = *v;
  if (auto v = m.boolean("allow_key_files")) p.allow_key_files = *v;
  if (auto v = m.boolean("allow_extractable_keys")) p.allow_extractable_keys = *v;
  if (auto v = m.integer("max_concurrent_signs", 0, 4096)) p.max_concurrent_signs = static_cast<unsigned>(*v);
  if (p.allow_pin_value)
    m.warning_at("allow_pin_value",
                 "PINs written in key URIs end up in backups and process listings; "
                 "prefer pin_file");
  if (p.allow_extractable_keys) m.warning_at("allow_extractable_keys", "keys that can leave the token are accepted");
  const Field* modules = m.field("modules");
  if (!modules ||
      !expect_sequence(modules->value, mark_of(modules->key, m.file()), m.file(), m.diags(), "pkcs11.modules"))
    return;
  for (std::size_t i = 0; i < modules->value.size(); ++i) {
    const YAML::Node item = modules->value[i];
    MapView mm(item, mark_of(item, m.file()), m.file(), m.diags(), "pkcs11 module #" + std::to_string(i + 1),
               kModuleKeys);
    if (!mm.valid()) continue;
    Pkcs11Module mod;
    mod.mark = mm.mark();
    if (auto v = mm.string("name", true)) {
      if (!is_simple_name(*v))
        mm.error_at("name", "'" + *v + "' is not a simple name (letters, digits, '-', '_', '.')");
      for (const auto& other : p.modules)
        if (other.name == *v) mm.error_at("name", "module '" + *v + "' is already defined at " + other.mark.str());
      mod.name = *v;
    }
    // A bare file name is looked up by the dynamic loader like p11-kit does; only paths are resolved.
    if (auto t = mm.text("path"))
      mod.path = t->value.find('/') != std::string::npos ? resolve_path(t->value, m.file()) : t->value;
    p.modules.push_back(std::move(mod));
  }
}

namespace {

bool is_http_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

constexpr std::array<std::pair<std::string_view, SelectorKind>, 6> kSelectorKinds{
    {{"fixed", SelectorKind::fixed},
     {"source", SelectorKind::source},
     {"client_cert", SelectorKind::client_cert},
     {"header", SelectorKind::header},
     {"path", SelectorKind::path},
     {"vihf", SelectorKind::vihf}}};

// `source: { "10.1.2.0/24": <tenant id>, ... }`
void parse_source_rules(const MapView& m, const YAML::Node& rules, const SourceMark& at, Listener& l,
                        ParseState& state) {
  const std::string what = m.what() + ": selectors: source";
  if (!rules.IsMap() || rules.size() == 0) {
    m.diags().error(rules.IsNull() ? at : mark_of(rules, m.file()),
                    what + ": expected a mapping of CIDR → tenant id (e.g. \"10.1.2.0/24\": \"312345678200002\")");
    return;
  }
  for (auto it = rules.begin(); it != rules.end(); ++it) {
    const SourceMark key_at = mark_of(it->first, m.file());
    if (!it->first.IsScalar() || !it->second.IsScalar() || it->second.Scalar().empty()) {
      m.diags().error(key_at, what + ": each rule is \"CIDR\": tenant id");
      continue;
    }
    auto net = parse_cidr(it->first.Scalar());
    if (!net.value) {
      m.diags().error(key_at, what + ": " + net.error);
      continue;
    }
    bool duplicate = false;
    for (const auto& other : l.source_tenants)
      if (other.network.v6 == net.value->v6 && other.network.prefix_len == net.value->prefix_len &&
          other.network.bytes == net.value->bytes) {
        m.diags().error(key_at, what + ": network " + it->first.Scalar() + " is already mapped at " + other.mark.str());
        duplicate = true;
      }
    if (duplicate) continue;
    const SourceMark value_at = mark_of(it->second, m.file());
    l.source_tenants.push_back({std::move(*net.value), it->second.Scalar(), key_at});
    state.references.push_back({Reference::Kind::tenant, it->second.Scalar(), value_at, what});
  }
}

// `client_cert: { "<sha256 fingerprint>": <tenant id>, "OU=<text>": <tenant id>, ... }`
void parse_client_cert_rules(const MapView& m, const YAML::Node& rules, const SourceMark& at, Listener& l,
                             ParseState& state) {
  const std::string what = m.what() + ": selectors: client_cert";
  if (!rules.IsMap() || rules.size() == 0) {
    m.diags().error(rules.IsNull() ? at : mark_of(rules, m.file()),
                    what + ": expected a mapping of certificate fingerprint or OU=<text> → tenant id");
    return;
  }
  for (auto it = rules.begin(); it != rules.end(); ++it) {
    const SourceMark key_at = mark_of(it->first, m.file());
    if (!it->first.IsScalar() || !it->second.IsScalar() || it->second.Scalar().empty()) {
      m.diags().error(key_at, what + ": each rule is fingerprint (or OU=<text>): tenant id");
      continue;
    }
    const std::string& key = it->first.Scalar();
    ClientCertTenantRule rule;
    rule.mark = key_at;
    rule.tenant = it->second.Scalar();
    if (key.starts_with("OU=") && key.size() > 3) {
      rule.match = ClientCertTenantRule::Match::ou;
      rule.value = key.substr(3);
    } else if (auto hex = normalise_sha256(key)) {
      rule.match = ClientCertTenantRule::Match::sha256;
      rule.value = *hex;
    } else {
      m.diags().error(key_at, what + ": '" + key + "' is neither a SHA-256 fingerprint (64 hex digits) nor OU=<text>");
      continue;
    }
    const bool duplicate = std::any_of(l.client_cert_tenants.begin(), l.client_cert_tenants.end(),
                                       [&](const auto& o) { return o.match == rule.match && o.value == rule.value; });
    if (duplicate) {
      m.diags().error(key_at, what + ": '" + key + "' is mapped twice");
      continue;
    }
    state.references.push_back({Reference::Kind::tenant, rule.tenant, mark_of(it->second, m.file()), what});
    l.client_cert_tenants.push_back(std::move(rule));
  }
}

void parse_selectors(const MapView& m, Listener& l, ParseState& state) {
  const Field* f = m.field("selectors");
  if (!f) return;
  if (!expect_sequence(f->value, mark_of(f->key, m.file()), m.file(), m.diags(), m.what() + ": selectors")) return;
  if (f->value.size() == 0) {
    m.error_at("selectors", "the list is empty: name at least one selector (e.g. [header])");
    return;
  }
  l.selectors.clear();
  std::vector<std::string_view> names;
  for (const auto& [name, kind] : kSelectorKinds) names.push_back(name);
  for (const YAML::Node& item : f->value) {
    const SourceMark at = mark_of(item, m.file());
    // A selector is a name, or a one-key mapping name → its rules ({source: {...}}). Nodes are only
    // constructed, never assigned: assigning a yaml-cpp Node rebinds the document node it refers to.
    const bool has_params = item.IsMap() && item.size() == 1;
    if (!has_params && !item.IsScalar()) {
      m.diags().error(
          at, m.what() + ": selectors: expected a selector name or {name: rules}, found " + std::string(kind_of(item)));
      continue;
    }
    const YAML::Node name_node = has_params ? YAML::Node(item.begin()->first) : item;
    const YAML::Node params = has_params ? YAML::Node(item.begin()->second) : YAML::Node();
    const std::string text = name_node.IsScalar() ? name_node.Scalar() : std::string();
    auto it =
        std::find_if(kSelectorKinds.begin(), kSelectorKinds.end(), [&](const auto& k) { return k.first == text; });
    if (it == kSelectorKinds.end()) {
      m.diags().error(at, m.what() + ": selectors: unknown selector '" + text + "'" + hint(text, names));
      continue;
    }
    if (std::find(l.selectors.begin(), l.selectors.end(), it->second) != l.selectors.end()) {
      m.diags().error(at, m.what() + ": selectors: '" + text + "' is listed twice");
      continue;
    }
    l.selectors.push_back(it->second);
    if (has_params) {
      if (it->second == SelectorKind::source)
        parse_source_rules(m, params, at, l, state);
      else if (it->second == SelectorKind::client_cert)
        parse_client_cert_rules(m, params, at, l, state);
      else
        m.diags().error(at, m.what() + ": selectors: '" + text + "' takes no rules");
    } else if (it->second == SelectorKind::source) {
      m.diags().error(at, m.what() + ": selectors: 'source' needs its rules: {source: {\"CIDR\": tenant id, ...}}");
    }
  }
}

void parse_listener_tls(const MapView& m, Listener& l, bool allow_pin_value) {
  static constexpr std::array<std::string_view, 5> kKeys{"cert", "key", "client_ca", "require_client_cert",
                                                         "require_starttls"};
  if (!m.field("tls")) return;
  MapView t = sub_map(m, "tls", m.what() + ": tls", kKeys);
  if (!t.valid()) return;
  ListenerTls tls;
  tls.mark = t.mark();
  if (auto v = t.path("cert", true)) tls.cert_file = *v;
  tls.cert_mark = t.value_mark("cert");
  tls.key_mark = t.value_mark("key");
  tls.client_ca_mark = t.value_mark("client_ca");
  if (auto k = t.text("key", true)) {
    if (k->value.starts_with("pkcs11:")) {
      auto check = check_pkcs11_key_uri(k->value, allow_pin_value);
      for (const auto& e : check.errors) t.error_at("key", e);
      for (const auto& w : check.warnings) t.warning_at("key", w);
      tls.key = k->value;
    } else {
      tls.key = resolve_path(k->value, t.file());
    }
  }
  if (auto v = t.path("client_ca")) tls.client_ca_file = *v;
  if (auto v = t.boolean("require_client_cert")) tls.require_client_cert = *v;
  if (tls.require_client_cert && tls.client_ca_file.empty())
    t.error_at("require_client_cert", "client certificates need client_ca (the CAs that sign them)");
  if (auto v = t.boolean("require_starttls")) {
    tls.require_starttls = *v;
    if (l.mode != ListenerMode::smtp_starttls && l.mode != ListenerMode::imap_starttls)
      t.error_at("require_starttls", "applies to smtp-starttls and imap-starttls listeners only; a " +
                                         std::string(to_string(l.mode)) +
                                         " listener with `tls` speaks TLS from the first byte");
  }
  l.tls = std::move(tls);
}

}  // namespace

void parse_listeners(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 18> kKeys{
      "name",   "address",        "port",         "selectors",        "tenant_header",
      "tenant", "header_timeout", "idle_timeout", "max_header_bytes", "max_header_count",
      "tls",    "vihf_check",     "vihf_max_bytes", "mode",           "upstream",
      "max_connections", "body_timeout",   "body_min_rate"};
  static constexpr std::array<std::pair<std::string_view, ListenerMode>, 4> kModes{
      {{"http", ListenerMode::http},
       {"tunnel", ListenerMode::tunnel},
       {"smtp-starttls", ListenerMode::smtp_starttls},
       {"imap-starttls", ListenerMode::imap_starttls}}};
  const Field* f = top.field("listeners");
  if (!f) return;
  if (!expect_sequence(f->value, mark_of(f->key, top.file()), top.file(), top.diags(), "listeners")) return;
  for (std::size_t i = 0; i < f->value.size(); ++i) {
    const YAML::Node item = f->value[i];
    std::string what = "listener #" + std::to_string(i + 1);
    if (auto n = child_text(item, "name"); !n.empty()) what = "listener '" + n + "'";
    MapView m(item, mark_of(item, top.file()), top.file(), top.diags(), what, kKeys);
    if (!m.valid()) continue;
    Listener l;
    l.mark = m.mark();
    if (auto v = m.string("name", true)) {
      if (!is_simple_name(*v)) m.error_at("name", "'" + *v + "' is not a simple name (letters, digits, '-', '_', '.')");
      for (const auto& other : state.config.listeners)
        if (other.name == *v) m.error_at("name", "listener '" + *v + "' is already defined at " + other.mark.str());
      l.name = *v;
    }
    if (auto v = m.string("address")) {
      if (v->size() > 2 && v->front() == '[' && v->back() == ']')
        m.error_at("address", "write the IPv6 address without brackets: " + v->substr(1, v->size() - 2));
      else if (!is_ip_literal(*v) && *v != "localhost")
        m.error_at("address", "'" + *v +
                                  "' is not an IP address (or localhost); listeners bind addresses, "
                                  "not names");
      l.address = *v;
    }
    if (auto v = m.integer("port", 0, 65535))
      l.port = static_cast<std::uint16_t>(*v);
    else if (!m.field("port"))
      m.text("port", true);  // reports the missing key
    auto mode = m.choice<ListenerMode>("mode", kModes);
    if (mode) l.mode = *mode;
    // A misspelt mode is reported once, not again through the keys that belong to the intended mode.
    const bool mode_unknown = !mode && m.field("mode");
    const bool l4 = l.mode != ListenerMode::http || mode_unknown;
    // An L4 listener has no request to select from: its connections all belong to its one `tenant`.
    if (l4) l.selectors = {SelectorKind::fixed};
    parse_selectors(m, l, state);
    if (l4 && l.selectors != std::vector<SelectorKind>{SelectorKind::fixed}) {
      m.error_at("selectors", "a " + std::string(to_string(l.mode)) +
                                  " listener serves one site: only the 'fixed' selector (with 'tenant') applies");
      l.selectors = {SelectorKind::fixed};
    }
    if (auto t = m.text("upstream")) {
      l.upstream = t->value;
      if (!l4)
        m.error_at("upstream", "an http listener reaches upstreams through routes; 'upstream' is for the "
                               "tunnel, smtp-starttls and imap-starttls modes");
      else
        state.references.push_back({Reference::Kind::upstream, t->value, t->mark, m.what() + ": upstream"});
    } else if (l4 && !mode_unknown && !m.field("upstream")) {
      m.diags().error(m.mark(), m.what() + ": a " + std::string(to_string(l.mode)) +
                                    " listener needs 'upstream: <name>' (an upstream with an address)");
    }
    if (auto v = m.integer("max_connections", 1, 1000000)) {
      l.max_connections = *v;
      if (!l4) m.error_at("max_connections", "max_connections applies to L4 listeners (mode tunnel, smtp-starttls, "
                                             "imap-starttls); limit HTTP clients with clients.max_connections");
    }
    parse_listener_tls(m, l, state.config.pkcs11.allow_pin_value);
    if (auto v = m.boolean("vihf_check")) l.vihf_check = *v;
    if (auto v = m.size("vihf_max_bytes", 1024, 16 << 20)) l.vihf_max_bytes = *v;
    const bool by_cert =
        std::find(l.selectors.begin(), l.selectors.end(), SelectorKind::client_cert) != l.selectors.end();
    if (by_cert && (!l.tls || l.tls->client_ca_file.empty()))
      m.error_at("selectors",
                 "the client_cert selector needs tls with client_ca (client certificates are "
                 "only requested over TLS)");
    if (auto v = m.string("tenant_header")) {
      if (!is_http_token(*v)) m.error_at("tenant_header", "'" + *v + "' is not a valid HTTP header name");
      l.tenant_header = *v;
    }
    const bool fixed = std::find(l.selectors.begin(), l.selectors.end(), SelectorKind::fixed) != l.selectors.end();
    if (auto t = m.text("tenant")) {
      l.fixed_tenant = t->value;
      if (!fixed)
        m.error_at("tenant", "a fixed tenant needs the 'fixed' selector in selectors");
      else
        state.references.push_back({Reference::Kind::tenant, t->value, t->mark, m.what() + ": tenant"});
    } else if (fixed && !m.field("tenant")) {
      m.diags().error(m.mark(), m.what() + ": the 'fixed' selector needs 'tenant: <id>' naming a configured tenant");
    }
    if (auto v = m.duration("header_timeout", 1ms, 10min)) l.header_timeout = *v;
    if (auto v = m.duration("idle_timeout", 1ms, 1h)) l.idle_timeout = *v;
    if (auto v = m.duration("body_timeout", 1ms, 24h)) l.body_timeout = *v;
    if (auto v = m.size("body_min_rate", 0, 1ull << 30)) l.body_min_rate = *v;
    if (auto v = m.size("max_header_bytes", 1024, 1 << 20)) l.max_header_bytes = *v;
    if (auto v = m.integer("max_header_count", 1, 1000)) l.max_header_count = *v;
    state.config.listeners.push_back(std::move(l));
  }
}

}  // namespace orgproxy::config::detail
