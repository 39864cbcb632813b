// print_effective: what `check-config --print` shows. Round trip: printing then loading gives an equal
// configuration; secrets are never printed.
#include "orgproxy/config/print.hpp"

#include "config_test_util.hpp"

namespace orgproxy::config::test {
namespace {

const std::filesystem::path kExamples = std::filesystem::path(__FILE__).parent_path() / "../../../config/examples";

// Source marks and the file name say where a value was written, not what it is: they differ after a round
// trip by construction.
Config without_marks(Config c) {
  c.source_file.clear();
  c.pkcs11.mark = {};
  for (auto& m : c.pkcs11.modules) m.mark = {};
  for (auto& l : c.listeners) {
    l.mark = {};
    for (auto& r : l.source_tenants) r.mark = {};
    for (auto& r : l.client_cert_tenants) r.mark = {};
    if (l.tls) l.tls->mark = l.tls->cert_mark = l.tls->key_mark = l.tls->client_ca_mark = {};
  }
  for (auto& [name, u] : c.upstreams) {
    u.mark = {};
    if (u.proxy) u.proxy->mark = u.proxy->credentials_mark = {};
  }
  for (auto& r : c.routes) r.mark = {};
  for (auto& t : c.tenants) {
    t.mark = {};
    for (auto& [purpose, refs] : t.identities)
      for (auto& ref : refs) ref.mark = {};
  }
  for (auto& cl : c.clients) cl.mark = {};
  if (c.admin) c.admin->mark = {};
  c.build_index();
  return c;
}

ConfigPtr reload(const std::string& printed) {
  try {
    // Another directory on purpose: printed paths are absolute, nothing may depend on where it is read.
    return load_config_text(printed, "printed.yaml", "/somewhere/else").config;
  } catch (const ConfigError& e) {
    ADD_FAILURE() << "the printed configuration does not load:\n" << e.what() << "\n--- printed:\n" << printed;
    return nullptr;
  }
}

// A configuration that uses every section and most keys, with an included site file and relative paths.
struct RichConfig {
  TempDir dir;
  std::filesystem::path main;
  RichConfig() {
    dir.write("conf.d/site-b.yaml", yaml(R"(
tenants:
  - id: "498765432103017"
    name: "Cabinet B \"les Tilleuls\""
    sector: SA08
    departement: "2A"
    responsible_rpps: "98765432103"
    legal_representative: "Dr Élodie\tB\\x"
    identities:
      dmp:
        - { cert: certs/b-2024.pem, key: "pkcs11:token=t;object=b-2024;type=private" }
        - { cert: certs/b-2027.pem, key: "pkcs11:token=t;object=b-2027;type=private" }
      insi-manu: [{ cert: /etc/b-insi.pem, key: "pkcs11:token=t;id=%01%02;type=private?pin-source=file:/run/pin" }]
upstreams:
  insi:
    url: https://[::1]:8443/lps
    ca_file: ../ca/test.pem
    environment: test
    purpose: insi-manu
    sni: insi.test.local
    tls_min: "1.3"
routes:
  - { prefix: /insi/, upstream: insi, max_body: 1MiB }
)"));
    main = dir.write("main.yaml", yaml(R"(
settings: { workers: 3, require_all_identities: true, log_level: debug, shutdown_grace: 1500ms }
pkcs11:
  modules:
    - { name: softhsm, path: lib/libsofthsm2.so }
    - { name: p11-kit-registered }
  pin_file: secrets/pin
  allow_key_files: true
  max_concurrent_signs: 8
listeners:
  - name: lan
    address: 10.0.0.5
    port: 8443
    selectors:
      - header
      - source: { "10.1.0.0/16": "312345678200002", "fd00:1::/64": "498765432103017" }
      - client_cert: { "OU=312345678200002": "312345678200002", "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89": "498765432103017" }
      - path
    tenant_header: X-Site
    header_timeout: 2s
    idle_timeout: 2m
    max_header_bytes: 32KiB
    max_header_count: 50
    vihf_check: false
    tls: { cert: tls/server.pem, key: tls/server.key, client_ca: tls/clients.pem, require_client_cert: true }
  - { name: local, address: "::1", port: 8080, selectors: [fixed], tenant: "0751234567" }
upstreams:
  dmp:
    url: https://LPS2.dmp.gouv.fr/si-dmp-server/v2/services/
    ca_file: ca/prod.pem
    environment: production
    purpose: dmp
    connect_timeout: 1s
    handshake_timeout: 3s
    first_byte_timeout: 1h
    idle_timeout: 30s
    max_idle_per_key: 0
    proxy: { url: "http://proxy.local:3128", credentials_file: proxy.cred }
  raw-ip:
    url: https://127.0.0.1:9443
    ca_file: /etc/ca.pem
    environment: test
    purpose: mssante
routes:
  - { prefix: /dmp, upstream: dmp }
  - { prefix: /dmp, host: "DMP.Example.org.", upstream: dmp, max_body: 0 }
  - { prefix: /, upstream: raw-ip, max_body: 1000 }
tenants:
  - id: "312345678200002"
    sector: SA09
    identities:
      dmp: [{ cert: certs/a.pem, key: keys/a.pem }]
  - { id: "0751234567", identities: { vihf-sign: [{ cert: a.pem, key: "pkcs11:object=x;type=private" }] } }
tenant_groups:
  all-sites: ["312345678200002", "498765432103017"]
  empty: []
clients:
  - name: ris
    cidr: [10.1.0.0/16, "fd00:1::/64"]
    tenants: ["0751234567"]
    groups: [all-sites]
    upstreams: [dmp, insi]
    max_connections: 10
    rate: 5
    burst: 7
  - name: batch
    bearer_sha256: [9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752"]
    cert_sha256: "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
    cert_subject: "CN=batch,O=Groupe \"Exemple\",C=FR"
    tenants: "*"
admin: { address: 10.0.0.5, port: 9090, bearer_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 }
logging: { access_log: logs/access.log, rotate_size: 10MiB }
crl_files: [crl/a.crl, /etc/b.crl]
include: [conf.d/*.yaml]
)"));
  }
};

TEST(PrintEffective, printing_then_loading_gives_an_equal_config) {
  RichConfig rich;
  LoadResult r;
  ASSERT_NO_THROW(r = load_config(rich.main));
  const std::string printed = print_effective(*r.config, PrintOptions{.full_bearer_hashes = true});
  ConfigPtr again = reload(printed);
  ASSERT_TRUE(again);
  // Control: the comparison sees a difference when there is one.
  Config changed = *again;
  changed.tenants[1].identities.begin()->second[0].cert_file += ".old";
  EXPECT_FALSE(without_marks(changed) == without_marks(*r.config));
  EXPECT_TRUE(without_marks(*again) == without_marks(*r.config)) << printed;
}

TEST(PrintEffective, shipped_examples_round_trip) {
  for (const char* name :
       {"orgproxy.yaml", "group.yaml", "single-site-sa09.yaml", "group-scm-sel.yaml", "group-insi.yaml"}) {
    SCOPED_TRACE(name);
    LoadResult r;
    ASSERT_NO_THROW(r = load_config(kExamples / name));
    ConfigPtr again = reload(print_effective(*r.config, PrintOptions{.full_bearer_hashes = true}));
    ASSERT_TRUE(again);
    EXPECT_TRUE(without_marks(*again) == without_marks(*r.config));
  }
}

TEST(PrintEffective, includes_are_merged_and_each_entry_names_its_source) {
  RichConfig rich;
  auto r = load_config(rich.main);
  const std::string printed = print_effective(*r.config);
  EXPECT_EQ(printed.find("\ninclude:"), std::string::npos) << "the effective config is one file";
  const std::string site_file = (rich.dir.path() / "conf.d/site-b.yaml").string();
  EXPECT_NE(printed.find("- id: \"498765432103017\"  # " + site_file + ":2:5"), std::string::npos) << printed;
}

TEST(PrintEffective, ids_are_quoted_text_and_paths_absolute) {
  RichConfig rich;
  auto r = load_config(rich.main);
  const std::string printed = print_effective(*r.config);
  // An id with a leading zero stays text; unquoted, YAML 1.1 tools would read it as an octal number.
  EXPECT_NE(printed.find("- id: \"0751234567\""), std::string::npos) << printed;
  EXPECT_NE(printed.find("tenant: \"0751234567\""), std::string::npos);
  EXPECT_NE(printed.find("\"10.1.0.0/16\": \"312345678200002\""), std::string::npos);
  const std::string dir = rich.dir.path().string();
  EXPECT_NE(printed.find("cert: \"" + dir + "/conf.d/certs/b-2024.pem\""), std::string::npos) << printed;
  EXPECT_NE(printed.find("ca_file: \"" + dir + "/ca/test.pem\""), std::string::npos);
  EXPECT_NE(printed.find("pin_file: \"" + dir + "/secrets/pin\""), std::string::npos);
  EXPECT_NE(printed.find("access_log: \"" + dir + "/logs/access.log\""), std::string::npos);
  // A bare module name is left to the dynamic loader, as loaded.
  EXPECT_NE(printed.find("- name: \"p11-kit-registered\""), std::string::npos);
  // Quotes inside values are escaped, so the document stays valid.
  EXPECT_NE(printed.find(R"(name: "Cabinet B \"les Tilleuls\"")"), std::string::npos);
}

TEST(PrintEffective, defaults_are_written_out) {
  auto r = load_ok(kBase);
  const std::string printed = print_effective(*r.config);
  for (const char* expected :
       {"workers: 0", "require_all_identities: false", "shutdown_grace: 10s", "max_idle_connections: 4096",
        "selectors:\n      - header",
        "tenant_header: \"X-Orgproxy-Tenant\"", "header_timeout: 10s", "max_header_bytes: 16KiB", "connect_timeout: 5s",
        "first_byte_timeout: 1m", "max_idle_per_key: 32", "tls_min: \"1.2\"", "sni: \"lps2.dmp.gouv.fr\"",
        "max_body: 256MiB", "access_log: \"stdout\"", "vihf_check: true"})
    EXPECT_NE(printed.find(expected), std::string::npos) << expected << "\n" << printed;
}

TEST(PrintEffective, bearer_hashes_are_truncated_by_default) {
  RichConfig rich;
  auto r = load_config(rich.main);
  const std::string printed = print_effective(*r.config);
  EXPECT_EQ(printed.find("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"), std::string::npos);
  EXPECT_EQ(printed.find("60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"), std::string::npos);
  EXPECT_NE(printed.find("\"9f86d081...\"  # truncated"), std::string::npos) << printed;
  EXPECT_NE(printed.find("\"60303ae2...\"  # truncated"), std::string::npos);
  // Control: certificate fingerprints are not secrets and are printed whole.
  EXPECT_NE(printed.find("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"), std::string::npos);
  // Full hashes only on request.
  const std::string full = print_effective(*r.config, PrintOptions{.full_bearer_hashes = true});
  EXPECT_NE(full.find("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"), std::string::npos);
}

TEST(PrintEffective, pin_values_in_key_uris_are_never_printed) {
  auto r = load_ok(yaml(R"(
listeners: [{ name: ris, port: 8080 }]
pkcs11: { allow_pin_value: true }
tenants:
  - id: "312345678200002"
    identities:
      dmp: [{ cert: a.pem, key: "pkcs11:token=t;object=a;type=private?pin-value=S3cr3t-0042&module-name=softhsm" }]
)"));
  ASSERT_TRUE(r.config);
  const std::string printed = print_effective(*r.config, PrintOptions{.full_bearer_hashes = true});
  EXPECT_EQ(printed.find("S3cr3t-0042"), std::string::npos) << printed;
  EXPECT_NE(printed.find("key: \"pkcs11:token=t;object=a;type=private?pin-value=REDACTED&module-name=softhsm\""),
            std::string::npos)
      << printed;
  // Control: the URI's other attributes survive and the output still loads.
  EXPECT_TRUE(reload(printed));
}

}  // namespace
}  // namespace orgproxy::config::test
