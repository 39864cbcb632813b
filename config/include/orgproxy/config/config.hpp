// The validated, immutable configuration snapshot of orgproxy.
// Parsing YAML into this model lives in load.hpp; nothing here opens a socket or touches crypto.
// Schema reference: config/SCHEMA.md (kept current with every change). Every model type compares
// member-wise (defaulted operator==, source marks included).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace orgproxy::config {

/// Where a value was written: file path and 1-based line and column (as yaml-cpp marks + 1).
struct SourceMark {
  std::string file;
  int line = 0;
  int column = 0;
  /// "file:line:col", the prefix of every diagnostic.
  std::string str() const;
  bool operator==(const SourceMark&) const = default;
};

/// What an identity is used for (DOMAIN.md: one site has several identities, chosen by service).
enum class Purpose { dmp, insi_auto, insi_manu, mssante, vihf_sign };
/// Config spelling: "dmp", "insi-auto", "insi-manu", "mssante", "vihf-sign".
std::string_view to_string(Purpose p);
/// The purpose spelled exactly `text` (config spelling), or nullopt.
std::optional<Purpose> parse_purpose(std::string_view text);

/// IGC Santé PKI an upstream belongs to; test and production trust are never mixed.
enum class Environment { test, production };
/// "test" or "production".
std::string_view to_string(Environment e);

/// TLS protocol version bound of an upstream.
enum class TlsVersion { tls1_2, tls1_3 };
/// "1.2" or "1.3" (config spelling).
std::string_view to_string(TlsVersion v);

/// An IPv4 or IPv6 network written in CIDR notation ("10.1.0.0/16", "fd00::/8", a bare address = /32, /128).
struct IpNetwork {
  std::string text;  ///< as written
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  ///< network address, host bits zero; IPv4 in the first 4 bytes
  unsigned prefix_len = 0;
  /// True when `address` (4 bytes for IPv4, 16 for IPv6, network order) lies in this network. An
  /// IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 networks, as a dual-stack socket reports it.
  bool contains(std::span<const std::uint8_t> address) const;
  bool operator==(const IpNetwork&) const = default;
};

/// One certificate (chain file: leaf first, then intermediates) + the reference of its private key.
struct IdentityRef {
  std::string cert_file;  ///< PEM file, leaf then intermediates; "" = the certificate stored on the key's token
  std::string key;        ///< RFC 7512 `pkcs11:` URI (a PEM key file only with allow_key_files)
  SourceMark mark;
  bool operator==(const IdentityRef&) const = default;
};

/// One practice site. `id` is the full national structure identifier (type digit + identifier), kept as
/// the exact text written and compared exactly with certificate OUs and VIHF Identifiant_Structure.
struct Tenant {
  std::string id;
  std::string name;
  std::string sector;            ///< "SA07", "SA08", "SA09", ... (may be empty)
  std::string departement;       ///< "75", "2A", ... (may be empty)
  std::string responsible_rpps;  ///< 11-digit RPPS (may be empty)
  std::string legal_representative;
  /// Identities by purpose; several per purpose allowed (renewal overlap: newest valid one wins).
  std::map<Purpose, std::vector<IdentityRef>> identities;
  SourceMark mark;
  bool operator==(const Tenant&) const = default;
};

/// Egress HTTP CONNECT proxy an upstream is reached through.
struct UpstreamProxy {
  std::string url;   ///< as written, http://host[:port]
  std::string host;  ///< IPv6 literals without brackets
  std::uint16_t port = 80;
  std::string credentials_file;  ///< "user:password" for Proxy-Authorization Basic ("" = none)
  /// TCP connect to the proxy plus its answer to CONNECT (default: the upstream's connect_timeout).
  std::chrono::milliseconds connect_timeout{5000};
  SourceMark mark;
  SourceMark credentials_mark;  ///< of the credentials_file value (file checks name it)
  bool operator==(const UpstreamProxy&) const = default;
};

