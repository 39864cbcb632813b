// Names of the model's enumerations and the snapshot's lookups.
#include <algorithm>
#include <cctype>

#include "orgproxy/config/config.hpp"

namespace orgproxy::config {

std::string SourceMark::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string_view to_string(Purpose p) {
  switch (p) {
    case Purpose::dmp:
      return "dmp";
    case Purpose::insi_auto:
      return "insi-auto";
    case Purpose::insi_manu:
      return "insi-manu";
    case Purpose::mssante:
      return "mssante";
    case Purpose::vihf_sign:
      return "vihf-sign";
  }
  return "?";
}

std::optional<Purpose> parse_purpose(std::string_view text) {
  for (Purpose p : {Purpose::dmp, Purpose::insi_auto, Purpose::insi_manu, Purpose::mssante, Purpose::vihf_sign})
    if (to_string(p) == text) return p;
  return std::nullopt;
}

std::string_view to_string(Environment e) { return e == Environment::test ? "test" : "production"; }

std::string_view to_string(TlsVersion v) { return v == TlsVersion::tls1_2 ? "1.2" : "1.3"; }

std::string_view to_string(ListenerMode m) {
  switch (m) {
    case ListenerMode::http:
      return "http";
    case ListenerMode::tunnel:
      return "tunnel";
    case ListenerMode::smtp_starttls:
      return "smtp-starttls";
    case ListenerMode::imap_starttls:
      return "imap-starttls";
  }
  return "?";
}

std::string_view to_string(SelectorKind k) {
  switch (k) {
    case SelectorKind::fixed:
      return "fixed";
    case SelectorKind::source:
      return "source";
    case SelectorKind::client_cert:
      return "client_cert";
    case SelectorKind::header:
      return "header";
    case SelectorKind::path:
      return "path";
    case SelectorKind::vihf:
      return "vihf";
  }
  return "?";
}

bool IpNetwork::contains(std::span<const std::uint8_t> address) const {
  static constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!v6 && address.size() == 16 && std::equal(address.begin(), address.begin() + 12, kMappedPrefix))
    address = address.subspan(12);
  if (address.size() != (v6 ? 16u : 4u)) return false;
  unsigned bits = prefix_len;
  for (std::size_t i = 0; bits > 0; ++i) {
    const unsigned take = bits >= 8 ? 8 : bits;
    const std::uint8_t mask = static_cast<std::uint8_t>(0xff00u >> take);
    if ((address[i] & mask) != (bytes[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

const SourceTenantRule* Listener::source_rule_for(std::span<const std::uint8_t> address) const {
  const SourceTenantRule* best = nullptr;
  for (const auto& rule : source_tenants)
    if (rule.network.contains(address) && (!best || rule.network.prefix_len > best->network.prefix_len)) best = &rule;
  return best;
}

bool Client::allows_tenant(std::string_view id) const {
  return all_tenants || std::find(tenants.begin(), tenants.end(), id) != tenants.end();
}

bool Client::allows_upstream(std::string_view name) const {
  return all_upstreams || std::find(upstreams.begin(), upstreams.end(), name) != upstreams.end();
}

const Tenant* Config::find_tenant(std::string_view id) const {
  auto it = tenant_index_.find(id);
  return it == tenant_index_.end() ? nullptr : &tenants[it->second];
}

const Upstream* Config::find_upstream(std::string_view name) const {
  auto it = upstreams.find(std::string(name));
  return it == upstreams.end() ? nullptr : &it->second;
}

namespace {

// Host of a Host header value without port or IPv6 brackets, lower-cased ("[::1]:8080" → "::1").
std::string host_without_port(std::string_view host) {
  std::string_view h = host;
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    h = close == std::string_view::npos ? h.substr(1) : h.substr(1, close - 1);
  } else if (const auto colon = h.find(':'); colon != std::string_view::npos && h.find(':', colon + 1) == h.npos) {
    h = h.substr(0, colon);
  }
  std::string out(h);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!out.empty() && out.back() == '.') out.pop_back();  // "example.org." names the same host
  return out;
}

bool prefix_matches(std::string_view prefix, std::string_view path) {
  if (prefix == "/") return !path.empty() && path.front() == '/';
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

}  // namespace

const Route* Config::match_route(std::string_view path, std::string_view host) const {
  // `routes` is sorted longest prefix first, host-bound routes before host-less ones of the same prefix,
  // so the first match is the most specific.
  std::string request_host;
  bool host_computed = false;
  for (const Route& r : routes) {
    if (!prefix_matches(r.prefix, path)) continue;
    if (!r.host.empty()) {
      if (!host_computed) {
        request_host = host_without_port(host);
        host_computed = true;
      }
      if (request_host != r.host) continue;
    }
    return &r;
  }
  return nullptr;
}

void Config::build_index() {
  std::stable_sort(routes.begin(), routes.end(), [](const Route& a, const Route& b) {
    if (a.prefix.size() != b.prefix.size()) return a.prefix.size() > b.prefix.size();
    return !a.host.empty() && b.host.empty();
  });
  tenant_index_.clear();
  tenant_index_.reserve(tenants.size());
  for (std::size_t i = 0; i < tenants.size(); ++i) tenant_index_.emplace(tenants[i].id, i);
}

}  // namespace orgproxy::config
