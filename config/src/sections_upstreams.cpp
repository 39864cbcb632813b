// upstreams and routes sections.
#include <algorithm>
#include <array>
#include <cctype>

#include "net.hpp"
#include "sections.hpp"

namespace orgproxy::config::detail {

using namespace std::chrono_literals;

namespace {

constexpr std::array<std::pair<std::string_view, Purpose>, 5> kPurposes{{{"dmp", Purpose::dmp},
                                                                         {"insi-auto", Purpose::insi_auto},
                                                                         {"insi-manu", Purpose::insi_manu},
                                                                         {"mssante", Purpose::mssante},
                                                                         {"vihf-sign", Purpose::vihf_sign}}};
constexpr std::array<std::pair<std::string_view, Environment>, 2> kEnvironments{
    {{"test", Environment::test}, {"production", Environment::production}}};
constexpr std::array<std::pair<std::string_view, TlsVersion>, 2> kTlsVersions{
    {{"1.2", TlsVersion::tls1_2}, {"1.3", TlsVersion::tls1_3}}};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void parse_upstream(const YAML::Node& key, const YAML::Node& value, const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 15> kKeys{"url",
                                                          "address",
                                                          "sni",
                                                          "ca_file",
                                                          "environment",
                                                          "purpose",
                                                          "tls_min",
                                                          "tls_max",
                                                          "connect_timeout",
                                                          "handshake_timeout",
                                                          "first_byte_timeout",
                                                          "idle_timeout",
                                                          "max_idle_per_key",
                                                          "proxy",
                                                          "crl_files"};
  const std::string name = key.Scalar();
  MapView m(value, mark_of(key, top.file()), top.file(), top.diags(), "upstream '" + name + "'", kKeys);
  if (!is_simple_name(name))
    top.diags().error(mark_of(key, top.file()),
                      "upstream '" + name + "': not a simple name (letters, digits, '-', '_', '.')");
  if (!m.valid()) return;
  Upstream u;
  u.name = name;
  u.mark = mark_of(key, top.file());
  const bool l4 = m.field("address") != nullptr;
  if (l4 && m.field("url")) m.error_at("address", "give either url (HTTP upstream) or address (L4 upstream), not both");
  if (l4) {
    if (auto t = m.text("address", true)) {
      u.address = t->value;
      auto parsed = parse_host_port(t->value);
      if (!parsed.value) {
        m.error_at("address", parsed.error);
      } else {
        u.host = parsed.value->host;
        u.port = parsed.value->port;
        u.sni = is_ip_literal(u.host) ? std::string() : u.host;
      }
    }
  } else if (auto t = m.text("url", true)) {
    u.url = t->value;
    auto parsed = parse_https_url(t->value);
    if (!parsed.value) {
      m.error_at("url", parsed.error);
    } else {
      u.host = parsed.value->host;
      u.port = parsed.value->port;
      u.base_path = parsed.value->base_path;
      // RFC 6066 §3: SNI carries host names only, never IP literals.
      u.sni = is_ip_literal(u.host) ? std::string() : u.host;
    }
  }
  if (auto t = m.text("sni")) {
    std::string sni = lower(t->value);
    if (!sni.empty() && sni.back() == '.') sni.pop_back();
    if (is_ip_literal(sni) || (sni.size() > 2 && sni.front() == '['))
      m.error_at("sni", "'" + t->value +
                            "' is an IP address; RFC 6066 allows only host names in SNI (leave sni "
                            "out for an IP upstream: no SNI is sent)");
    else if (!is_dns_name(sni))
      m.error_at("sni", "'" + t->value + "' is not a valid host name");
    else
      u.sni = sni;
  }
  if (auto v = m.path("ca_file"))
    u.ca_file = *v;
  else if (!m.field("ca_file"))
    m.diags().error(m.mark(), m.what() +
                                  ": missing required key 'ca_file' (upstream trust is the IGC Santé CA "
                                  "bundle, never the system store)");
  if (auto v = m.choice<Environment>("environment", kEnvironments, true)) u.environment = *v;
  if (auto v = m.choice<Purpose>("purpose", kPurposes, true)) u.purpose = *v;
  if (auto v = m.choice<TlsVersion>("tls_min", kTlsVersions)) u.tls_min = *v;
  if (auto v = m.choice<TlsVersion>("tls_max", kTlsVersions)) u.tls_max = *v;
  if (u.tls_min > u.tls_max)
    m.error_at("tls_min", "tls_min " + std::string(to_string(u.tls_min)) + " is above tls_max " +
                              std::string(to_string(u.tls_max)));
  if (auto v = m.duration("connect_timeout", 1ms, 10min)) u.connect_timeout = *v;
  if (auto v = m.duration("handshake_timeout", 1ms, 10min)) u.handshake_timeout = *v;
  if (auto v = m.duration("first_byte_timeout", 1ms, 1h)) u.first_byte_timeout = *v;
  if (auto v = m.duration("idle_timeout", 1ms, 1h)) u.idle_timeout = *v;
  if (auto v = m.integer("max_idle_per_key", 0, 1024)) u.max_idle_per_key = *v;
  if (auto items = m.list("crl_files"))
    for (const auto& t : *items) u.crl_files.push_back(resolve_path(t.value, top.file()));
  if (m.field("proxy")) {
    static constexpr std::array<std::string_view, 3> kProxyKeys{"url", "credentials_file", "connect_timeout"};
    MapView p = sub_map(m, "proxy", m.what() + ": proxy", kProxyKeys);
    if (p.valid()) {
      UpstreamProxy proxy;
      proxy.mark = p.mark();
      if (auto t = p.text("url", true)) {
        proxy.url = t->value;
        auto parsed = parse_proxy_url(t->value);
        if (!parsed.value) {
          p.error_at("url", parsed.error);
        } else {
          proxy.host = parsed.value->host;
          proxy.port = parsed.value->port;
        }
      }
      if (auto v = p.path("credentials_file")) {
        proxy.credentials_file = *v;
        proxy.credentials_mark = p.value_mark("credentials_file");
      }
      // Reaching the proxy and its CONNECT answer (the proxy dials the upstream meanwhile).
      proxy.connect_timeout = u.connect_timeout;
      if (auto v = p.duration("connect_timeout", 1ms, 10min)) proxy.connect_timeout = *v;
      u.proxy = std::move(proxy);
    }
  }
  state.upstreams.push_back(std::move(u));
}

// Route prefix rules: starts with '/', no dot-segments, no %-escapes, no query; trailing '/' removed.
std::optional<std::string> normalise_prefix(const MapView& m, const std::string& text) {
  if (text.empty() || text.front() != '/') {
    m.error_at("prefix", "'" + text + "' must start with '/'");
    return std::nullopt;
  }
  if (text.find('%') != std::string::npos) {
    m.error_at("prefix", "'" + text + "' contains a %-escape; write the path plainly");
    return std::nullopt;
  }
  for (char c : text)
    if (c == '?' || c == '#' || c == '\\' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      m.error_at("prefix", "'" + text +
                               "' contains a character not allowed in a path prefix ('?', '#', '\\', "
                               "space or control)");
      return std::nullopt;
    }
  std::string p = text;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  for (std::size_t pos = 0; pos < p.size() && p != "/";) {
    const auto next = p.find('/', pos + 1);
    const std::string seg = p.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    if (seg == "." || seg == "..") {
      m.error_at("prefix", "'" + text + "' contains a dot-segment ('.' or '..')");
      return std::nullopt;
    }
    if (seg.empty()) {
      m.error_at("prefix", "'" + text + "' contains an empty segment ('//')");
      return std::nullopt;
    }
    if (next == std::string::npos) break;
    pos = next;
  }
  return p;
}

}  // namespace

void parse_upstreams(const MapView& top, ParseState& state) {
  const Field* f = top.field("upstreams");
  if (!f || f->value.IsNull()) return;
  if (!f->value.IsMap()) {
    top.diags().error(mark_of(f->value, top.file()),
                      "upstreams: expected a mapping of name → upstream, found " + std::string(kind_of(f->value)));
    return;
  }
  std::vector<std::string> seen;
  for (auto it = f->value.begin(); it != f->value.end(); ++it) {
    if (!it->first.IsScalar()) {
      top.diags().error(mark_of(it->first, top.file()), "upstreams: an upstream name must be a plain word");
      continue;
    }
    // Same-file duplicates are reported by the loader together with cross-file ones.
    parse_upstream(it->first, it->second, top, state);
  }
}

void parse_routes(const MapView& top, ParseState& state) {
  static constexpr std::array<std::string_view, 4> kKeys{"prefix", "host", "upstream", "max_body"};
  const Field* f = top.field("routes");
  if (!f) return;
  if (!expect_sequence(f->value, mark_of(f->key, top.file()), top.file(), top.diags(), "routes")) return;
  for (std::size_t i = 0; i < f->value.size(); ++i) {
    const YAML::Node item = f->value[i];
    std::string what = "route #" + std::to_string(i + 1);
    if (auto n = child_text(item, "prefix"); !n.empty()) what = "route '" + n + "'";
    MapView m(item, mark_of(item, top.file()), top.file(), top.diags(), what, kKeys);
    if (!m.valid()) continue;
    Route r;
    r.mark = m.mark();
    bool ok = true;
    if (auto t = m.text("prefix", true)) {
      if (auto p = normalise_prefix(m, t->value))
        r.prefix = *p;
      else
        ok = false;
    } else {
      ok = false;
    }
    if (auto t = m.text("host")) {
      std::string h = lower(t->value);
      if (!h.empty() && h.back() == '.') h.pop_back();
      if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
      if (h.find(':') != std::string::npos && !is_ipv6_literal(h)) {
        m.error_at("host", "'" + t->value + "': write the host without a port (ports are ignored when matching)");
        ok = false;
      } else if (!is_dns_name(h) && !is_ip_literal(h)) {
        m.error_at("host", "'" + t->value + "' is not a valid host name or IP address");
        ok = false;
      }
      r.host = h;
    }
    if (auto t = m.text("upstream", true)) {
      r.upstream = t->value;
      state.references.push_back({Reference::Kind::upstream, t->value, t->mark, m.what() + ": upstream"});
    }
    if (auto v = m.size("max_body", 0, 1ull << 40)) r.max_body_bytes = *v;
    if (ok) {
      for (const Route& other : state.config.routes)
        if (other.prefix == r.prefix && other.host == r.host)
          m.error_at("prefix", "route '" + r.prefix + "'" + (r.host.empty() ? "" : " for host " + r.host) +
                                   " is already defined at " + other.mark.str());
    }
    state.config.routes.push_back(std::move(r));
  }
}

}  // namespace orgproxy::config::detail
