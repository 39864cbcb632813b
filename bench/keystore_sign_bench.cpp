// keystore_sign_bench: signatures per second through the keystore (OpenSSL → our provider → session pool →
// C_Sign) against the honest raw reference (the module's C_Sign with a kept key handle and one session per
// thread) and against OpenSSL with the key in memory (what nginx with a key file does), for RSA-2048 PKCS#1
// v1.5, RSA-2048 PSS and ECDSA P-256, on 1 and 2 threads; and the time to load N identities (default 2,000)
// from one token. Besides signatures/s it prints the process CPU µs per signature of each column, which holds
// on a loaded machine where signatures/s do not. A plain program printing figures; never run in CI.
//
//   keystore_sign_bench [--seconds S] [--identities N] [--backend file|db]
//
// --backend picks SoftHSM's object store for the bench token (objectstore.backend; default file, as the
// tests and bench/run use).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <spdlog/spdlog.h>

#include "orgproxy/keystore/keystore.hpp"
#include "orgproxy/testkit/pki.hpp"
#include "orgproxy/testkit/softhsm_token.hpp"

namespace ks = orgproxy::keystore;
namespace tk = orgproxy::testkit;
using Clock = std::chrono::steady_clock;

namespace {

enum class Alg { rsa_pkcs1, rsa_pss, ecdsa };
const char* alg_name(Alg a) { return a == Alg::rsa_pkcs1 ? "RSA-2048 PKCS#1" : a == Alg::rsa_pss ? "RSA-2048 PSS" : "ECDSA P-256"; }

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Operations per second (wall clock) and process CPU microseconds per operation (all threads).
struct Rate {
  double per_second = 0;
  double cpu_us = 0;
};

/// Runs `body` on `threads` threads for `seconds`; per-thread setup (the call of `body`) is not counted.
template <typename Body>
Rate rate(unsigned threads, double seconds, Body body) {
  std::atomic<bool> stop{false}, go{false};
  std::atomic<long> total{0};
  std::atomic<unsigned> ready{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      auto op = body(t);  // per-thread setup, returns the operation
      ++ready;
      while (!go.load()) std::this_thread::yield();
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!op()) {
          ERR_print_errors_fp(stderr);
          std::fprintf(stderr, "sign failed\n");
          std::exit(1);
        }
        ++n;
      }
      total += n;
    });
  while (ready.load() != threads) std::this_thread::yield();
  const auto start = Clock::now();
  const double cpu0 = process_cpu_seconds();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  const double cpu = process_cpu_seconds() - cpu0;
  const double n = static_cast<double>(total);
  return {n / std::chrono::duration<double>(Clock::now() - start).count(), n > 0 ? 1e6 * cpu / n : 0};
}