/// A named national endpoint, reached over mutual TLS.
struct Upstream {
  std::string name;
  std::string url;   ///< as written, e.g. https://lps2.dmp.gouv.fr/si-dmp-server/v2/services ("" for L4)
  /// L4 upstream (tunnel and STARTTLS listeners): `host:port` as written; "" for an HTTP upstream (`url`).
  /// Exactly one of `url` and `address` is set.
  std::string address;
  std::string host;  ///< from url; IPv6 literals without brackets
  std::uint16_t port = 443;
  std::string base_path;  ///< from url, without trailing '/' ("" for the root)
  std::string sni;        ///< server name sent and verified; defaults to host unless host is an IP literal
  std::string ca_file;    ///< PEM bundle of the IGC Santé CAs (never the system store)
  Environment environment = Environment::production;
  Purpose purpose = Purpose::dmp;  ///< identity purpose this upstream needs
  TlsVersion tls_min = TlsVersion::tls1_2;
  TlsVersion tls_max = TlsVersion::tls1_3;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds first_byte_timeout{60000};  ///< request sent → response headers
  std::chrono::milliseconds idle_timeout{60000};        ///< pooled idle connection lifetime
  std::size_t max_idle_per_key = 32;   ///< idle pooled connections per (tenant, identity, upstream), per worker
  std::optional<UpstreamProxy> proxy;  ///< reach the upstream through this CONNECT proxy
  /// PEM CRLs checked on this upstream's server chain, in addition to the top-level crl_files.
  std::vector<std::string> crl_files;
  SourceMark mark;
  bool operator==(const Upstream&) const = default;
};

/// Downstream path prefix (segment-boundary match, longest wins) → upstream.
struct Route {
  std::string prefix;    ///< starts with '/', no trailing '/' (except "/")
  std::string host;      ///< optional Host to match ("" = any)
  std::string upstream;  ///< key into Config::upstreams
  std::uint64_t max_body_bytes = 256ull * 1024 * 1024;
  SourceMark mark;
  bool operator==(const Route&) const = default;
};

/// How a listener learns the tenant of a request (DESIGN.md "Selector").
enum class SelectorKind { fixed, source, client_cert, header, path, vihf };
/// Config spelling: "fixed", "source", "client_cert", "header", "path", "vihf".
std::string_view to_string(SelectorKind k);

/// `source` selector rule: requests from `network` belong to `tenant` (longest prefix wins).
struct SourceTenantRule {
  IpNetwork network;
  std::string tenant;
  SourceMark mark;
  bool operator==(const SourceTenantRule&) const = default;
};

/// `client_cert` selector rule: a downstream client certificate, by SHA-256 fingerprint or by subject OU,
/// belongs to `tenant`.
struct ClientCertTenantRule {
  enum class Match { sha256, ou } match = Match::sha256;
  std::string value;  ///< lower-case hex without ':' (sha256) or the exact OU text
  std::string tenant;
  SourceMark mark;
  bool operator==(const ClientCertTenantRule&) const = default;
};

/// Downstream TLS on a listener (RIS → orgproxy).
struct ListenerTls {
  std::string cert_file;       ///< server certificate chain (PEM)
  std::string key;             ///< PEM key file or pkcs11: URI
  std::string client_ca_file;  ///< CAs that sign client certificates ("" = client certificates not requested)
  bool require_client_cert = false;
  /// smtp-starttls / imap-starttls listeners only: refuse every command but EHLO/HELO/NOOP/RSET/QUIT
  /// (SMTP, `530 5.7.0`, RFC 3207 §4) or CAPABILITY/NOOP/LOGOUT (IMAP, `NO`/`BAD`, RFC 9051 §6.2.1)
  /// until the client has done STARTTLS. false: a client may also go on in plaintext.
  bool require_starttls = true;
  SourceMark mark;
  SourceMark cert_mark, key_mark, client_ca_mark;  ///< of each value (file checks name them)
  bool operator==(const ListenerTls&) const = default;
};

/// What a listener speaks (SCHEMA.md `listeners.mode`): HTTP requests routed per request, or one L4
/// service bound to one site and one upstream (MS Santé): a raw byte tunnel whose upstream side is TLS
/// from the first byte, or SMTP / IMAP whose upstream side is upgraded with STARTTLS (RFC 3207, RFC 3501
/// §6.2.1) before the client's bytes are relayed.
enum class ListenerMode { http, tunnel, smtp_starttls, imap_starttls };
/// Config spelling: "http", "tunnel", "smtp-starttls", "imap-starttls".
std::string_view to_string(ListenerMode m);

