// Keystore::open and load_identities: modules, tokens, login, the per-load key index, identity checks.
#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "certificate_prefetch.hpp"
#include "identity.hpp"
#include "key_index.hpp"
#include "orgproxy/keystore/keystore.hpp"
#include "pin_file.hpp"
#include "provider.hpp"
#include "stats.hpp"
#include "token.hpp"
#include "uri.hpp"

namespace orgproxy::keystore {
namespace {

/// The intermediate CA certificates met during one load, by SHA-256 of their DER. A group's sites share one
/// or two intermediates (IGC Santé's ORG CA): each identity then references one parsed copy instead of
/// holding its own (an OpenSSL 3 X509 with its cached extensions is several KB; 10,000 sites, tens of MB).
class SharedCertificates {
 public:
  /// Replaces each certificate of `chain` already met by the first copy seen (same DER); keeps the others
  /// for the next identities. `chain` may be null.
  void share(STACK_OF(X509)* chain) {
    for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
      X509* cert = sk_X509_value(chain, i);
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int length = 0;
      if (X509_digest(cert, EVP_sha256(), md, &length) != 1) {
        ERR_clear_error();
        continue;
      }
      auto [it, inserted] = by_digest_.try_emplace(std::string(reinterpret_cast<char*>(md), length), nullptr);
      if (inserted) {
        X509_up_ref(cert);
        it->second.reset(cert);
      } else if (it->second.get() != cert) {
        X509_up_ref(it->second.get());
        sk_X509_set(chain, i, it->second.get());
        X509_free(cert);
      }
    }
  }

 private:
  std::unordered_map<std::string, X509Ptr> by_digest_;
};

class KeystoreImpl final : public Keystore {
 public:
  explicit KeystoreImpl(const KeystoreOptions& options) : options_(options) {
    libctx_ = std::make_shared<PrivateLibCtx>();
    if (options_.max_concurrent_signs == 0)
      options_.max_concurrent_signs = std::max(1u, std::thread::hardware_concurrency());
    if (options_.modules.empty()) throw KeystoreError("no PKCS#11 module configured");
    for (const ModuleSpec& m : options_.modules) modules_.push_back(std::make_shared<Module>(m.name, m.path));
    if (!options_.pin_file.empty()) pin_ = read_pin_file(options_.pin_file);
    std::lock_guard lock(mutex_);
    refresh_tokens_locked();
    // One PIN file serves the tokens of the configured modules: log in now, so a wrong PIN stops the start
    // (and is never retried) instead of surfacing at the first handshake.
    if (!pin_.empty())
      for (auto& [key, token] : tokens_) token->login(pin_);
  }

  ~KeystoreImpl() override { OPENSSL_cleanse(pin_.data(), pin_.size()); }

  OSSL_LIB_CTX* libctx() const override { return libctx_->get(); }

  KeystoreStats stats() const override { return stats_->snapshot(); }

  std::vector<IdentityLoad> load_identities(const std::vector<IdentitySpec>& specs) override {
    std::lock_guard lock(mutex_);
    try {
      refresh_tokens_locked();
      if (!modules_fresh_) reinitialise_for_missing_tokens_locked(specs);
    } catch (const KeystoreError& e) {
      spdlog::error("keystore: token discovery failed: {}", e.what());
    }
    modules_fresh_ = false;
    std::map<Token*, TokenIndex> index;  // one search per token per load
    std::map<Token*, KeyObjectIndex> key_lookup;  // its keys by label and id (views into `index`)
    const bool certificates_on_tokens =
        std::any_of(specs.begin(), specs.end(), [](const IdentitySpec& s) { return s.cert_file.empty(); });
    std::vector<IdentityLoad> out;
    out.reserve(specs.size());
    const auto now = std::chrono::system_clock::now();
    SharedCertificates shared;  // one parsed copy of each intermediate CA certificate for this load
    // Certificate files are read and checked on a second thread meanwhile (CA certificates parsed once).
    CertificatePrefetch certificates(specs, now);
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const IdentitySpec& spec = specs[i];
      IdentityLoad load;
      try {
        std::optional<CertificatePrefetch::Result> file_chain;
        if (!spec.cert_file.empty()) file_chain = certificates.take(i);
        load.identity = load_one(spec, now, index, key_lookup, certificates_on_tokens, shared, file_chain);
      } catch (const KeystoreError& e) {
        load.error = "tenant " + spec.tenant_id + ", purpose " + spec.purpose + ": " + e.what();
      }
      if (!load.error.empty()) spdlog::warn("keystore: identity unavailable: {}", load.error);
      out.push_back(std::move(load));
    }
    return out;
  }