/// EVP_DigestSign of a 32-byte message with SHA-256 (PSS with salt = digest length for Alg::rsa_pss): what a
/// TLS 1.3 CertificateVerify asks of the key, through whatever provider holds `pkey`.
bool evp_sign(EVP_MD_CTX* md, EVP_PKEY* pkey, OSSL_LIB_CTX* libctx, Alg alg, const unsigned char* msg, size_t n) {
  EVP_PKEY_CTX* pctx = nullptr;
  EVP_MD_CTX_reset(md);
  if (EVP_DigestSignInit_ex(md, &pctx, "SHA256", libctx, nullptr, pkey, nullptr) != 1) return false;
  if (alg == Alg::rsa_pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
    return false;
  unsigned char sig[512];
  size_t length = sizeof sig;
  return EVP_DigestSign(md, sig, &length, msg, n) == 1;
}

/// The raw reference: p11-kit managed module (shares SoftHSM's initialisation and login with the keystore).
struct Raw {
  CK_FUNCTION_LIST* f = nullptr;
  CK_SLOT_ID slot = 0;
  Raw() {
    f = p11_kit_module_load(tk::SoftHsmToken::module_path().c_str(), 0);
    if (f == nullptr || p11_kit_module_initialize(f) != CKR_OK) std::exit(1);
    // SoftHSM also lists its free (uninitialised) slot: take the one holding the "bench" token.
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    f->C_GetSlotList(CK_TRUE, slots, &n);
    for (CK_ULONG i = 0; i < n; ++i) {
      CK_TOKEN_INFO info;
      if (f->C_GetTokenInfo(slots[i], &info) == CKR_OK && std::strncmp(reinterpret_cast<char*>(info.label), "bench ", 6) == 0)
        slot = slots[i];
    }
  }
  ~Raw() {
    p11_kit_module_finalize(f);
    p11_kit_module_release(f);
  }
  CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, const std::string& id) const {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, const_cast<char*>(id.data()), id.size()}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    f->C_FindObjectsInit(s, t, 2);
    f->C_FindObjects(s, &h, 1, &n);
    f->C_FindObjectsFinal(s);
    return h;
  }
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  unsigned identities = 2000;
  std::string backend = "file";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--identities") == 0) identities = static_cast<unsigned>(std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--backend") == 0) backend = argv[i + 1];
  }
  if (backend != "file" && backend != "db") {
    std::fprintf(stderr, "--backend must be file or db\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  char tmpl[] = "/tmp/orgproxy-bench-XXXXXX";
  const std::filesystem::path dir = mkdtemp(tmpl);
  // SoftHsmToken keeps an existing softhsm2.conf: write one first to choose the object store.
  std::filesystem::create_directories(dir / "hsm" / "tokens");
  {
    std::FILE* conf = std::fopen((dir / "hsm" / "softhsm2.conf").c_str(), "w");
    if (conf == nullptr) return 1;
    std::fprintf(conf, "directories.tokendir = %s\nobjectstore.backend = %s\nlog.level = ERROR\n"
                 "slots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n",
                 (dir / "hsm" / "tokens").c_str(), backend.c_str());
    std::fclose(conf);
  }
  std::printf("SoftHSM object store: %s\n", backend.c_str());
  tk::TestPki pki(dir / "pki");
  std::unique_ptr<tk::SoftHsmToken> token_holder;
  try {
    token_holder = std::make_unique<tk::SoftHsmToken>(dir / "hsm", "bench", "4711-bench");
  } catch (const std::exception& e) {
    // Debian's SoftHSM 2.6.1 is built without SQLite: objectstore.backend = db fails here.
    std::fprintf(stderr, "cannot create the bench token with objectstore.backend = %s: %s\n", backend.c_str(), e.what());
    std::filesystem::remove_all(dir);
    return 2;
  }
  tk::SoftHsmToken& token = *token_holder;
  auto rsa = token.generate_key({tk::KeyType::rsa2048, "\x01", "rsa"});
  auto ec = token.generate_key({tk::KeyType::ec_p256, "\x02", "ec"});
  auto spec = [&](const tk::TokenKey& key, const std::string& stem) {
    tk::OrgCertOptions o;
    o.subject = {"75", "CABINET BENCH", "312345678200002", "CABINET BENCH"};
    o.file_stem = stem;
    return ks::IdentitySpec{"312345678200002", "dmp", pki.issue_org_cert(key.public_key.get(), o).string(), key.uri};
  };

  ks::KeystoreOptions options;
  options.modules = {{"softhsm", tk::SoftHsmToken::module_path()}};
  options.pin_file = token.pin_file().string();
  options.max_concurrent_signs = 2;
  auto keystore = ks::Keystore::open(options);
  auto loads = keystore->load_identities({spec(rsa, "rsa"), spec(ec, "ec")});
  if (!loads[0].identity || !loads[1].identity) {
    std::fprintf(stderr, "load failed: %s %s\n", loads[0].error.c_str(), loads[1].error.c_str());
    return 1;
  }
  Raw raw;
  unsigned char digest[32];
  std::memset(digest, 0x5a, sizeof digest);
  static const unsigned char kSha256Prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                                                0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  std::string digest_info(reinterpret_cast<const char*>(kSha256Prefix), sizeof kSha256Prefix);
  digest_info.append(reinterpret_cast<const char*>(digest), sizeof digest);

  // The ceiling: the same kinds of keys in memory, default provider (nginx with key files).
  std::shared_ptr<EVP_PKEY> mem_rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), EVP_PKEY_free);
  std::shared_ptr<EVP_PKEY> mem_ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  if (!mem_rsa || !mem_ec) return 1;

  std::printf("%-16s %3s %11s %11s %11s %8s %8s | CPU us/sign: %9s %9s %9s\n", "algorithm", "thr", "keystore/s",
              "raw/s", "memory/s", "ks/raw", "ks/mem", "keystore", "raw", "memory");
  for (Alg alg : {Alg::rsa_pkcs1, Alg::rsa_pss, Alg::ecdsa}) {
    EVP_PKEY* pkey = alg == Alg::ecdsa ? loads[1].identity->private_key() : loads[0].identity->private_key();
    EVP_PKEY* mem = alg == Alg::ecdsa ? mem_ec.get() : mem_rsa.get();
    const std::string id = alg == Alg::ecdsa ? std::string("\x02") : std::string("\x01");
    for (unsigned threads : {1u, 2u}) {
      // Through the keystore, as a TLS handshake does: EVP_DigestSignInit_ex + EVP_DigestSign (the hash of a
      // 32-byte message costs well under 1 us; the sign is C_SignInit + C_Sign in the token).
      Rate through = rate(threads, seconds, [&](unsigned) {
        std::shared_ptr<EVP_MD_CTX> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
        return [md, pkey, alg, &keystore, &digest]() {
          return evp_sign(md.get(), pkey, keystore->libctx(), alg, digest, sizeof digest);
        };
      });
      // Raw: one session per thread, the key handle found once, C_SignInit + C_Sign.
      Rate direct = rate(threads, seconds, [&](unsigned) {
        CK_SESSION_HANDLE s;
        raw.f->C_OpenSession(raw.slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s);
        std::shared_ptr<void> closer(nullptr, [&raw, s](void*) { raw.f->C_CloseSession(s); });
        CK_OBJECT_HANDLE key = raw.find(s, id);
        return [&raw, s, key, alg, &digest, &digest_info, closer]() {
          CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
          CK_MECHANISM mech = alg == Alg::rsa_pkcs1 ? CK_MECHANISM{CKM_RSA_PKCS, nullptr, 0}
                              : alg == Alg::rsa_pss ? CK_MECHANISM{CKM_RSA_PKCS_PSS, &pss, sizeof pss}
                                                    : CK_MECHANISM{CKM_ECDSA, nullptr, 0};
          const bool pkcs1 = alg == Alg::rsa_pkcs1;
          unsigned char* data = pkcs1 ? reinterpret_cast<unsigned char*>(const_cast<char*>(digest_info.data()))
                                      : const_cast<unsigned char*>(digest);
          CK_ULONG length = pkcs1 ? digest_info.size() : sizeof digest;
          unsigned char sig[512];
          CK_ULONG sig_length = sizeof sig;
          return raw.f->C_SignInit(s, &mech, key) == CKR_OK &&
                 raw.f->C_Sign(s, data, length, sig, &sig_length) == CKR_OK;
        };
      });
      // Memory: the same EVP calls on a key held by the default provider.
      Rate memory = rate(threads, seconds, [&](unsigned) {
        std::shared_ptr<EVP_MD_CTX> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
        return [md, mem, alg, &digest]() { return evp_sign(md.get(), mem, nullptr, alg, digest, sizeof digest); };
      });
      std::printf("%-16s %3u %11.0f %11.0f %11.0f %7.2fx %7.2fx | %21.1f %9.1f %9.1f\n", alg_name(alg), threads,
                  through.per_second, direct.per_second, memory.per_second, through.per_second / direct.per_second,
                  through.per_second / memory.per_second, through.cpu_us, direct.cpu_us, memory.cpu_us);
    }
  }
  // What the client side of a handshake pays to parse the server's certificate (d2i_X509 in the SSL_CTX's
  // library context; OpenSSL 3.0 decodes its public key through OSSL_DECODER each time), in the default
  // context and in the keystore's private one (default + orgproxy-pkcs11 providers).
  {
    std::vector<unsigned char> der;
    {
      tk::CertHandle cert = tk::read_pem_certificate(pki.intermediate_pem());
      const int n = i2d_X509(cert.get(), nullptr);
      der.resize(n > 0 ? static_cast<size_t>(n) : 0);
      unsigned char* p = der.data();
      i2d_X509(cert.get(), &p);
    }
    auto parse_in = [&](OSSL_LIB_CTX* libctx) {
      return rate(1, seconds, [&](unsigned) {
        return [&der, libctx]() {
          X509* x = X509_new_ex(libctx, nullptr);
          const unsigned char* p = der.data();
          const bool ok = x != nullptr && d2i_X509(&x, &p, static_cast<long>(der.size())) != nullptr &&
                          X509_get0_pubkey(x) != nullptr;
          X509_free(x);
          return ok;
        };
      });
    };
    const Rate in_default = parse_in(nullptr), in_private = parse_in(keystore->libctx());
    std::printf("d2i_X509 (RSA CA certificate): default libctx %.1f us CPU, keystore libctx %.1f us CPU (%.0f/s, %.0f/s)\n",
                in_default.cpu_us, in_private.cpu_us, in_default.per_second, in_private.per_second);
  }
  keystore.reset();

  // Loading N identities from one token: keys made with raw C_GenerateKeyPair (EC P-256, fast), one ORG
  // certificate each, then one load_identities call.
  std::vector<ks::IdentitySpec> specs;
  {
    CK_SESSION_HANDLE s;
    raw.f->C_OpenSession(raw.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
    static const unsigned char kP256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    for (unsigned i = 0; i < identities; ++i) {
      std::string id = "load-" + std::to_string(i);
      CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &yes, 1}, {CKA_EC_PARAMS, const_cast<unsigned char*>(kP256), sizeof kP256},
                            {CKA_ID, id.data(), id.size()}, {CKA_VERIFY, &yes, 1}};
      CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &yes, 1}, {CKA_PRIVATE, &yes, 1}, {CKA_SENSITIVE, &yes, 1},
                             {CKA_EXTRACTABLE, &no, 1}, {CKA_SIGN, &yes, 1}, {CKA_ID, id.data(), id.size()}};
      CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
      CK_OBJECT_HANDLE hp, hk;
      if (raw.f->C_GenerateKeyPair(s, &mech, pub, 4, priv, 6, &hp, &hk) != CKR_OK) return 1;
      unsigned char point[128];
      CK_ATTRIBUTE ap{CKA_EC_POINT, point, sizeof point};
      raw.f->C_GetAttributeValue(s, hp, &ap, 1);
      // CKA_EC_POINT is a DER OCTET STRING: 04 41 <65 bytes>.
      OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("P-256"), 0),
                             OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point + 2, ap.ulValueLen - 2),
                             OSSL_PARAM_construct_end()};
      EVP_PKEY_CTX* pctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
      EVP_PKEY* pkey = nullptr;
      EVP_PKEY_fromdata_init(pctx);
      EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
      EVP_PKEY_CTX_free(pctx);
      tk::OrgCertOptions o;
      o.subject = {"75", "CABINET BENCH", "312345678200002", "CABINET BENCH"};
      o.file_stem = "load-" + std::to_string(i);
      specs.push_back({"312345678200002", "dmp", pki.issue_org_cert(pkey, o).string(),
                       token.uri_for(id)});
      EVP_PKEY_free(pkey);
    }
    raw.f->C_CloseSession(s);
  }
  auto second = ks::Keystore::open(options);
  const auto t0 = Clock::now();
  auto many = second->load_identities(specs);
  const double load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  size_t ok = 0;
  for (auto const& l : many) ok += l.identity ? 1 : 0;
  std::printf("load_identities: %zu of %u identities loaded in %.2f s (%.2f ms each)\n", ok, identities, load_seconds,
              1000.0 * load_seconds / identities);
  second.reset();
  std::filesystem::remove_all(dir);
  return ok == identities ? 0 : 1;
}
