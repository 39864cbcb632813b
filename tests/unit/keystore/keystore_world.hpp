// The world keystore tests run in: a scratch dir, an IGC-Santé-shaped test PKI, a SoftHSM token, and helpers
// that make a key in the token plus its ORG certificate as an IdentitySpec.
#pragma once

#include <memory>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/softhsm_token.hpp"
#include "scratch_dir.hpp"

namespace orgproxy::keystore::test {

inline constexpr const char* kTenantA = "312345678200002";  // 3 + SIRET (Luhn ok)
inline constexpr const char* kTenantB = "498765432103017";  // 4 + RPPS (Luhn ok) + rang 017
inline constexpr const char* kUserPin = "4711-orgproxy";

/// Declared first in a test so it outlives the keystore and identities made from it.
struct KeystoreWorld {
  explicit KeystoreWorld(const testkit::SoftHsmConfig& config = {}, std::string token_label = "orgproxy")
      : pki(tmp / "pki"), token(tmp / "hsm", std::move(token_label), kUserPin, config) {}

  KeystoreOptions options() const {
    KeystoreOptions o;
    o.modules.push_back({"softhsm", testkit::SoftHsmToken::module_path()});
    o.pin_file = token.pin_file().string();
    return o;
  }

  /// An ORG certificate of `tenant` for `key`, as an IdentitySpec using the key's URI.
  IdentitySpec identity(const testkit::TokenKey& key, const std::string& tenant = kTenantA,
                        const std::string& purpose = "dmp", const std::string& cn = "CABINET A",
                        testkit::OrgCertOptions options = {}) {
    options.subject.departement = "75";
    options.subject.organisation = "CABINET DE RADIOLOGIE " + tenant;
    options.subject.structure_id = tenant;
    options.subject.common_name = cn;
    IdentitySpec spec;
    spec.tenant_id = tenant;
    spec.purpose = purpose;
    spec.cert_file = pki.issue_org_cert(key.public_key.get(), options).string();
    spec.key = key.uri;
    return spec;
  }

  testkit::TokenKey key(testkit::KeyType type, unsigned char id, const std::string& label = {}, bool extractable = false) {
    return token.generate_key({type, std::string(1, static_cast<char>(id)), label, !extractable, extractable});
  }

  ScratchDir tmp;
  testkit::TestPki pki;
  testkit::SoftHsmToken token;
};


/// Routes the default spdlog logger into a string for the object's lifetime (log-secrecy and recovery assertions).
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
    spdlog::set_level(spdlog::level::debug);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace orgproxy::keystore::test
