// probe_keys: the token side of an offline inventory, reusing the keystore's URI matching and key index so
// that "found" means exactly what load_identities will find.
#include "orgproxy/keystore/key_probe.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "identity.hpp"
#include "pin_file.hpp"
#include "token.hpp"
#include "uri.hpp"

namespace orgproxy::keystore {
namespace {

/// A PIN read from a file, wiped when done.
struct Pin {
  std::string value;
  ~Pin() { OPENSSL_cleanse(value.data(), value.size()); }
};

std::string compare_key_file(const std::string& key_file, const std::string& cert_file) {
  CertificateChain chain = read_certificate_chain(cert_file);
  if (!chain.leaf) return chain.error;
  BioPtr bio(BIO_new_file(key_file.c_str(), "r"));
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!key) return "cannot read PEM private key " + key_file;
  const bool same = X509_check_private_key(chain.leaf.get(), key.get()) == 1;
  ERR_clear_error();
  return same ? "" : "the certificate's public key is not the key's";
}

/// Modules and tokens opened on first need. Member order: tokens close their sessions before the modules
/// finalise.
class TokenSet {
 public:
  explicit TokenSet(const KeystoreOptions& options) : options_(options) {}

  const std::vector<std::shared_ptr<Token>>& tokens() {
    if (!opened_) open();
    return tokens_;
  }
  const std::string& pin() const { return pin_.value; }
  /// The private keys of `token`, searched once.
  const std::vector<TokenKeyObject>& keys_of(Token& token) {
    auto it = index_.find(&token);
    if (it == index_.end()) it = index_.emplace(&token, token.index_private_keys()).first;
    return it->second;
  }

 private:
  void open() {
    opened_ = true;
    if (options_.modules.empty()) throw KeystoreError("no PKCS#11 module configured");
    for (const ModuleSpec& m : options_.modules) modules_.push_back(std::make_shared<Module>(m.name, m.path));
    if (!options_.pin_file.empty()) pin_.value = read_pin_file(options_.pin_file);
    for (const auto& module : modules_)
      for (CK_SLOT_ID slot : module->slots_with_token()) {
        CK_TOKEN_INFO info;
        if (module->f()->C_GetTokenInfo(slot, &info) != CKR_OK || !(info.flags & CKF_TOKEN_INITIALIZED)) continue;
        tokens_.push_back(std::make_shared<Token>(module, slot, info, 1));
      }
  }

  const KeystoreOptions& options_;
  bool opened_ = false;
  std::vector<std::shared_ptr<Module>> modules_;
  Pin pin_;
  std::vector<std::shared_ptr<Token>> tokens_;
  std::map<Token*, std::vector<TokenKeyObject>> index_;
};

KeyProbe probe_key_file(const KeystoreOptions& options, const KeyProbeRequest& request) {
  KeyProbe probe;
  std::error_code ec;
  if (!options.allow_key_files) {
    probe.error = "key '" + request.key + "' is not a pkcs11: URI, and PEM key files are not allowed";
  } else if (!std::filesystem::is_regular_file(request.key, ec)) {
    probe.error = "no key file " + request.key;
  } else {
    probe.found = true;
    probe.where = "PEM key file " + request.key;
    if (!request.cert_file.empty()) probe.mismatch = compare_key_file(request.key, request.cert_file);
  }
  return probe;
}

}  // namespace

std::vector<KeyProbe> probe_keys(const KeystoreOptions& options, const std::vector<KeyProbeRequest>& requests) {
  std::vector<KeyProbe> out;
  out.reserve(requests.size());
  TokenSet tokens(options);
  for (const KeyProbeRequest& request : requests) {
    if (request.key.rfind("pkcs11:", 0) != 0) {
      out.push_back(probe_key_file(options, request));
      continue;
    }
    KeyProbe& probe = out.emplace_back();
    std::optional<KeyUri> parsed;
    try {
      parsed.emplace(KeyUri::parse(request.key, options.allow_pin_value));
    } catch (const KeystoreError& e) {
      probe.error = e.what();  // a bad reference concerns this request only
      continue;
    }
    const KeyUri& uri = *parsed;
    // From here a KeystoreError (module, PIN refused, token failing) stops the whole probe.
    std::vector<std::pair<Token*, const TokenKeyObject*>> candidates;
    bool token_found = false;
    for (const auto& token : tokens.tokens()) {
      if (!uri.matches_module(token->module()) || !uri.matches_token(token->info())) continue;
      token_found = true;
      if (uri.pin_value()) token->login(*uri.pin_value());
      else if (!uri.pin_source().empty()) token->login(Pin{read_pin_file(uri.pin_source())}.value);
      else token->login(tokens.pin());
      for (const TokenKeyObject& object : tokens.keys_of(*token))
        if (uri.matches_object(object.id, object.label)) candidates.emplace_back(token.get(), &object);
    }
    if (!token_found) {
      probe.error = "no token matches " + uri.display();
    } else if (candidates.empty()) {
      probe.error = "no private key matches " + uri.display();
    } else if (candidates.size() > 1) {
      probe.error = std::to_string(candidates.size()) + " private keys match " + uri.display();
    } else {
      const auto& [token, object] = candidates.front();
      probe.found = true;
      probe.where = token->display() + " key id=" + percent_encode_id(object->id) +
                    (object->label.empty() ? "" : " label '" + object->label + "'");
      if (!request.cert_file.empty()) {
        CertificateChain chain = read_certificate_chain(request.cert_file);
        probe.mismatch = chain.leaf ? compare_public_parts(*object, chain.leaf.get()) : chain.error;
      }
    }
  }
  return out;
}

}  // namespace orgproxy::keystore