 private:
  /// Adds tokens that appeared since the last look (keyed by module, serial and label, so a re-initialised
  /// token is a new token), and forgets a token replaced by a new one of the same module and label (field
  /// case C21 d: `softhsm2-util --delete-token` then `--init-token` under the same label gives a new serial):
  /// URIs select by label, and the old token's objects are gone. Identities loaded from the old token keep
  /// it alive until the reload that replaces them. A token merely absent (removed card) is kept: it may come
  /// back, and its re-probe brings its identities back with it.
  void refresh_tokens_locked() {
    std::map<std::string, std::set<std::string>> present;  // module + label -> keys of the tokens holding it now
    for (const auto& module : modules_) {
      for (CK_SLOT_ID slot : module->slots_with_token()) {
        CK_TOKEN_INFO info;
        if (module->f()->C_GetTokenInfo(slot, &info) != CKR_OK || !(info.flags & CKF_TOKEN_INITIALIZED)) continue;
        const std::string label = trim_padded(info.label, sizeof info.label);
        std::string key = module->display_name() + "\n" + trim_padded(info.serialNumber, sizeof info.serialNumber) +
                          "\n" + label;
        present[module->display_name() + "\n" + label].insert(key);
        if (tokens_.count(key) == 0)
          tokens_.emplace(key, std::make_shared<Token>(module, slot, info, options_.max_concurrent_signs, stats_,
                                                       ReprobePolicy{options_.reprobe_initial, options_.reprobe_max}));
      }
    }
    std::erase_if(tokens_, [&](const auto& entry) {
      const Token& token = *entry.second;
      auto it = present.find(token.module().display_name() + "\n" + token.label());
      if (it == present.end() || it->second.count(entry.first) != 0) return false;
      spdlog::warn("keystore: {} was replaced by a new token of the same label (re-initialised); its keys are "
                   "no longer looked for",
                   token.display());
      return true;
    });
  }

  /// Field case C21 (d): a module that reads its token list only at C_Initialize (SoftHSMv2 2.6, where
  /// `softhsm2-util --init-token` while we run adds a token directory we never see) is re-initialised when a
  /// key URI names a token that none of our tokens matches, and only then: a re-initialisation pauses every
  /// sign on the module and costs one C_Login per token, which a reload that finds all its tokens has no
  /// reason to pay. Modules the URI's module attributes rule out are left alone. Never right after open()
  /// (the slot list was read at C_Initialize a moment ago), hence `modules_fresh_`.
  void reinitialise_for_missing_tokens_locked(const std::vector<IdentitySpec>& specs) {
    std::set<Module*> to_reinitialise;
    std::vector<std::string> missing;
    for (const IdentitySpec& spec : specs) {
      if (spec.key.rfind("pkcs11:", 0) != 0) continue;
      std::optional<KeyUri> uri;
      try {
        uri = KeyUri::parse(spec.key, options_.allow_pin_value);
      } catch (const KeystoreError&) {
        continue;  // load_one reports it
      }
      const bool known = std::any_of(tokens_.begin(), tokens_.end(), [&](const auto& entry) {
        return uri->matches_module(entry.second->module()) && uri->matches_token(entry.second->info());
      });
      if (known) continue;
      missing.push_back(uri->display());
      for (const auto& module : modules_)
        if (uri->matches_module(*module)) to_reinitialise.insert(module.get());
    }
    if (to_reinitialise.empty()) return;
    spdlog::info("keystore: no token found for {} key URI(s) (first: {}); re-initialising the module(s) to look "
                 "for tokens created since",
                 missing.size(), missing.front());
    for (Module* module : to_reinitialise) {
      try {
        if (module->reinitialise(kQuiesceWait)) stats_->record_recovery("module_reinitialised");
      } catch (const KeystoreError& e) {
        spdlog::error("keystore: {}", e.what());
      }
    }
    refresh_tokens_locked();
  }

