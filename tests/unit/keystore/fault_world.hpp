// The world of the fault-recovery tests (field case C19): two SoftHSM tokens ("orgproxy" and "other") reached
// through the project's fault-injecting module (tests/support/p11shim), a control file to command faults, the
// shim's call log, and a capture of the keystore's log.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keystore_world.hpp"

namespace orgproxy::keystore::test {

struct FaultWorld {
  FaultWorld() : other(world.tmp / "hsm", "other", kUserPin) {
    control = world.tmp / "shim.control";
    shim_log = world.tmp / "shim.log";
    ::setenv("ORGPROXY_P11SHIM_CONTROL", control.c_str(), 1);
    ::setenv("ORGPROXY_P11SHIM_LOG", shim_log.c_str(), 1);
    // Keys first: the fixture initialises and finalises SoftHSM per call, before the shim owns it.
    auto key_a = world.key(testkit::KeyType::rsa2048, 0x0a, "site-a");
    auto key_b = other.generate_key({testkit::KeyType::ec_p256, std::string("\x0b", 1), "site-b"});
    spec_a = world.identity(key_a, kTenantA, "dmp", "CABINET A");
    spec_b = world.identity(key_b, kTenantB, "dmp", "CABINET B");
  }
  ~FaultWorld() {
    ::unsetenv("ORGPROXY_P11SHIM_CONTROL");
    ::unsetenv("ORGPROXY_P11SHIM_LOG");
  }

  KeystoreOptions options() const {
    KeystoreOptions o = world.options();
    o.modules = {{"shim", ORGPROXY_P11SHIM}};
    o.max_concurrent_signs = 4;
    o.reprobe_initial = std::chrono::milliseconds(100);
    o.reprobe_max = std::chrono::milliseconds(800);
    return o;
  }

  /// Replaces the shim's rules (a new file each time: the shim runs its one-shot actions once per version).
  void command(const std::string& rules) {
    auto tmp = control;
    tmp += ".new";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << rules << "\n";
    }
    std::filesystem::rename(tmp, control);
  }

  /// Lines of the shim's call log starting with `function` (and naming `token` when given).
  int shim_calls(const std::string& function, const std::string& token = {}) const {
    std::ifstream in(shim_log);
    std::string line;
    int n = 0;
    while (std::getline(in, line))
      if (line.rfind(function + " ", 0) == 0 && (token.empty() || line.find(" " + token + " ") != std::string::npos))
        ++n;
    return n;
  }

  KeystoreWorld world;
  testkit::SoftHsmToken other;
  std::filesystem::path control, shim_log;
  IdentitySpec spec_a, spec_b;
};

/// Signs a message with the identity's token key (SHA-256; PKCS#1 for RSA) and verifies it with the
/// certificate. Returns "" on success, else the OpenSSL error text.
inline std::string sign_and_verify(const Keystore& keystore, const Identity& identity) {
  static const unsigned char message[] = "C19 recovery probe";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string error;
  unsigned char sig[512];
  size_t sig_length = sizeof sig;
  if (EVP_DigestSignInit_ex(ctx, nullptr, "SHA256", keystore.libctx(), nullptr, identity.private_key(), nullptr) != 1 ||
      EVP_DigestSign(ctx, sig, &sig_length, message, sizeof message) != 1) {
    char buffer[256];
    ERR_error_string_n(ERR_get_error(), buffer, sizeof buffer);
    error = buffer;
    ERR_clear_error();
  }
  EVP_MD_CTX_free(ctx);
  if (!error.empty()) return error;
  EVP_PKEY* pub = X509_get0_pubkey(identity.certificate());
  EVP_MD_CTX* vctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(vctx, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
            EVP_DigestVerify(vctx, sig, sig_length, message, sizeof message) == 1;
  EVP_MD_CTX_free(vctx);
  ERR_clear_error();
  return ok ? "" : "signature does not verify";
}

}  // namespace orgproxy::keystore::test
