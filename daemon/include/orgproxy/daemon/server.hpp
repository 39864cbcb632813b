// The daemon's lifecycle (DESIGN.md, daemon brief): start (config, keystore, identities, listeners,
// "ready"), worker threads, and the control thread's signals — SIGTERM/SIGINT graceful stop, SIGHUP reload.
#pragma once

#include <filesystem>
#include <iosfwd>

namespace orgproxy::daemon {

/// Runs the daemon in the foreground until SIGTERM/SIGINT. Returns the process exit code: 0 after a
/// graceful stop, 1 when start-up fails (config errors printed as file:line:col, keystore failure,
/// require_all_identities with an unavailable identity, a listener that cannot bind).
int run_server(const std::filesystem::path& config_path);

/// `orgproxy check-config`: loads and validates the config and prints every problem to `err` (like
/// nginx -t). Unless `offline`, also opens the keystore and loads and checks every identity (chain to
/// each upstream's CA bundle). Settings this build cannot honour are errors here as at start. With `print`,
/// the effective configuration (config::print_effective: includes merged, defaults written, secrets
/// redacted) goes to `out`. Returns 0 when nothing failed, 1 otherwise.
int check_config(const std::filesystem::path& config_path, bool offline, bool print, std::ostream& out,
                 std::ostream& err);

}  // namespace orgproxy::daemon
