#include "orgproxy/daemon/runtime.hpp"

#include <malloc.h>

#include <exception>
#include <set>
#include <string_view>
#include <thread>

#include <openssl/ssl.h>

#include <boost/asio/ip/address.hpp>

#include "orgproxy/config/load.hpp"
#include "orgproxy/daemon/http_rules.hpp"
#include "orgproxy/keystore/trust_store.hpp"

namespace orgproxy::daemon {

IdentityPick pick_identity(const std::vector<IdentitySlot>& slots, std::chrono::system_clock::time_point now) {
  IdentityPick pick;
  if (slots.empty()) {
    pick.error = ErrorCode::identity_missing;
    return pick;
  }
  for (auto const& slot : slots) {
    const keystore::Identity* id = slot.identity.get();
    if (!id || !id->usable() || now < id->not_before() || now >= id->not_after()) continue;
    if (!pick.identity || id->not_before() > pick.identity->not_before()) pick.identity = id;
  }
  if (!pick.identity) pick.error = ErrorCode::identity_unavailable;
  return pick;
}

UpstreamState make_upstream_state(const config::Upstream& u) {
  UpstreamState s;
  s.upstream = &u;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(u.host, ec);
  bool host_is_ip = !ec;
  // Config defaults sni to host unless host is an IP literal; an IP literal is never sent as SNI.
  if (!u.sni.empty()) {
    boost::asio::ip::make_address(u.sni, ec);
    if (ec) s.sni = u.sni;
  }
  if (!s.sni.empty()) {
    s.verify_name = s.sni;
  } else {
    s.verify_name = host_is_ip ? addr.to_string() : u.host;
    s.verify_is_ip = host_is_ip;
  }
  s.authority = upstream_authority(!s.sni.empty() ? std::string_view(s.sni) : std::string_view(u.host), u.port);
  s.port_text = std::to_string(u.port);
  if (u.proxy) {
    EgressProxy p;
    p.url = u.proxy->url;
    p.host = u.proxy->host;
    p.port_text = std::to_string(u.proxy->port);
    // The proxy dials the URL's host (never the SNI name): the same address a direct dial would reach.
    // RFC 9110 §9.3.6: authority-form, port always written.
    const bool v6 = u.host.find(':') != std::string::npos;
    p.target = (v6 ? "[" + u.host + "]" : u.host) + ":" + std::to_string(u.port);
    p.connect_timeout = u.proxy->connect_timeout;
    if (!u.proxy->credentials_file.empty()) {
      try {
        p.authorization = read_proxy_authorization(u.proxy->credentials_file);
      } catch (const std::exception& e) {
        throw RuntimeError(u.proxy->credentials_mark.str() + ": upstream " + u.name + ": " + e.what());
      }
    }
    s.proxy = std::move(p);
  }
  return s;
}

namespace {

// A listener's server context: from PEM files, or with its key in the token (loaded like an identity, with
// the server-certificate checks). A failure is fatal for the start or the reload, unlike an identity's.
std::shared_ptr<boost::asio::ssl::context> listener_tls_context(const config::ListenerTls& tls,
                                                                const std::string& name,
                                                                const std::shared_ptr<keystore::Keystore>& ks) {
  // A missing file is named at its setting, not left to an OpenSSL "system lib" message.
  auto require = [&name](const std::string& file, const config::SourceMark& mark, const char* setting) {
    if (file.empty()) return;
    if (std::string why = config::unreadable_file(file); !why.empty())
      throw RuntimeError(mark.str() + ": listener '" + name + "': tls: " + setting + ": cannot read '" + file +
                         "': " + why);
  };
  require(tls.cert_file, tls.cert_mark, "cert");
  if (!tls.key.starts_with("pkcs11:")) require(tls.key, tls.key_mark, "key");
  require(tls.client_ca_file, tls.client_ca_mark, "client_ca");
  if (!tls.key.starts_with("pkcs11:")) return make_listener_tls_context(tls, name);
  if (!ks) throw ListenerTlsError("listener " + name + ": its key is in a token but no keystore is open");
  keystore::IdentitySpec spec{"", "listener " + name, tls.cert_file, tls.key};
  spec.tls_server = true;
  auto loads = ks->load_identities({spec});
  if (loads.size() != 1 || !loads[0].identity)
    throw ListenerTlsError("listener " + name + ": server certificate and token key: " +
                           (loads.empty() ? std::string("not loaded") : loads[0].error));
  return make_listener_tls_context(tls, name, *ks, loads[0].identity);
}

// For each loaded identity, "" or why its chain fails: it must verify to the CA bundle of every upstream
// that will be offered it (the first failing upstream, in name order, is named). Each verification is an
// X509_verify_cert (two signature checks), a tenth of a 10,000-site start: the second half of the
// identities is verified on a second thread. Results are by index, so the outcome and its order do not
// depend on the threads (the trust store cache and the shared CA certificates are thread-safe).
std::vector<std::string> verify_chains(const config::Config& cfg, const std::vector<keystore::IdentitySpec>& specs,
                                       const std::vector<keystore::IdentityLoad>& loads) {
  std::vector<std::string> errors(specs.size());
  auto verify_range = [&](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) {
      if (!loads[i].identity) continue;
      for (auto const& [name, u] : cfg.upstreams) {
        if (config::to_string(u.purpose) != specs[i].purpose) continue;
        std::string why = keystore::verify_identity_chain(*loads[i].identity, u.ca_file);
        if (!why.empty()) {
          errors[i] = "chain does not verify to the CA bundle of upstream " + name + ": " + why;
          break;
        }
      }
    }
  };
  // Below this, a thread costs more than it saves.
  constexpr std::size_t kThreadedFrom = 64;
  if (specs.size() < kThreadedFrom) {
    verify_range(0, specs.size());
    return errors;
  }
  // Each bundle is parsed once, here, rather than by both threads at once.
  std::set<std::string_view> purposes;
  for (std::size_t i = 0; i < specs.size(); ++i)
    if (loads[i].identity) purposes.insert(specs[i].purpose);
  for (auto const& [name, u] : cfg.upstreams) {
    if (purposes.count(config::to_string(u.purpose)) == 0) continue;
    std::string ignored;  // verify_identity_chain reports it
    keystore::TrustStoreCache::shared().get(nullptr, u.ca_file, {}, ignored);
  }
  const std::size_t middle = specs.size() / 2;
  std::exception_ptr helper_failure;
  std::thread helper([&] {
    try {
      verify_range(middle, specs.size());
    } catch (...) {
      helper_failure = std::current_exception();
    }
  });
  try {
    verify_range(0, middle);
  } catch (...) {
    helper.join();
    throw;
  }
  helper.join();
  if (helper_failure) std::rethrow_exception(helper_failure);
  return errors;
}

}  // namespace

