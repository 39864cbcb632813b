// `orgproxy sites ...`: argument parsing and printing only; the work is in orgproxy_onboarding.
#include "orgproxy/daemon/cli_sites.hpp"

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "orgproxy/config/load.hpp"
#include "orgproxy/keystore/keystore.hpp"
#include "orgproxy/onboarding/discovery.hpp"
#include "orgproxy/onboarding/inventory.hpp"
#include "orgproxy/onboarding/plan413.hpp"
#include "orgproxy/onboarding/sites_output.hpp"

namespace orgproxy::daemon {
namespace {

struct DiscoverArgs {
  std::string rpps;
  std::string source;  ///< "" = the configuration's directory.source, else ldap
  std::string url, base_dn, fhir_url, api_key_file, config;
  unsigned timeout_s = 0;  ///< 0 = the configuration's directory.timeout, else 10 s
  bool json = false, yaml = false;
};

struct PlanArgs {
  std::string config;
  bool csv = false, json = false;
};

struct InventoryArgs {
  std::string config;
  bool json = false;
  unsigned expiring_days = 60;
};

/// Library logs (keystore, p11-kit warnings) on stderr so that --json/--yaml output stays clean.
void quiet_logging() {
  auto logger = spdlog::stderr_logger_mt("orgproxy-sites");
  logger->set_level(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

/// Loads the configuration, printing its warnings and errors (file:line:col) to stderr.
config::ConfigPtr load(const std::string& path) {
  try {
    config::LoadResult r = config::load_config(path);
    for (const config::Diagnostic& d : r.warnings) std::cerr << d.str() << "\n";
    return r.config;
  } catch (const config::ConfigError& e) {
    for (const config::Diagnostic& d : e.diagnostics()) std::cerr << d.str() << "\n";
    return nullptr;
  }
}

int run_discover(const DiscoverArgs& a) {
  using namespace orgproxy::onboarding;
  try {
    config::ConfigPtr cfg;
    if (!a.config.empty() && !(cfg = load(a.config))) return 1;
    // Flags win over the configuration's `directory` settings, which win over the built-in defaults.
    const config::DirectorySettings settings = cfg ? cfg->directory : config::DirectorySettings{};
    auto pick = [](const std::string& flag, const std::string& setting) { return flag.empty() ? setting : flag; };
    const std::chrono::milliseconds timeout =
        a.timeout_s ? std::chrono::milliseconds(a.timeout_s * 1000ull) : settings.timeout;
    DiscoveryResult result;
    if (pick(a.source, settings.source) == "fhir") {
      FhirSource source;
      if (std::string url = pick(a.fhir_url, settings.fhir_url); !url.empty()) source.base_url = url;
      source.api_key_file = pick(a.api_key_file, settings.api_key_file);
      source.timeout = timeout;
      result = discover_fhir(a.rpps, source);
    } else {
      LdapSource source;
      if (std::string url = pick(a.url, settings.ldap_url); !url.empty()) source.url = url;
      source.base_dn = pick(a.base_dn, settings.base_dn);
      source.timeout = timeout;
      result = discover_ldap(a.rpps, source);
    }
    if (cfg) mark_configured(result, *cfg);
    if (a.json) std::cout << sites_to_json(result).dump(2) << "\n";
    else if (a.yaml) std::cout << render_tenant_stubs_yaml(result);
    else std::cout << render_sites_table(result);
    return 0;
  } catch (const DiscoveryError& e) {
    std::cerr << "orgproxy sites discover: " << e.what() << "\n";
    return e.kind() == DiscoveryError::Kind::bad_input ? 2 : 1;
  }
}

int run_plan(const PlanArgs& a) {
  config::ConfigPtr cfg = load(a.config);
  if (!cfg) return 1;
  onboarding::Plan413 plan = onboarding::plan_forms_413(*cfg);
  if (a.json) std::cout << onboarding::plan_to_json(plan).dump(2) << "\n";
  else if (a.csv) std::cout << onboarding::render_plan_csv(plan);
  else std::cout << onboarding::render_plan_table(plan);
  return 0;
}

int run_inventory(const InventoryArgs& a) {
  config::ConfigPtr cfg = load(a.config);
  if (!cfg) return 1;
  onboarding::InventoryOptions options;
  options.expiring = std::chrono::days(a.expiring_days);
  onboarding::Inventory inventory;
  try {
    inventory = onboarding::take_inventory(*cfg, options);
  } catch (const keystore::KeystoreError& e) {
    std::cerr << "orgproxy sites inventory: the token cannot be used: " << e.what() << "\n";
    return 1;
  }
  if (a.json) std::cout << onboarding::inventory_to_json(inventory).dump(2) << "\n";
  else std::cout << onboarding::render_inventory_table(inventory);
  return inventory.all_ready() ? 0 : 3;
}

/// Runs `body`, turning its result (or any exception, printed) into the CLI11 exit.
template <class Body>
[[noreturn]] void finish(const char* command, Body&& body) {
  int rc = 1;
  try {
    quiet_logging();
    rc = body();
  } catch (const std::exception& e) {
    std::cerr << "orgproxy sites " << command << ": " << e.what() << "\n";
  }
  std::cout.flush();
  throw CLI::RuntimeError(rc);
}

}  // namespace

void add_sites_command(CLI::App& app) {
  auto* sites = app.add_subcommand("sites", "site onboarding: directory discovery, forms 413, inventory");
  sites->require_subcommand(1);

  auto d = std::make_shared<DiscoverArgs>();
  auto* discover = sites->add_subcommand("discover", "list a professional's practice sites from the health directory");
  discover->add_option("--rpps", d->rpps, "RPPS of the professional (11 digits)")->required();
  discover->add_option("--source", d->source, "directory: ldap (default) or fhir")
      ->check(CLI::IsMember({"ldap", "fhir"}));
  discover->add_option("--url", d->url, "LDAP directory URL (ldap://host[:port])");
  discover->add_option("--base-dn", d->base_dn, "LDAP search base (e.g. o=TEST,c=fr)");
  discover->add_option("--fhir-url", d->fhir_url, "FHIR API base URL (default https://gateway.api.esante.gouv.fr/fhir/v2)");
  discover->add_option("--api-key-file", d->api_key_file, "file holding the FHIR API key (ESANTE-API-KEY)");
  discover->add_option("--timeout", d->timeout_s, "network timeout in seconds")->check(CLI::Range(1u, 600u));
  discover->add_option("--config,-c", d->config,
                       "configuration file: its `directory` settings, and the sites already configured are marked");
  auto* json = discover->add_flag("--json", d->json, "JSON output");
  discover->add_flag("--yaml", d->yaml, "YAML tenant stubs for conf.d")->excludes(json);
  discover->callback([d] { finish("discover", [&] { return run_discover(*d); }); });

  auto p = std::make_shared<PlanArgs>();
  auto* plan = sites->add_subcommand("plan-413", "forms 413 to prepare for the configured sites");
  plan->add_option("--config,-c", p->config, "configuration file (YAML)")->required();
  auto* csv = plan->add_flag("--csv", p->csv, "CSV output");
  plan->add_flag("--json", p->json, "JSON output")->excludes(csv);
  plan->callback([p] { finish("plan-413", [&] { return run_plan(*p); }); });

  auto i = std::make_shared<InventoryArgs>();
  auto* inventory = sites->add_subcommand("inventory", "status of every site's keys and certificates (offline)");
  inventory->add_option("--config,-c", i->config, "configuration file (YAML)")->required();
  inventory->add_flag("--json", i->json, "JSON output");
  inventory->add_option("--expiring-days", i->expiring_days, "certificates with fewer days left are 'expiring'")
      ->check(CLI::Range(0u, 3650u));
  inventory->callback([i] { finish("inventory", [&] { return run_inventory(*i); }); });
}

}  // namespace orgproxy::daemon