/// A downstream listening socket (RIS → orgproxy): where it binds, how it selects the tenant, its limits.
struct Listener {
  std::string name;
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  std::vector<SelectorKind> selectors{SelectorKind::header};
  std::string tenant_header = "X-Orgproxy-Tenant";
  std::string fixed_tenant;                         ///< for SelectorKind::fixed
  std::chrono::milliseconds header_timeout{10000};  ///< whole request header must arrive within this
  std::chrono::milliseconds idle_timeout{60000};    ///< keep-alive idle between requests
  /// Slow-upload defence: a request body must have fully arrived by body_timeout + bytes / body_min_rate
  /// after it started (mod_reqtimeout's MinRate idea), else the exchange is abandoned and the connection
  /// closed. body_min_rate in bytes per second; 0 = the whole body within body_timeout.
  std::chrono::milliseconds body_timeout{60000};
  std::uint64_t body_min_rate = 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_header_count = 100;
  /// Rules of the `source` selector (required with it); longest matching prefix wins.
  std::vector<SourceTenantRule> source_tenants;
  /// Rules of the `client_cert` selector; empty = the certificate's subject OU is the tenant id.
  std::vector<ClientCertTenantRule> client_cert_tenants;
  std::optional<ListenerTls> tls;
  /// Compare the VIHF Identifiant_Structure with the tenant selected otherwise (SOAP requests).
  bool vihf_check = true;
  /// At most this many body bytes are buffered to find the VIHF (the SOAP header); the body then streams.
  std::size_t vihf_max_bytes = 64 * 1024;
  ListenerMode mode = ListenerMode::http;
  /// L4 modes only: the upstream (one with `address`) every connection is relayed to, as the site
  /// `fixed_tenant`'s identity of the upstream's purpose.
  std::string upstream;
  /// L4 modes only: connections open at once on this listener (all workers); over it new ones are closed.
  std::size_t max_connections = 1024;
  SourceMark mark;

  /// The `source` rule for a peer address (4 or 16 bytes, network order; IPv4-mapped IPv6 matches IPv4
  /// rules), the longest matching prefix winning; nullptr when none matches.
  const SourceTenantRule* source_rule_for(std::span<const std::uint8_t> address) const;
  bool operator==(const Listener&) const = default;
};

/// A PKCS#11 module to load (SoftHSMv2, an HSM vendor's library, or a p11-kit registered module).
struct Pkcs11Module {
  std::string name;  ///< p11-kit registered module name, or a local name when `path` is set
  std::string path;  ///< shared object path ("" = find the registered module by name)
  SourceMark mark;
  bool operator==(const Pkcs11Module&) const = default;
};

/// The `pkcs11` section: modules, PIN source and what key references are accepted.
struct Pkcs11Settings {
  std::vector<Pkcs11Module> modules;
  std::string pin_file;          ///< user PIN file (trailing "\n" / "\r\n" stripped, nothing else)
  bool allow_pin_value = false;  ///< accept `?pin-value=` in key URIs (RFC 7512 §2.3); off by default
  bool allow_key_files = false;  ///< accept PEM key files instead of pkcs11: URIs (logged as a warning)
  bool allow_extractable_keys = false;
  unsigned max_concurrent_signs = 0;  ///< per token; 0 = number of worker threads
  SourceMark mark;
  bool operator==(const Pkcs11Settings&) const = default;
};

/// The `settings` section: process-wide behaviour.
struct Settings {
  unsigned workers = 0;  ///< worker threads (one io_context each); 0 = hardware concurrency
  bool require_all_identities = false;
  std::string log_level = "info";
  std::chrono::milliseconds shutdown_grace{10000};
  /// Idle pooled upstream connections of all (tenant, identity, upstream) keys together, per worker; past it
  /// the least recently used idle connection is closed. 0 = no idle connection is kept.
  std::size_t max_idle_connections = 4096;
  bool operator==(const Settings&) const = default;
};

/// Who may act for which tenants and upstreams (DESIGN.md "Client"). A request's client is the first rule
/// (file order) whose every given criterion matches: source address in one of `cidrs`, downstream client
/// certificate fingerprint in `cert_sha256` or subject in `cert_subjects`, bearer token whose SHA-256 is in
/// `bearer_sha256`. Empty criteria are not checked; at least one criterion is given.
struct Client {
  std::string name;
  std::vector<IpNetwork> cidrs;
  std::vector<std::string> cert_sha256;    ///< lower-case hex, 64 characters, no ':'
  std::vector<std::string> cert_subjects;  ///< exact RFC 4514 subject strings
  std::vector<std::string> bearer_sha256;  ///< lower-case hex of SHA-256(token); never the token itself
  bool all_tenants = false;                ///< `tenants: "*"`
  std::vector<std::string> tenants;        ///< allowed ids: those listed plus the members of `groups`
  std::vector<std::string> groups;         ///< group names as written
  bool all_upstreams = false;              ///< `upstreams: "*"` or absent
  std::vector<std::string> upstreams;
  unsigned max_connections = 0;  ///< concurrent downstream connections; 0 = unlimited
  unsigned rate = 0;             ///< requests per second (token bucket); 0 = unlimited
  unsigned burst = 0;            ///< bucket size; defaults to `rate`
  SourceMark mark;

