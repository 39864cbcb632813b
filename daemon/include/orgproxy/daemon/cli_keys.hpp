// `orgproxy keys ...`: the admin commands of the vendor's technical administrator (list, generate, import,
// install-cert, check, delete). Parsing and printing live here; the token operations are keystore::KeyAdmin.
#pragma once

namespace CLI {
class App;
}

namespace orgproxy::daemon {

/// Registers the `keys` subcommand on `app`. Each `keys` subcommand runs from its CLI11 callback and ends the
/// process with its exit code: 0 success, 1 refused or something wrong (`check`), 2 usage.
void add_keys_command(CLI::App& app);

}  // namespace orgproxy::daemon
