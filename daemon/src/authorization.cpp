#include "orgproxy/daemon/authorization.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <unordered_map>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>

#include "orgproxy/daemon/http_rules.hpp"

namespace orgproxy::daemon {

namespace http = boost::beast::http;

PeerAddress PeerAddress::from(const boost::asio::ip::address& a) {
  PeerAddress p;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), p.bytes.begin());
    p.size = 4;
  } else {
    auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), p.bytes.begin());
    p.size = 16;
  }
  return p;
}

std::string_view source_tenant(const std::vector<config::SourceTenantRule>& rules, const PeerAddress& peer) {
  const config::SourceTenantRule* best = nullptr;
  for (auto const& r : rules) {
    if (!r.network.contains(peer.view())) continue;
    if (!best || r.network.prefix_len > best->network.prefix_len) best = &r;
  }
  return best ? std::string_view(best->tenant) : std::string_view{};
}

std::string sha256_hex(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 0xf];
  }
  return out;
}

namespace {

// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), or "".
template <class Fields>
std::string_view bearer_token(const Fields& fields) {
  auto it = fields.find(http::field::authorization);
  if (it == fields.end()) return {};
  std::string_view v = trim_ows(it->value());
  constexpr std::string_view kScheme = "bearer ";
  if (v.size() <= kScheme.size() || !boost::beast::iequals(v.substr(0, kScheme.size()), kScheme)) return {};
  return trim_ows(v.substr(kScheme.size()));
}

template <class Fields>
ClientDecision authorize_client_of(const std::vector<config::Client>& clients, const PeerAddress& peer,
                                   const Fields& fields, std::string_view tenant, std::string_view upstream,
                                   const PeerCertificate* cert) {
  ClientDecision d;
  if (clients.empty()) {
    d.allowed = true;
    return d;
  }
  std::string token_hash;  // computed at most once, only if a rule asks for a bearer token
  bool token_hashed = false;
  for (auto const& c : clients) {
    if (!c.cidrs.empty() &&
        std::none_of(c.cidrs.begin(), c.cidrs.end(), [&](auto const& n) { return n.contains(peer.view()); }))
      continue;
    if (!c.cert_sha256.empty() &&
        (!cert || std::find(c.cert_sha256.begin(), c.cert_sha256.end(), cert->sha256) == c.cert_sha256.end()))
      continue;
    if (!c.cert_subjects.empty() &&
        (!cert || std::find(c.cert_subjects.begin(), c.cert_subjects.end(), cert->subject) == c.cert_subjects.end()))
      continue;
    if (!c.bearer_sha256.empty()) {
      if (!token_hashed) {
        token_hashed = true;
        if (auto token = bearer_token(fields); !token.empty()) token_hash = sha256_hex(token);
      }
      if (token_hash.empty() ||
          std::find(c.bearer_sha256.begin(), c.bearer_sha256.end(), token_hash) == c.bearer_sha256.end())
        continue;
      d.used_bearer = true;
    }
    d.client = &c;
    if (!c.allows_tenant(tenant)) {
      d.reason = "client may not act for this tenant";
      return d;
    }
    if (!upstream.empty() && !c.allows_upstream(upstream)) {
      d.reason = "client may not reach this upstream";
      return d;
    }
    d.allowed = true;
    return d;
  }
  d.reason = "no client rule matches this request";
  return d;
}

}  // namespace

ClientDecision authorize_client(const std::vector<config::Client>& clients, const PeerAddress& peer,
                                const http::fields& fields, std::string_view tenant, std::string_view upstream,
                                const PeerCertificate* cert) {
  return authorize_client_of(clients, peer, fields, tenant, upstream, cert);
}

ClientDecision authorize_client(const std::vector<config::Client>& clients, const PeerAddress& peer,
                                const HeadFields& fields, std::string_view tenant, std::string_view upstream,
                                const PeerCertificate* cert) {
  return authorize_client_of(clients, peer, fields, tenant, upstream, cert);
}

ClientLimiter::ClientLimiter(const std::vector<config::Client>& clients, const ClientLimiter* previous)
    : clients_(clients) {
  std::unordered_map<std::string_view, const std::shared_ptr<State>*> kept;
  if (previous) {
    kept.reserve(previous->clients_.size());
    for (std::size_t i = 0; i < previous->clients_.size(); ++i) kept.emplace(previous->clients_[i].name, &previous->state_[i]);
  }
  state_.reserve(clients.size());
  for (auto const& c : clients) {
    auto it = kept.find(c.name);
    state_.push_back(it != kept.end() ? *it->second : std::make_shared<State>());
  }
}

unsigned ClientLimiter::connections(const config::Client& client) const {
  return state_[index_of(client)]->connections.load(std::memory_order_relaxed);
}

bool ClientLimiter::admit_request(const config::Client& client, std::int64_t now_ns) {
  if (client.rate == 0) return true;
  const std::int64_t interval = 1'000'000'000LL / client.rate;
  const std::int64_t burst = client.burst ? client.burst : client.rate;
  const std::int64_t tolerance = interval * burst;
  auto& tat = state_[index_of(client)]->tat_ns;
  std::int64_t seen = tat.load(std::memory_order_relaxed);
  for (;;) {
    std::int64_t next = std::max(seen, now_ns) + interval;
    if (next - now_ns > tolerance) return false;
    if (tat.compare_exchange_weak(seen, next, std::memory_order_relaxed)) return true;
  }
}

bool ClientLimiter::open_connection(const config::Client& client) {
  auto& n = state_[index_of(client)]->connections;
  if (client.max_connections == 0) {
    n.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  unsigned seen = n.load(std::memory_order_relaxed);
  do {
    if (seen >= client.max_connections) return false;
  } while (!n.compare_exchange_weak(seen, seen + 1, std::memory_order_relaxed));
  return true;
}

void ClientLimiter::close_connection(const config::Client& client) {
  state_[index_of(client)]->connections.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace orgproxy::daemon
