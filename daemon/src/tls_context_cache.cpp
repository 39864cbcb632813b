#include "orgproxy/daemon/tls_context_cache.hpp"

#include <openssl/ssl.h>
#include <openssl/tls1.h>

namespace orgproxy::daemon {

namespace {
int to_openssl(config::TlsVersion v) { return v == config::TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }
}  // namespace

TlsContextCache::TlsContextCache(std::shared_ptr<keystore::Keystore> keystore, std::vector<std::string> crl_files,
                                 std::chrono::seconds evict_after)
    : keystore_(std::move(keystore)), crl_files_(std::move(crl_files)), evict_after_(evict_after) {}

keystore::TlsClientOptions TlsContextCache::options_for(const config::Upstream& upstream) const {
  keystore::TlsClientOptions options;
  options.ca_file = upstream.ca_file;
  options.min_version = to_openssl(upstream.tls_min);
  options.max_version = to_openssl(upstream.tls_max);
  options.crl_files = crl_files_;  // the top-level CRLs, then the upstream's own
  options.crl_files.insert(options.crl_files.end(), upstream.crl_files.begin(), upstream.crl_files.end());
  return options;
}

SslContextPtr TlsContextCache::find(const Key& key, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  evict_unused(now);
  if (auto it = entries_.find(key); it != entries_.end()) {
    it->second.last_used = now;
    return it->second.ctx;
  }
  return nullptr;
}

SslContextPtr TlsContextCache::insert(const Key& key, keystore::SslCtxPtr raw,
                                      std::chrono::steady_clock::time_point now) {
  // An idle pooled connection then holds no OpenSSL record buffers (about 34 KB less each); with one
  // idle connection per touched site, that is most of what 10,000 sites cost beyond Asio's own buffers.
  SSL_CTX_set_mode(raw.get(), SSL_MODE_RELEASE_BUFFERS);
  // asio's context takes ownership of the native handle (it frees it in its destructor).
  auto ctx = std::make_shared<boost::asio::ssl::context>(raw.release());
  std::lock_guard lock(mutex_);
  auto [it, inserted] = entries_.try_emplace(key, Entry{ctx, now});
  return it->second.ctx;  // another worker may have won the race: use its context
}

SslContextPtr TlsContextCache::get(const keystore::Identity& identity, const config::Upstream& upstream,
                                   std::string& error) {
  const auto now = std::chrono::steady_clock::now();
  const Key key{&identity, &upstream};
  if (SslContextPtr ctx = find(key, now)) return ctx;
  if (!keystore_) {
    error = "no keystore";
    return nullptr;
  }
  // Built outside the lock: loading a CA bundle must not stall other workers' dials.
  try {
    return insert(key, keystore::make_client_context(*keystore_, identity, options_for(upstream)), now);
  } catch (const std::exception& e) {
    error = "TLS context for tenant " + identity.tenant_id() + " (" + identity.purpose() + ") to upstream " +
            upstream.name + ": " + e.what();
    return nullptr;
  }
}

SslContextPtr TlsContextCache::get_shared(const config::Upstream& upstream, std::string& error) {
  const auto now = std::chrono::steady_clock::now();
  const Key key{nullptr, &upstream};  // no identity: never equal to a per-identity key
  if (SslContextPtr ctx = find(key, now)) return ctx;
  if (!keystore_) {
    error = "no keystore";
    return nullptr;
  }
  try {
    return insert(key, keystore::make_shared_client_context(*keystore_, options_for(upstream)), now);
  } catch (const std::exception& e) {
    error = "TLS context for upstream " + upstream.name + ": " + e.what();
    return nullptr;
  }
}

std::size_t TlsContextCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void TlsContextCache::evict_unused(std::chrono::steady_clock::time_point now) {
  if (now - last_sweep_ < std::chrono::seconds(30)) return;
  last_sweep_ = now;
  // A context still referenced by a connection (use_count > 1) stays, whatever its age.
  std::erase_if(entries_, [&](const auto& kv) {
    return kv.second.ctx.use_count() == 1 && now - kv.second.last_used > evict_after_;
  });
}

}  // namespace orgproxy::daemon
