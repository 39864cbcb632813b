// tenant_groups, clients, admin, logging and crl_files: who may use orgproxy, and how it reports.
#include <algorithm>
#include <array>

#include "net.hpp"
#include "sections.hpp"

namespace orgproxy::config::detail {
namespace {

// "*" alone means every one; "*" among names is a mistake.
bool is_star(const std::vector<Text>& items) { return items.size() == 1 && items[0].value == "*"; }

void refuse_star_among(const MapView& m, std::string_view key, const std::vector<Text>& items) {
  for (const auto& t : items)
    if (t.value == "*")
      m.diags().error(t.mark, m.what() + ": " + std::string(key) + ": '*' must stand alone (it means every one)");
}

// SHA-256 hex values; the value is never quoted back (a bearer token pasted by mistake must not reach logs).
std::vector<std::string> sha256_list(const MapView& m, std::string_view key, std::string_view what_hash) {
  std::vector<std::string> out;
  auto items = m.list(key);
  if (!items) return out;
  for (const auto& t : *items) {
    auto hex = normalise_sha256(t.value);
    if (!hex) {
      m.diags().error(t.mark, m.what() + ": " + std::string(key) + ": expected " + std::string(what_hash) +
                                  " as 64 hex digits (optionally AB:CD:... pairs); the value is not shown");
      continue;
    }
    if (std::find(out.begin(), out.end(), *hex) != out.end()) {
      m.diags().error(t.mark, m.what() + ": " + std::string(key) + ": the same fingerprint is listed twice");
      continue;
    }
    out.push_back(*hex);
  }
  return out;
}

}  // namespace

void parse_tenant_groups(const MapView& top, ParseState& state) {
  const Field* f = top.field("tenant_groups");
  if (!f || f->value.IsNull()) return;
  if (!f->value.IsMap()) {
    top.error_at("tenant_groups",
                 "expected a mapping of group name → list of tenant ids, found " + std::string(kind_of(f->value)));
    return;
  }
  for (auto it = f->value.begin(); it != f->value.end(); ++it) {
    const SourceMark at = mark_of(it->first, top.file());
    if (!it->first.IsScalar()) {
      top.diags().error(at, "tenant_groups: a group name must be a plain word");
      continue;
    }
    const std::string name = it->first.Scalar();
    if (!is_simple_name(name))
      top.diags().error(at, "tenant group '" + name + "': not a simple name (letters, digits, '-', '_', '.')");
    if (auto prev = state.group_marks.find(name); prev != state.group_marks.end()) {
      top.diags().error(at, "tenant group '" + name + "' is defined twice: here and at " + prev->second.str());
      continue;
    }
    state.group_marks.emplace(name, at);
    const std::string what = "tenant group '" + name + "'";
    if (!it->second.IsSequence()) {
      top.diags().error(it->second.IsNull() ? at : mark_of(it->second, top.file()),
                        what + ": expected a list of tenant ids, found " + std::string(kind_of(it->second)));
      continue;
    }
    auto& members = state.config.tenant_groups[name];
    // A named copy: `it->second` lives in a proxy that dies at the end of the full expression.
    const YAML::Node list = it->second;
    for (const YAML::Node& item : list) {
      const SourceMark m = mark_of(item, top.file());
      if (!item.IsScalar() || item.Scalar().empty()) {
        top.diags().error(m, what + ": expected a tenant id, found " + std::string(kind_of(item)));
        continue;
      }
      if (std::find(members.begin(), members.end(), item.Scalar()) != members.end()) {
        top.diags().error(m, what + ": '" + item.Scalar() + "' is listed twice");
        continue;
      }
      members.push_back(item.Scalar());
      state.references.push_back({Reference::Kind::tenant, item.Scalar(), m, what});
    }
  }
}

void parse_clients(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 11> kKeys{
      "name",   "cidr",      "cert_sha256",     "cert_subject", "bearer_sha256", "tenants",
      "groups", "upstreams", "max_connections", "rate",         "burst"};
  const Field* f = top.field("clients");
  if (!f) return;
  if (!expect_sequence(f->value, mark_of(f->key, top.file()), top.file(), top.diags(), "clients")) return;
  for (std::size_t i = 0; i < f->value.size(); ++i) {
    const YAML::Node item = f->value[i];
    std::string what = "client #" + std::to_string(i + 1);
    if (auto n = child_text(item, "name"); !n.empty()) what = "client '" + n + "'";
    MapView m(item, mark_of(item, top.file()), top.file(), top.diags(), what, kKeys);
    if (!m.valid()) continue;
    Client c;
    c.mark = m.mark();
    if (auto v = m.string("name", true)) {
      if (!is_simple_name(*v)) m.error_at("name", "'" + *v + "' is not a simple name (letters, digits, '-', '_', '.')");
      for (const auto& other : state.config.clients)
        if (other.name == *v) m.error_at("name", "client '" + *v + "' is already defined at " + other.mark.str());
      c.name = *v;
    }
    if (auto items = m.list("cidr"))
      for (const auto& t : *items) {
        auto net = parse_cidr(t.value);
        if (!net.value)
          m.diags().error(t.mark, m.what() + ": cidr: " + net.error);
        else
          c.cidrs.push_back(std::move(*net.value));
      }
    c.cert_sha256 = sha256_list(m, "cert_sha256", "a certificate's SHA-256 fingerprint");
    if (auto items = m.list("cert_subject"))
      for (const auto& t : *items) {
        if (t.value.find('=') == std::string::npos)
          m.diags().error(t.mark, m.what() + ": cert_subject: '" + t.value +
                                      "' is not a subject (write it as "
                                      "RFC 4514, e.g. CN=ris,O=Groupe Exemple,C=FR)");
        else
          c.cert_subjects.push_back(t.value);
      }
    c.bearer_sha256 = sha256_list(m, "bearer_sha256", "the SHA-256 of the token (never the token itself)");
    const bool has_criterion =
        m.field("cidr") || m.field("cert_sha256") || m.field("cert_subject") || m.field("bearer_sha256");
    if (!has_criterion)
      m.diags().error(m.mark(), m.what() +
                                    ": a client needs at least one of cidr, cert_sha256, cert_subject, "
                                    "bearer_sha256 (who it is)");
    if (auto items = m.list("tenants")) {
      if (is_star(*items)) {
        c.all_tenants = true;
      } else {
        refuse_star_among(m, "tenants", *items);
        for (const auto& t : *items) {
          if (t.value == "*") continue;
          c.tenants.push_back(t.value);
          state.references.push_back({Reference::Kind::tenant, t.value, t.mark, m.what() + ": tenants"});
        }
      }
    }
    if (auto items = m.list("groups"))
      for (const auto& t : *items) {
        c.groups.push_back(t.value);
        state.references.push_back({Reference::Kind::group, t.value, t.mark, m.what() + ": groups"});
      }
    if (!m.field("tenants") && !m.field("groups"))
      m.diags().error(m.mark(), m.what() +
                                    ": say which tenants the client may act for: tenants (ids or \"*\") "
                                    "and/or groups");
    c.all_upstreams = true;
    if (auto items = m.list("upstreams")) {
      if (!is_star(*items)) {
        c.all_upstreams = false;
        refuse_star_among(m, "upstreams", *items);
        for (const auto& t : *items) {
          if (t.value == "*") continue;
          c.upstreams.push_back(t.value);
          state.references.push_back({Reference::Kind::upstream, t.value, t.mark, m.what() + ": upstreams"});
        }
      }
    }
    if (auto v = m.integer("max_connections", 1, 1'000'000)) c.max_connections = static_cast<unsigned>(*v);
    if (auto v = m.integer("rate", 1, 1'000'000)) c.rate = static_cast<unsigned>(*v);
    if (auto v = m.integer("burst", 1, 1'000'000)) {
      c.burst = static_cast<unsigned>(*v);
      if (!m.field("rate")) m.error_at("burst", "burst needs a rate (requests per second)");
    }
    if (c.rate && !c.burst) c.burst = c.rate;
    state.config.clients.push_back(std::move(c));
  }
}

void parse_admin(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 4> kKeys{"address", "port", "bearer_sha256", "per_tenant_metrics"};
  if (!top.field("admin")) return;
  MapView m = sub_map(top, "admin", "admin", kKeys);
  if (!m.valid()) return;
  AdminListener a;
  a.mark = m.mark();
  if (auto v = m.string("address")) {
    if (!is_ip_literal(*v) && *v != "localhost")
      m.error_at("address", "'" + *v + "' is not an IP address (or localhost)");
    a.address = *v;
  }
  if (auto v = m.integer("port", 0, 65535))
    a.port = static_cast<std::uint16_t>(*v);
  else if (!m.field("port"))
    m.text("port", true);
  a.bearer_sha256 = sha256_list(m, "bearer_sha256", "the SHA-256 of the admin token (never the token itself)");
  if (auto v = m.boolean("per_tenant_metrics")) a.per_tenant_metrics = *v;
  if (!is_loopback(a.address) && !m.field("bearer_sha256"))
    m.diags().error(m.value_mark("address"),
                    "admin: the admin endpoint on " + a.address + " (not loopback) needs bearer_sha256");
  state.config.admin = std::move(a);
}

void parse_logging(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 3> kKeys{"access_log", "rotate_size", "rotate_count"};
  MapView m = sub_map(top, "logging", "logging", kKeys);
  if (!m.valid()) return;
  LoggingSettings& l = state.config.logging;
  if (auto t = m.text("access_log")) l.access_log = t->value == "stdout" ? t->value : resolve_path(t->value, m.file());
  if (auto v = m.size("rotate_size", 1024, 1ull << 40)) l.rotate_size = *v;
  if (auto v = m.integer("rotate_count", 1, 1000)) l.rotate_count = static_cast<unsigned>(*v);
  if (l.access_log == "stdout") {
    if (m.field("rotate_size")) m.error_at("rotate_size", "rotation applies to an access log file, not stdout");
    if (m.field("rotate_count")) m.error_at("rotate_count", "rotation applies to an access log file, not stdout");
  } else if (m.field("rotate_count") && !m.field("rotate_size")) {
    m.error_at("rotate_count", "rotate_count needs rotate_size (the size at which the file is rotated)");
  }
  if (l.rotate_size && !l.rotate_count) l.rotate_count = 5;
}

void parse_crl_files(const MapView& top, ParseState& state) {
  auto items = top.list("crl_files");
  if (!items) return;
  for (const auto& t : *items) state.config.crl_files.push_back(resolve_path(t.value, top.file()));
}

}  // namespace orgproxy::config::detail
