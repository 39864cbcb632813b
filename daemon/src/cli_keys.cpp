// `orgproxy keys ...` (see cli_keys.hpp): configuration → plain parameters for keystore::KeyAdmin, and the
// printing of tables / JSON. Output on stdout; the keystore's log (warnings only) on stderr.
#include "orgproxy/daemon/cli_keys.hpp"

#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "orgproxy/config/load.hpp"
#include "orgproxy/keystore/admin.hpp"
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::daemon {
namespace {

struct KeysOptions {
  std::string config, tenant, purpose, token, file, out, password_file, label, common_name;
  bool json = false, yes = false;
};

/// Thrown for refusals: message to stderr, exit code 1.
struct Refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

config::ConfigPtr load(const std::string& path) {
  try {
    auto result = config::load_config(path);
    return result.config;
  } catch (const config::ConfigError& e) {
    std::ostringstream out;
    for (auto const& d : e.diagnostics()) out << d.str() << "\n";
    throw Refused("configuration " + path + " has errors:\n" + out.str());
  }
}

keystore::KeystoreOptions keystore_options(const config::Config& cfg) {
  keystore::KeystoreOptions o;
  for (auto const& m : cfg.pkcs11.modules) o.modules.push_back({m.name, m.path});
  o.pin_file = cfg.pkcs11.pin_file;
  o.allow_pin_value = cfg.pkcs11.allow_pin_value;
  o.allow_key_files = cfg.pkcs11.allow_key_files;
  o.allow_extractable = cfg.pkcs11.allow_extractable_keys;
  o.max_concurrent_signs = 2;
  return o;
}

const config::Tenant& tenant_of(const config::Config& cfg, const std::string& id) {
  for (auto const& t : cfg.tenants)
    if (t.id == id) return t;
  throw Refused("tenant " + id + " is not in the configuration");
}

std::string purpose_of(const std::string& text) {
  auto p = config::parse_purpose(text);
  if (!p) throw Refused("unknown purpose '" + text + "' (dmp, insi-auto, insi-manu, mssante, vihf-sign)");
  return std::string(config::to_string(*p));
}

std::string hex(const std::string& bytes) {
  std::ostringstream out;
  for (unsigned char c : bytes) out << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(c);
  return out.str();
}

std::string flag(const std::optional<bool>& b) { return !b ? "?" : *b ? "yes" : "no"; }

/// Which (tenant, purpose) of the configuration uses `object` (its key URI selects the object).
std::string users_of(const config::Config& cfg, const keystore::TokenObjectInfo& object) {
  std::string out;
  for (auto const& t : cfg.tenants)
    for (auto const& [purpose, refs] : t.identities)
      for (auto const& ref : refs)
        if (ref.key.rfind("pkcs11:", 0) == 0 && keystore::uri_selects(ref.key, object))
          out += (out.empty() ? "" : ",") + t.id + "/" + std::string(config::to_string(purpose));
  return out;
}

int run_list(const KeysOptions& o) {
  auto cfg = load(o.config);
  auto admin = keystore::KeyAdmin::open(keystore_options(*cfg));
  auto objects = admin->list_objects();
  if (o.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (auto const& ob : objects) {
      nlohmann::json r{{"token", ob.token_label}, {"serial", ob.token_serial}, {"module", ob.module},
                       {"class", ob.object_class}, {"id_hex", hex(ob.id)}, {"label", ob.label},
                       {"key_type", ob.key_type}, {"uri", ob.uri}, {"used_by", users_of(*cfg, ob)}};
      if (ob.sensitive) r["sensitive"] = *ob.sensitive;
      if (ob.extractable) r["extractable"] = *ob.extractable;
      if (ob.can_sign) r["sign"] = *ob.can_sign;
      if (!ob.certificate_subject.empty()) r["subject"] = ob.certificate_subject;
      if (!ob.certificate_not_after.empty()) r["not_after"] = ob.certificate_not_after;
      rows.push_back(r);
    }
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(12) << "TOKEN" << std::setw(12) << "CLASS" << std::setw(28) << "LABEL"
            << std::setw(10) << "TYPE" << std::setw(26) << "FLAGS" << "USED BY / DETAILS\n";
  for (auto const& ob : objects) {
    std::string flags = ob.object_class == "private-key"
                            ? "sens=" + flag(ob.sensitive) + " extr=" + flag(ob.extractable) + " sign=" + flag(ob.can_sign)
                            : "";
    std::string details = users_of(*cfg, ob);
    if (!ob.certificate_subject.empty())
      details += (details.empty() ? "" : " ") + ob.certificate_subject + " (until " + ob.certificate_not_after + ")";
    std::cout << std::setw(12) << ob.token_label << std::setw(12) << ob.object_class << std::setw(28) << ob.label
              << std::setw(10) << ob.key_type << std::setw(26) << flags << details << "\n";
  }
  return 0;
}

int run_generate(const KeysOptions& o) {
  auto cfg = load(o.config);
  const auto& tenant = tenant_of(*cfg, o.tenant);
  const std::string purpose = purpose_of(o.purpose);
  keystore::OrgRequestSubject subject;
  subject.departement = tenant.departement;
  subject.organisation = tenant.name;
  subject.tenant_id = tenant.id;
  // INSi certificates carry their mode in the CN (DOMAIN.md); other purposes the site's name.
  if (purpose == "insi-auto") subject.common_name = "INSI-AUTO";
  else if (purpose == "insi-manu") subject.common_name = "INSI-MANU";
  else subject.common_name = o.common_name.empty() ? tenant.name : o.common_name;
  if (subject.organisation.empty()) throw Refused("tenant " + tenant.id + " has no name (needed for O=)");
  auto admin = keystore::KeyAdmin::open(keystore_options(*cfg));
  auto generated = admin->generate(o.token, tenant.id, purpose, subject);
  const std::string out = o.out.empty() ? tenant.id + "-" + purpose + ".csr" : o.out;
  std::ofstream file(out, std::ios::trunc);
  file << generated.csr_pem;
  if (!file.flush()) throw Refused("cannot write " + out);
  std::cout << "key " << generated.label << " generated in the token (RSA-2048, sensitive, not extractable)\n"
            << "certificate request: " << out << "\n"
            << "key URI for the configuration: " << generated.key_uri << "\n";
  return 0;
}

std::string read_password(const KeysOptions& o) {
  std::string password;
  if (!o.password_file.empty()) {
    std::ifstream in(o.password_file, std::ios::binary);
    if (!in) throw Refused("cannot read the password file " + o.password_file);
    std::getline(in, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    return password;
  }
  // Prompt on the terminal without echo; from a pipe, one line of standard input.
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  termios saved{};
  if (tty) {
    std::cerr << "PKCS#12 password: " << std::flush;
    ::tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::getline(std::cin, password);
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  return password;
}

int run_import(const KeysOptions& o) {
  auto cfg = load(o.config);
  const auto& tenant = tenant_of(*cfg, o.tenant);
  const std::string purpose = purpose_of(o.purpose);
  std::string password = read_password(o);
  auto admin = keystore::KeyAdmin::open(keystore_options(*cfg));
  std::string uri;
  try {
    uri = admin->import_pkcs12(o.token, tenant.id, purpose, o.file, password);
  } catch (...) {
    OPENSSL_cleanse(password.data(), password.size());
    throw;
  }
  OPENSSL_cleanse(password.data(), password.size());
  std::cout << "imported (sensitive, not extractable); key URI for the configuration: " << uri << "\n";
  return 0;
}

int run_install_cert(const KeysOptions& o) {
  auto cfg = load(o.config);
  const auto& tenant = tenant_of(*cfg, o.tenant);
  const std::string purpose = purpose_of(o.purpose);
  auto admin = keystore::KeyAdmin::open(keystore_options(*cfg));
  std::string uri = admin->install_certificate(o.token, tenant.id, purpose, o.file);
  std::cout << "certificate installed; key URI for the configuration: " << uri << "\n";
  return 0;
}

int run_delete(const KeysOptions& o) {
  auto cfg = load(o.config);
  const std::string purpose = purpose_of(o.purpose);
  auto admin = keystore::KeyAdmin::open(keystore_options(*cfg));
  auto objects = admin->objects_of(o.token, o.tenant, purpose, o.label);
  if (objects.empty()) throw Refused("no object of tenant " + o.tenant + " purpose " + purpose + " on the token");
  std::cout << "These objects will be destroyed (keys are not extractable: this cannot be undone):\n";
  for (auto const& ob : objects) std::cout << "  " << ob.object_class << " " << ob.label << "  " << ob.uri << "\n";
  if (!o.yes) {
    std::cout << "Type 'yes' to confirm: " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "yes") {
      std::cout << "not confirmed; nothing deleted\n";
      return 1;
    }
  }
  unsigned removed = admin->remove(o.token, o.tenant, purpose, o.label);
  std::cout << removed << " objects destroyed\n";
  return 0;
}

int run_check(const KeysOptions& o);

void install(CLI::App* sub, KeysOptions& o, int (*action)(const KeysOptions&)) {
  sub->callback([&o, action] {
    int code = 1;
    try {
      code = action(o);
    } catch (const Refused& e) {
      std::cerr << "orgproxy keys: " << e.what() << "\n";
    } catch (const keystore::KeystoreError& e) {
      std::cerr << "orgproxy keys: " << e.what() << "\n";
    } catch (const std::exception& e) {
      std::cerr << "orgproxy keys: " << e.what() << "\n";
    }
    std::cout.flush();
    std::exit(code);
  });
}

}  // namespace

void add_keys_command(CLI::App& app) {
  static KeysOptions o;
  auto* keys = app.add_subcommand("keys", "token keys and certificates of the sites (admin)");
  keys->require_subcommand(1);
  keys->add_option("--config,-c", o.config, "configuration file (YAML)")->required();
  keys->add_option("--token", o.token, "token label (needed when the modules hold several tokens)");
  // Keys logs go to stderr, warnings and errors only: stdout is the command's output (tables, JSON).
  keys->preparse_callback([](size_t) {
    auto logger = spdlog::stderr_logger_mt("keys");
    logger->set_level(spdlog::level::warn);
    spdlog::set_default_logger(logger);
  });

  auto* list = keys->add_subcommand("list", "objects on the token(s), key flags, and which site/purpose uses each");
  list->add_flag("--json", o.json, "JSON output");
  install(list, o, run_list);

  auto* generate = keys->add_subcommand("generate", "RSA-2048 key pair in the token and its CSR (ORG subject)");
  generate->add_option("--tenant", o.tenant, "site (structure id)")->required();
  generate->add_option("--purpose", o.purpose, "dmp, insi-auto, insi-manu, mssante, vihf-sign")->required();
  generate->add_option("--cn", o.common_name, "CN (default: the tenant name; INSI-AUTO/INSI-MANU for INSi)");
  generate->add_option("--out", o.out, "CSR file (default: <tenant>-<purpose>.csr)");
  install(generate, o, run_generate);

  auto* import = keys->add_subcommand("import", "import a PKCS#12 key and certificate into the token");
  import->add_option("--p12", o.file, "PKCS#12 file")->required();
  import->add_option("--tenant", o.tenant, "site (structure id)")->required();
  import->add_option("--purpose", o.purpose, "identity purpose")->required();
  import->add_option("--password-file", o.password_file, "file holding the PKCS#12 password (else prompted)");
  install(import, o, run_import);

  auto* install_cert = keys->add_subcommand("install-cert", "store a certificate issued for a key of the token");
  install_cert->add_option("--tenant", o.tenant, "site (structure id)")->required();
  install_cert->add_option("--purpose", o.purpose, "identity purpose")->required();
  install_cert->add_option("file", o.file, "certificate (PEM)")->required();
  install(install_cert, o, run_install_cert);

  auto* check = keys->add_subcommand("check", "check every identity of the configuration; non-zero if anything is wrong");
  check->add_flag("--json", o.json, "JSON output");
  install(check, o, run_check);

  auto* remove = keys->add_subcommand("delete", "destroy the key(s) and certificate(s) of a site's purpose");
  remove->add_option("--tenant", o.tenant, "site (structure id)")->required();
  remove->add_option("--purpose", o.purpose, "identity purpose")->required();
  remove->add_option("--label", o.label, "only this generation (e.g. 312345678200002-dmp-2)");
  remove->add_flag("--yes", o.yes, "do not ask for confirmation");
  install(remove, o, run_delete);

  // `--config`/`--token` belong to `keys` but are accepted after the subcommand too
  // (`orgproxy keys generate ... --config F`), as the onboarding walkthrough writes them.
  for (auto* sub : keys->get_subcommands([](CLI::App*) { return true; })) sub->fallthrough();
}

namespace {

/// "2027-03-01T12:00:00Z" (RFC 3339, UTC, seconds).
std::string iso8601_utc(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

int run_check(const KeysOptions& o) {
  auto cfg = load(o.config);
  std::vector<keystore::IdentitySpec> specs;
  for (auto const& t : cfg->tenants)
    for (auto const& [purpose, refs] : t.identities)
      for (auto const& ref : refs) specs.push_back({t.id, std::string(config::to_string(purpose)), ref.cert_file, ref.key});
  auto ks = keystore::Keystore::open(keystore_options(*cfg));
  auto loads = ks->load_identities(specs);
  const auto now = std::chrono::system_clock::now();
  nlohmann::json rows = nlohmann::json::array();
  bool all_ok = true;
  for (size_t i = 0; i < specs.size(); ++i) {
    nlohmann::json r{{"tenant", specs[i].tenant_id}, {"purpose", specs[i].purpose}, {"cert", specs[i].cert_file},
                     {"key", specs[i].key}};
    std::vector<std::string> problems;
    // The load checks: key present on the token, key matches certificate, key flags, OU = tenant id, INSi CN
    // rule, validity dates.
    if (!loads[i].error.empty()) problems.push_back(loads[i].error);
    if (const auto& id = loads[i].identity) {
      // The certificate actually loaded, wherever it came from: with no cert: file it is the token's object,
      // which the administrator otherwise cannot see without pkcs11-tool.
      r["cert_source"] = specs[i].cert_file.empty() ? "token" : "file";
      r["subject"] = id->subject();
      r["serial"] = id->serial_hex();
      r["not_after"] = iso8601_utc(id->not_after());
      r["days_to_expiry"] = std::chrono::duration_cast<std::chrono::hours>(id->not_after() - now).count() / 24;
      bool any_upstream = false;
      for (auto const& [name, u] : cfg->upstreams) {
        if (std::string(config::to_string(u.purpose)) != specs[i].purpose) continue;
        any_upstream = true;
        if (std::string why = keystore::verify_identity_chain(*id, u.ca_file); !why.empty())
          problems.push_back("chain does not verify to the CA bundle of upstream " + name + " (" + u.ca_file +
                             "): " + why);
      }
      if (!any_upstream) r["note"] = "no upstream uses this purpose: chain not checked";
    }
    r["ok"] = problems.empty();
    r["problems"] = problems;
    all_ok = all_ok && problems.empty();
    rows.push_back(r);
  }
  if (o.json) {
    std::cout << nlohmann::json{{"ok", all_ok}, {"identities", rows}}.dump(2) << "\n";
  } else {
    std::cout << std::left << std::setw(17) << "TENANT" << std::setw(11) << "PURPOSE" << std::setw(6) << "OK"
              << std::setw(8) << "DAYS" << "PROBLEMS\n";
    for (auto const& r : rows) {
      std::string days = r.contains("days_to_expiry") ? std::to_string(r["days_to_expiry"].get<long>()) : "-";
      std::string problems;
      for (auto const& p : r["problems"]) problems += (problems.empty() ? "" : "; ") + p.get<std::string>();
      std::cout << std::setw(17) << r["tenant"].get<std::string>() << std::setw(11) << r["purpose"].get<std::string>()
                << std::setw(6) << (r["ok"].get<bool>() ? "yes" : "NO") << std::setw(8) << days << problems << "\n";
    }
    std::cout << (rows.empty() ? "no identity in the configuration\n"
                  : all_ok     ? "all identities OK\n"
                               : "some identities have problems\n");
  }
  return all_ok && !rows.empty() ? 0 : 1;
}

}  // namespace
}  // namespace orgproxy::daemon
