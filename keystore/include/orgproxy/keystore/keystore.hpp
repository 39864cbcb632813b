// The keystore: PKCS#11 tokens (through p11-kit), identities (certificate chain + token-held key) and the
// OpenSSL bridge that makes a TLS handshake sign inside the token. Knows nothing of config/ or daemon/:
// it takes plain parameters.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/types.h>

#include "orgproxy/keystore/ossl_ptr.hpp"

namespace orgproxy::keystore {

/// Raised for keystore set-up failures (module not loadable, wrong PIN, token absent at start...).
/// Never carries a PIN.
class KeystoreError : public std::runtime_error {
 public:
  KeystoreError(const std::string& what, unsigned long ckr = 0) : std::runtime_error(what), ckr_(ckr) {}
  /// The PKCS#11 return value (CKR_*) behind the failure, 0 when not a PKCS#11 failure.
  unsigned long ckr() const { return ckr_; }

 private:
  unsigned long ckr_;
};

/// A PKCS#11 module: a p11-kit registered module by name (path empty), or a shared object path.
struct ModuleSpec {
  std::string name;
  std::string path;
};

struct KeystoreOptions {
  std::vector<ModuleSpec> modules;
  /// User PIN file; one trailing "\n" or "\r\n" is stripped, nothing else. `credential:NAME` reads
  /// $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=NAME:...).
  std::string pin_file;
  bool allow_pin_value = false;  ///< RFC 7512 `?pin-value=` accepted in key URIs
  bool allow_key_files = false;  ///< PEM key files accepted instead of pkcs11: URIs (warning)
  bool allow_extractable = false;
  unsigned max_concurrent_signs = 0;  ///< per token; 0 = std::thread::hardware_concurrency()
  /// Re-probe of an absent token (CKR_TOKEN_NOT_PRESENT / CKR_DEVICE_REMOVED): first delay, doubled after each
  /// failed probe up to `reprobe_max`. Each probe is one C_GetTokenInfo; login is tried only once the token
  /// answers, and never again after the token refused the PIN.
  std::chrono::milliseconds reprobe_initial{250};
  std::chrono::milliseconds reprobe_max{5000};
};

/// A snapshot of the keystore's PKCS#11 activity, for metrics (`keystore_recoveries{reason}`,
/// `keystore_sign_seconds`, `keystore_sign_errors{ckr}`). Counters only grow while the keystore lives.
struct KeystoreStats {
  std::uint64_t signs = 0;        ///< signatures made (a recovered sign counts once)
  double sign_seconds_sum = 0.0;  ///< their total duration, seconds (C_SignInit to C_Sign, recovery included)
  /// Histogram of sign durations: `sign_seconds_buckets[i]` counts signs taking <= `sign_seconds_bounds[i]`
  /// seconds (cumulative, Prometheus style); the last bucket is +Inf and equals `signs`.
  std::vector<double> sign_seconds_bounds;
  std::vector<std::uint64_t> sign_seconds_buckets;
  /// Signs that failed (after the one retry), by CKR name ("CKR_TOKEN_NOT_PRESENT"...).
  std::map<std::string, std::uint64_t> sign_errors;
  /// Recoveries by reason: "session_lost" (CKR_SESSION_HANDLE_INVALID/CLOSED), "login_lost"
  /// (CKR_USER_NOT_LOGGED_IN), "device_error", "key_handle_invalid", "token_absent" (token marked unusable),
  /// "token_returned" (a re-probe or a module re-initialisation brought it back), "module_reinitialised" (a
  /// reload re-initialised a module to find a configured token it did not list), "already_logged_in" (C_Login answered
  /// CKR_USER_ALREADY_LOGGED_IN, taken as success).
  std::map<std::string, std::uint64_t> recoveries;
};

/// What to load: one certificate chain file and the reference of its private key.
struct IdentitySpec {
  std::string tenant_id;  ///< expected subject OU of the leaf certificate (exact string compare)
  std::string purpose;    ///< "dmp", "insi-auto", ... (for messages and the INSi CN rule)
  /// PEM: leaf, then intermediates (any order; reordered leaf-first). Empty: the certificate is read from the
  /// key's token, the X.509 object with the key's CKA_ID (as `orgproxy keys install-cert` stores it), its
  /// intermediates from the token's other certificate objects.
  std::string cert_file;
  std::string key;        ///< RFC 7512 pkcs11: URI (or a PEM file when allowed)
  /// A downstream listener's server certificate, not an ORG identity: `tenant_id` is not compared, the
  /// INSi CN and clientAuth rules are replaced by serverAuth (X509_PURPOSE_SSL_SERVER); dates, key match
  /// and key protection (not extractable) are checked as for identities.
  bool tls_server = false;
};

/// A loaded identity: leaf certificate, intermediates and a private key whose operations run in the token.
class Identity {
 public:
  virtual ~Identity() = default;
  virtual const std::string& tenant_id() const = 0;
  virtual const std::string& purpose() const = 0;
  virtual X509* certificate() const = 0;             ///< leaf
  virtual STACK_OF(X509) * intermediates() const = 0;  ///< leaf's issuer first; may be empty
  /// Private key usable by OpenSSL objects made in Keystore::libctx(); cannot be exported.
  virtual EVP_PKEY* private_key() const = 0;
  virtual std::chrono::system_clock::time_point not_before() const = 0;
  virtual std::chrono::system_clock::time_point not_after() const = 0;
  virtual const std::string& subject() const = 0;     ///< RFC 2253 one-line DN
  virtual const std::string& serial_hex() const = 0;  ///< certificate serial, upper-case hex
  /// False while the token holding the key is absent or failing (requests get 503 identity_unavailable).
  virtual bool usable() const = 0;
  /// Whether the token offers RSA-PSS for this key (TLS 1.3 with RSA needs it); true for EC keys.
  virtual bool supports_pss() const = 0;
};

using IdentityPtr = std::shared_ptr<const Identity>;

/// Outcome of loading one identity: either `identity` or an `error` saying why it is unavailable
/// (names the tenant and purpose; never a PIN).
struct IdentityLoad {
  IdentityPtr identity;
  std::string error;
};

/// TLS client settings of one upstream.
struct TlsClientOptions {
  std::string ca_file;   ///< PEM bundle; the only trust anchors (never the system store)
  int min_version = 0x0303;  ///< TLS1_2_VERSION
  int max_version = 0x0304;  ///< TLS1_3_VERSION
  std::vector<std::string> crl_files;
};

/// Owns the loaded PKCS#11 modules, logged-in token sessions, and the private OpenSSL library context
/// in which token-backed keys (and every SSL_CTX using them) live.
class Keystore {
 public:
  virtual ~Keystore() = default;

