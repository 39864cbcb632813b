// orgproxy: `run`, `check-config`, `keys ...`, `sites ...`, `--version` (see README's commands table).
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "orgproxy/daemon/cli_keys.hpp"
#include "orgproxy/daemon/cli_sites.hpp"
#include "orgproxy/daemon/cli_status.hpp"
#include "orgproxy/daemon/server.hpp"

namespace {

// Operational log on stderr; the access log (one JSON object per line) on stdout, so each can be routed
// on its own by journald or a log shipper.
void setup_logging() {
  auto main_logger = spdlog::stderr_logger_mt("orgproxy");
  main_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l [%t] %v");
  spdlog::set_default_logger(main_logger);
  auto access = spdlog::stdout_logger_mt("access");
  access->set_pattern("%v");
  access->flush_on(spdlog::level::info);
  main_logger->flush_on(spdlog::level::info);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"orgproxy: multi-tenant mutual-TLS forward proxy for French health-IT national services"};
  app.set_version_flag("--version", std::string("orgproxy ") + ORGPROXY_VERSION);
  app.require_subcommand(1);

  std::string config_path;
  auto* run = app.add_subcommand("run", "run the daemon in the foreground");
  run->add_option("--config,-c", config_path, "configuration file (YAML)")->required();

  bool offline = false;
  auto* check = app.add_subcommand("check-config", "validate the configuration (and the identities unless --offline)");
  check->add_option("--config,-c", config_path, "configuration file (YAML)")->required();
  check->add_flag("--offline", offline, "do not open the token: configuration checks only");
  bool print = false;
  check->add_flag("--print", print, "print the effective configuration (includes merged, defaults written)");
  orgproxy::daemon::add_keys_command(app);
  orgproxy::daemon::add_sites_command(app);

  try {
    orgproxy::daemon::add_sites_status_command(app);  // last: joins the `sites` command if already registered
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    // A subcommand that ran (sites status, sites inventory, ...) reports its own exit status this way:
    // 0 ok, 1 "not ready" (scripts and monitoring rely on that difference), 2 failure to check at all.
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  setup_logging();
  try {
    if (*run) {
      int status = orgproxy::daemon::run_server(config_path);
      spdlog::shutdown();  // flushes the buffered access log
      return status;
    }
    if (*check) return orgproxy::daemon::check_config(config_path, offline, print, std::cout, std::cerr);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
  return 2;
}