  /// How long a re-initialisation waits for the signs in flight (each takes milliseconds; a longer wait means
  /// a token that does not answer, and the reload then goes on without re-initialising).
  static constexpr std::chrono::milliseconds kQuiesceWait{10000};

  std::string pin_for(const KeyUri& uri) const {
    if (uri.pin_value()) return *uri.pin_value();
    if (!uri.pin_source().empty()) return read_pin_file(uri.pin_source());
    return pin_;
  }

  /// Throws KeystoreError with the reason; the caller prefixes tenant and purpose. `file_chain`: the spec's
  /// certificate file, read and checked (CertificatePrefetch), when it has one.
  IdentityPtr load_one(const IdentitySpec& spec, std::chrono::system_clock::time_point now,
                       std::map<Token*, TokenIndex>& index, std::map<Token*, KeyObjectIndex>& key_lookup,
                       bool with_certificates, SharedCertificates& shared,
                       std::optional<CertificatePrefetch::Result>& file_chain) {
    const bool cert_on_token = spec.cert_file.empty();
    CertificateChain chain;
    if (!cert_on_token) {
      if (!file_chain) throw KeystoreError("certificate file " + spec.cert_file + " was not read");
      if (!file_chain->error.empty()) throw KeystoreError(file_chain->error);
      chain = std::move(file_chain->chain);
    }
    if (spec.key.rfind("pkcs11:", 0) != 0) {
      if (cert_on_token) throw KeystoreError("a PEM key file needs a certificate file (cert:)");
      return load_with_key_file(spec, std::move(chain));
    }

    KeyUri uri = KeyUri::parse(spec.key, options_.allow_pin_value);
    struct Candidate {
      std::shared_ptr<Token> token;
      const TokenKeyObject* object;
    };
    std::vector<Candidate> candidates;
    bool token_found = false;
    for (auto& [name, token] : tokens_) {
      if (!uri.matches_module(token->module()) || !uri.matches_token(token->info())) continue;
      token_found = true;
      token->login(pin_for(uri));
      auto it = index.find(token.get());
      if (it == index.end()) it = index.emplace(token.get(), token->index_objects(with_certificates)).first;
      auto lookup = key_lookup.find(token.get());
      if (lookup == key_lookup.end()) lookup = key_lookup.emplace(token.get(), KeyObjectIndex(it->second.keys)).first;
      for (const TokenKeyObject* object : lookup->second.matching(uri)) candidates.push_back({token, object});
    }
    if (!token_found) throw KeystoreError("no token matches " + uri.display());
    if (candidates.empty()) throw KeystoreError("no private key matches " + uri.display());
    if (candidates.size() > 1)
      throw KeystoreError(std::to_string(candidates.size()) + " private keys match " + uri.display() +
                          "; add id= or object= to name one");
    const Candidate& c = candidates.front();
    const TokenKeyObject& object = *c.object;
    const std::string where = c.token->display() + " key id=" + percent_encode_id(object.id) +
                              (object.label.empty() ? "" : " label '" + object.label + "'");
    if (!object.can_sign) throw KeystoreError(where + ": CKA_SIGN is false");
    if ((object.extractable || !object.sensitive) && !options_.allow_extractable)
      throw KeystoreError(where + ": key is extractable or not sensitive (CKA_EXTRACTABLE=" +
                          (object.extractable ? "true" : "false") + ", CKA_SENSITIVE=" +
                          (object.sensitive ? "true" : "false") + "); refused unless allow_extractable is set");
    if (cert_on_token) {
      chain = certificate_chain_from_token(index[c.token.get()].certificates, object, now);
      if (!chain.leaf) throw KeystoreError(where + ": " + chain.error);
      shared.share(chain.intermediates.get());
      if (std::string why = check_certificate(chain.leaf.get(), spec, now); !why.empty())
        throw KeystoreError(where + ": its certificate on the token: " + why);
    }
    std::string mismatch = compare_public_parts(object, chain.leaf.get());
    if (!mismatch.empty() && mismatch != "?") throw KeystoreError(where + ": " + mismatch);

    auto token_key = std::make_shared<TokenKey>();
    token_key->token = c.token;
    token_key->ref = std::make_shared<KeyRef>();
    token_key->ref->id = object.id;
    token_key->ref->label = object.label;
    token_key->ref->handle = object.handle;
    token_key->ref->epoch = c.token->epoch();
    token_key->algorithm = object.key_type == CKK_EC ? KeyAlgorithm::ec : KeyAlgorithm::rsa;
    token_key->public_key.reset(X509_get_pubkey(chain.leaf.get()));
    token_key->pss_available = c.token->has_mechanism(CKM_RSA_PKCS_PSS);
    token_key->description = where;
    EvpPkeyPtr pkey = make_token_pkey(libctx_->get(), token_key);
    if (mismatch == "?")
      if (std::string why = prove_key_by_signature(pkey.get(), chain.leaf.get(), libctx_->get()); !why.empty())
        throw KeystoreError(where + ": " + why);
    const bool pss = token_key->algorithm == KeyAlgorithm::ec || token_key->pss_available;
    if (!pss)
      spdlog::warn("keystore: {}: the token lacks CKM_RSA_PKCS_PSS; tenant {} ({}) is limited to TLS 1.2 with "
                   "PKCS#1 v1.5 signatures",
                   where, spec.tenant_id, spec.purpose);
    spdlog::info("keystore: identity tenant {} purpose {} loaded ({}{})", spec.tenant_id, spec.purpose, where,
                 cert_on_token ? ", certificate from the token" : "");
    return std::make_shared<LoadedIdentity>(libctx_, spec, std::move(chain), std::move(token_key), std::move(pkey),
                                            pss);
  }