  /// Loads the modules (p11-kit managed mode: CKF_OS_LOCKING_OK), reads the PIN file, finds the initialised
  /// tokens of the modules and, when a PIN file is set, logs in to each of them now (one PIN file serves the
  /// tokens of the configured modules; a key URI's `?pin-source=`/`?pin-value=` serves its token instead,
  /// logged in at load_identities). Throws KeystoreError (module missing, PIN file unreadable or empty,
  /// wrong PIN: CKR_PIN_INCORRECT/CKR_PIN_LOCKED name the token, never the PIN, and are never retried).
  /// PKCS#11 login state is per process: while another user of the same token in this process is logged in,
  /// C_Login answers CKR_USER_ALREADY_LOGGED_IN (success) whatever the PIN.
  static std::shared_ptr<Keystore> open(const KeystoreOptions& options);

  /// Private library context holding the default provider and orgproxy's PKCS#11 provider.
  virtual OSSL_LIB_CTX* libctx() const = 0;

  /// Loads identities with one object search per token (PKCS#11 v2.40 §5.8 C_FindObjects), checking for
  /// each: certificate parses, subject OU == tenant_id, key found, key matches certificate, key
  /// CKA_SENSITIVE and not CKA_EXTRACTABLE (unless allowed), INSi CN rule, validity dates.
  /// Never throws for a bad identity: it comes back with `error` set.
  /// Tokens created since the last call are found: when a key URI names a token no module lists (and this is
  /// not the first call since open()), the modules the URI allows are re-initialised (C_Finalize +
  /// C_Initialize), signing on them paused meanwhile (never failed), each token logged in again once, and
  /// keys of identities already loaded looked up again by CKA_ID at their next sign (field case C21 d).
  virtual std::vector<IdentityLoad> load_identities(const std::vector<IdentitySpec>& specs) = 0;

  /// Counters since open() (cheap: a few atomic loads and two small maps copied under a lock).
  virtual KeystoreStats stats() const = 0;
};

/// Renewal overlap: among loaded identities of one (tenant, purpose), the one to present now: usable
/// (token present), valid at `now` (notBefore <= now < notAfter), and of those the newest by notBefore
/// (ties: the later notAfter). Null entries are ignored.
/// Returns null when none qualifies. The daemon logs the switch when the choice changes between calls.
IdentityPtr select_current_identity(const std::vector<IdentityPtr>& candidates,
                                    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

/// Builds an SSL_CTX (client, in the keystore's libctx) presenting `identity` (leaf + intermediates,
/// token-held key) and trusting only `options.ca_file`, with SSL_VERIFY_PEER and the version bounds.
/// If the identity's token lacks RSA-PSS, TLS 1.3 is disabled and sigalgs limited to PKCS#1 v1.5 (and an
/// upstream whose min_version is TLS 1.3 is a KeystoreError). OpenSSL's internal client session cache is off
/// (SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE: the new-session callback still fires).
/// The SSL_CTX belongs to the keystore's private library context: free it before the last reference to the
/// identity (which keeps that context alive) goes. Throws KeystoreError on failure.
SslCtxPtr make_client_context(const Keystore& keystore, const Identity& identity,
                              const TlsClientOptions& options);

/// Verifies the identity's chain (leaf + intermediates) up to a trust anchor in `ca_file` at the current
/// time. Returns "" when it verifies, else a message naming what failed (X509_verify_cert_error_string).
std::string verify_identity_chain(const Identity& identity, const std::string& ca_file);

}  // namespace orgproxy::keystore
