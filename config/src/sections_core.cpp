// settings, pkcs11 and listeners sections.
#include <algorithm>
#include <array>
#include <cctype>

#include "net.hpp"
#include "sections.hpp"

namespace orgproxy::config::detail {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

namespace {
constexpr std::array<std::string_view, 7> kRootKeys{"settings", "pkcs11",  "listeners", "upstreams",
                                                    "routes",   "tenants", "include"};
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
  static constexpr std::array<std::string_view, 4> kKeys{"workers", "require_all_identities", "log_level",
                                                         "shutdown_grace"};
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kLevels{
      {{"trace", "trace"}, {"debug", "debug"}, {"info", "info"}, {"warn", "warn"}, {"error", "error"},
       {"critical", "critical"}, {"off", "off"}}};
  MapView m = sub_map(top, "settings", "settings", kKeys);
  if (!m.valid()) return;
  Settings& s = state.config.settings;
  if (auto v = m.integer("workers", 0, 1024)) s.workers = static_cast<unsigned>(*v);
  if (auto v = m.boolean("require_all_identities")) s.require_all_identities = *v;
  if (auto v = m.choice<std::string_view>("log_level", kLevels)) s.log_level = std::string(*v);
  if (auto v = m.duration("shutdown_grace", 0ms, 10min)) s.shutdown_grace = *v;
}

void parse_pkcs11(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 6> kKeys{"modules",         "pin_file",
                                                         "allow_pin_value", "allow_key_files",
                                                         "allow_extractable_keys", "max_concurrent_signs"};
  static constexpr std::array<std::string_view, 2> kModuleKeys{"name", "path"};
  MapView m = sub_map(top, "pkcs11", "pkcs11", kKeys);
  if (!m.valid()) return;
  Pkcs11Settings& p = state.config.pkcs11;
  p.mark = m.mark();
  if (auto v = m.path("pin_file")) p.pin_file = *v;
  if (auto v = m.boolean("allow_pin_value")) p.allow_pin_value = *v;
  if (auto v = m.boolean("allow_key_files")) p.allow_key_files = *v;
  if (auto v = m.boolean("allow_extractable_keys")) p.allow_extractable_keys = *v;
  if (auto v = m.integer("max_concurrent_signs", 0, 4096)) p.max_concurrent_signs = static_cast<unsigned>(*v);
  if (p.allow_pin_value)
    m.warning_at("allow_pin_value", "PINs written in key URIs end up in backups and process listings; "
                                    "prefer pin_file");
  if (p.allow_extractable_keys)
    m.warning_at("allow_extractable_keys", "keys that can leave the token are accepted");
  const Field* modules = m.field("modules");
  if (!modules || !expect_sequence(modules->value, mark_of(modules->key, m.file()), m.file(), m.diags(),
                                   "pkcs11.modules"))
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
        if (other.name == *v)
          mm.error_at("name", "module '" + *v + "' is already defined at " + other.mark.str());
      mod.name = *v;
    }
    // A bare file name is looked up by the dynamic loader like p11-kit does; only paths are resolved.
    if (auto t = mm.text("path")) mod.path = t->value.find('/') != std::string::npos
                                                ? resolve_path(t->value, m.file()) : t->value;
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

void parse_selectors(const MapView& m, Listener& l) {
  static constexpr std::array<std::pair<std::string_view, SelectorKind>, 6> kKinds{
      {{"fixed", SelectorKind::fixed},
       {"source", SelectorKind::source},
       {"client_cert", SelectorKind::client_cert},
       {"header", SelectorKind::header},
       {"path", SelectorKind::path},
       {"vihf", SelectorKind::vihf}}};
  const Field* f = m.field("selectors");
  if (!f) return;
  if (!expect_sequence(f->value, mark_of(f->key, m.file()), m.file(), m.diags(), m.what() + ": selectors")) return;
  if (f->value.size() == 0) {
    m.error_at("selectors", "the list is empty: name at least one selector (e.g. [header])");
    return;
  }
  l.selectors.clear();
  std::vector<std::string_view> names;
  for (const auto& [name, kind] : kKinds) names.push_back(name);
  for (const YAML::Node& item : f->value) {
    const SourceMark at = mark_of(item, m.file());
    if (!item.IsScalar()) {
      m.diags().error(at, m.what() + ": selectors: expected a selector name, found " + std::string(kind_of(item)));
      continue;
    }
    const std::string& text = item.Scalar();
    auto it = std::find_if(kKinds.begin(), kKinds.end(), [&](const auto& k) { return k.first == text; });
    if (it == kKinds.end()) {
      m.diags().error(at, m.what() + ": selectors: unknown selector '" + text + "'" + hint(text, names));
      continue;
    }
    if (std::find(l.selectors.begin(), l.selectors.end(), it->second) != l.selectors.end()) {
      m.diags().error(at, m.what() + ": selectors: '" + text + "' is listed twice");
      continue;
    }
    l.selectors.push_back(it->second);
  }
}

}  // namespace

void parse_listeners(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 10> kKeys{
      "name",         "address",          "port",          "selectors",        "tenant_header",
      "tenant",       "header_timeout",   "idle_timeout",  "max_header_bytes", "max_header_count"};
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
        m.error_at("address", "'" + *v + "' is not an IP address (or localhost); listeners bind addresses, "
                              "not names");
      l.address = *v;
    }
    if (auto v = m.integer("port", 0, 65535)) l.port = static_cast<std::uint16_t>(*v);
    else if (!m.field("port")) m.text("port", true);  // reports the missing key
    parse_selectors(m, l);
    if (auto v = m.string("tenant_header")) {
      if (!is_http_token(*v)) m.error_at("tenant_header", "'" + *v + "' is not a valid HTTP header name");
      l.tenant_header = *v;
    }
    const bool fixed = std::find(l.selectors.begin(), l.selectors.end(), SelectorKind::fixed) != l.selectors.end();
    if (auto t = m.text("tenant")) {
      l.fixed_tenant = t->value;
      if (!fixed) m.error_at("tenant", "a fixed tenant needs the 'fixed' selector in selectors");
      else state.references.push_back({Reference::Kind::tenant, t->value, t->mark, m.what() + ": tenant"});
    } else if (fixed && !m.field("tenant")) {
      m.diags().error(m.mark(), m.what() + ": the 'fixed' selector needs 'tenant: <id>' naming a configured tenant");
    }
    if (auto v = m.duration("header_timeout", 1ms, 10min)) l.header_timeout = *v;
    if (auto v = m.duration("idle_timeout", 1ms, 1h)) l.idle_timeout = *v;
    if (auto v = m.size("max_header_bytes", 1024, 1 << 20)) l.max_header_bytes = *v;
    if (auto v = m.integer("max_header_count", 1, 1000)) l.max_header_count = *v;
    state.config.listeners.push_back(std::move(l));
  }
}

}  // namespace orgproxy::config::detail