std::shared_ptr<const Runtime> Runtime::build(config::ConfigPtr config, std::shared_ptr<keystore::Keystore> keystore,
                                              std::uint64_t generation, std::vector<std::string>& problems,
                                              const Runtime* previous) {
  auto rt = std::shared_ptr<Runtime>(new Runtime());
  rt->config_ = std::move(config);
  rt->generation_ = generation;
  const config::Config& cfg = *rt->config_;
  rt->tls_contexts_ = std::make_unique<TlsContextCache>(keystore, cfg.crl_files);
  rt->client_limits_ =
      std::make_unique<ClientLimiter>(cfg.clients, previous ? previous->client_limits_.get() : nullptr);

  for (auto const& l : cfg.listeners) {
    rt->selectors_.emplace_back(l);
    try {
      rt->listener_tls_.push_back(l.tls ? listener_tls_context(*l.tls, l.name, keystore) : nullptr);
      // The http/1.1 ALPN rule is HTTP's; an L4 listener's client (SMTP, IMAP) may offer its own protocol.
      if (l.tls && l.mode != config::ListenerMode::http)
        SSL_CTX_set_alpn_select_cb(rt->listener_tls_.back()->native_handle(), nullptr, nullptr);
    } catch (const ListenerTlsError& e) {
      throw RuntimeError(l.tls->mark.str() + ": " + e.what());
    }
  }
  rt->upstreams_.reserve(cfg.routes.size());
  for (auto const& route : cfg.routes) {
    const config::Upstream* u = cfg.find_upstream(route.upstream);
    if (!u) throw RuntimeError("route " + route.prefix + " names unknown upstream " + route.upstream);
    rt->upstreams_.push_back(make_upstream_state(*u));
  }

  // One load_identities call for the whole config: the keystore does one object search per token.
  std::vector<keystore::IdentitySpec> specs;
  struct Where {
    std::string_view tenant;
    std::size_t purpose;
  };
  std::vector<Where> where;
  for (auto const& t : cfg.tenants) {
    rt->tenants_[t.id].tenant = &t;
    for (auto const& [purpose, refs] : t.identities) {
      for (auto const& ref : refs) {
        specs.push_back({t.id, std::string(config::to_string(purpose)), ref.cert_file, ref.key});
        where.push_back({t.id, purpose_index(purpose)});
      }
    }
  }
  std::vector<keystore::IdentityLoad> loads;
  if (keystore && !specs.empty()) {
    loads = keystore->load_identities(specs);
  } else {
    loads.resize(specs.size());
    for (auto& l : loads) l.error = "keystore not opened";
  }
  if (loads.size() != specs.size()) throw RuntimeError("keystore returned a wrong number of identities");

  const std::vector<std::string> chain_errors = verify_chains(cfg, specs, loads);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    IdentitySlot slot{std::move(loads[i].identity), std::move(loads[i].error)};
    if (slot.identity) {
      if (!chain_errors[i].empty()) {
        slot.error = chain_errors[i];
        slot.identity.reset();
      }
    } else if (slot.error.empty()) {
      slot.error = "not loaded";
    }
    if (slot.identity) {
      ++rt->loaded_;
    } else {
      ++rt->unavailable_;
      problems.push_back("tenant " + specs[i].tenant_id + " purpose " + specs[i].purpose + " (" +
                         (specs[i].cert_file.empty() ? std::string("certificate on the token") : specs[i].cert_file) +
                         "): identity unavailable: " + slot.error);
    }
    rt->tenants_[where[i].tenant].identities[where[i].purpose].push_back(std::move(slot));
  }
  if (cfg.settings.require_all_identities && rt->unavailable_ > 0)
    throw RuntimeError(std::to_string(rt->unavailable_) +
                       " identities unavailable and settings.require_all_identities is on");
  // The load's temporaries (the token's object index, parsed files, the module's own buffers) are freed by
  // now but stay in the process's heap; give the free pages back (glibc; a few ms) so the resident size
  // after start is what the snapshot holds.
  malloc_trim(0);
  return rt;
}

const TenantState* Runtime::find_tenant(std::string_view id) const {
  auto it = tenants_.find(id);
  return it == tenants_.end() ? nullptr : &it->second;
}

int Runtime::listener_index(std::string_view name) const {
  for (std::size_t i = 0; i < config_->listeners.size(); ++i)
    if (config_->listeners[i].name == name) return static_cast<int>(i);
  return -1;
}

const UpstreamState* Runtime::route_upstream(const config::Route* route) const {
  if (!route || config_->routes.empty()) return nullptr;
  auto index = static_cast<std::size_t>(route - config_->routes.data());
  return index < upstreams_.size() ? &upstreams_[index] : nullptr;
}

}  // namespace orgproxy::daemon