  /// May this client act for tenant `id` (exact text)? Groups are already expanded into `tenants`.
  bool allows_tenant(std::string_view id) const;
  /// May this client reach upstream `name`?
  bool allows_upstream(std::string_view name) const;
  bool operator==(const Client&) const = default;
};

/// The admin endpoint (metrics, health, identity listing).
struct AdminListener {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  std::vector<std::string> bearer_sha256;  ///< accepted tokens, as lower-case hex SHA-256
  bool per_tenant_metrics = true;  ///< metric series carry a `tenant` label (off for very large groups)
  SourceMark mark;
  bool operator==(const AdminListener&) const = default;
};

/// Where the access log goes.
struct LoggingSettings {
  std::string access_log = "stdout";  ///< "stdout" or a file path
  std::uint64_t rotate_size = 0;      ///< rotate the file at this size; 0 = never (file only)
  unsigned rotate_count = 0;          ///< rotated files kept
  bool operator==(const LoggingSettings&) const = default;
};

/// The `directory` section: where `orgproxy sites discover` finds the ANS health directory. Empty strings
/// mean "not set" (the command's flags or its defaults apply).
struct DirectorySettings {
  std::string source = "ldap";  ///< "ldap" or "fhir": the default source of `sites discover`
  std::string ldap_url;         ///< ldap://host[:port] or ldaps://...
  std::string base_dn;          ///< LDAP search base (the test directory: "o=TEST,c=fr")
  std::string fhir_url;         ///< Annuaire Santé FHIR API base URL
  std::string api_key_file;     ///< file holding the FHIR API key (path resolved like every path)
  std::chrono::milliseconds timeout{10000};  ///< network timeout of each directory exchange
  bool operator==(const DirectorySettings&) const = default;
};

/// The whole validated configuration. Immutable once built; shared by pointer between threads.
struct Config {
  std::string source_file;
  Settings settings;
  Pkcs11Settings pkcs11;
  std::vector<Listener> listeners;
  std::map<std::string, Upstream> upstreams;                      ///< by name
  std::vector<Route> routes;                                      ///< sorted by prefix length, longest first
  std::vector<Tenant> tenants;                                    ///< in file order
  std::map<std::string, std::vector<std::string>> tenant_groups;  ///< group name → tenant ids
  std::vector<Client> clients;                                    ///< in file order (first match wins)
  std::optional<AdminListener> admin;
  LoggingSettings logging;
  DirectorySettings directory;
  std::vector<std::string> crl_files;  ///< PEM CRLs checked on every upstream and client certificate chain

  /// Tenant by exact id, or nullptr. O(1).
  const Tenant* find_tenant(std::string_view id) const;
  /// Upstream by name, or nullptr.
  const Upstream* find_upstream(std::string_view name) const;
  /// Longest route whose prefix matches `path` on a segment boundary (and `host` when the route has one),
  /// or nullptr. `path` excludes the query string. `host` is the request's Host value: compared
  /// case-insensitively, without its port, IPv6 brackets or a trailing dot.
  const Route* match_route(std::string_view path, std::string_view host) const;

  /// Called once after construction by the loader: sorts `routes` (longest prefix first, host-bound
  /// before host-less) and builds the tenant index.
  void build_index();

  /// Member-wise equality (source marks included), e.g. to tell whether a reload changes anything.
  bool operator==(const Config&) const = default;

 private:
  /// Transparent hash so that find_tenant(string_view) does not allocate.
  struct IdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // Owning keys: a copied Config keeps a valid index.
  std::unordered_map<std::string, std::size_t, IdHash, std::equal_to<>> tenant_index_;
};

using ConfigPtr = std::shared_ptr<const Config>;

}  // namespace orgproxy::config