  IdentityPtr load_with_key_file(const IdentitySpec& spec, CertificateChain chain) {
    if (!options_.allow_key_files)
      throw KeystoreError("key '" + spec.key + "' is not a pkcs11: URI, and PEM key files are not allowed");
    spdlog::warn("keystore: tenant {} purpose {} uses a PEM key file: the key is not protected by a token",
                 spec.tenant_id, spec.purpose);
    BioPtr bio(BIO_new_file(spec.key.c_str(), "r"));
    EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr, nullptr, libctx_->get(),
                                                      "provider=default")
                        : nullptr;
    ERR_clear_error();
    if (key == nullptr) throw KeystoreError("cannot read PEM private key " + spec.key);
    EvpPkeyPtr pkey(key);
    if (X509_check_private_key(chain.leaf.get(), pkey.get()) != 1) {
      ERR_clear_error();
      throw KeystoreError(spec.key + " does not match the certificate");
    }
    return std::make_shared<LoadedIdentity>(libctx_, spec, std::move(chain), nullptr, std::move(pkey), true);
  }

  KeystoreOptions options_;
  // Declaration order = reverse destruction order: tokens close their sessions before the modules finalise,
  // and the library context goes last.
  std::shared_ptr<PrivateLibCtx> libctx_;
  std::vector<std::shared_ptr<Module>> modules_;
  std::string pin_;
  std::shared_ptr<StatsRecorder> stats_ = std::make_shared<StatsRecorder>();
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Token>> tokens_;
  bool modules_fresh_ = true;  ///< no load_identities since the modules were initialised
};

}  // namespace

std::shared_ptr<Keystore> Keystore::open(const KeystoreOptions& options) {
  return std::make_shared<KeystoreImpl>(options);
}

}  // namespace orgproxy::keystore
