// `orgproxy sites ...`: site onboarding commands (directory discovery, forms 413, inventory).
#pragma once

namespace CLI {
class App;
}

namespace orgproxy::daemon {

/// Registers `sites discover|plan-413|inventory` on `app`. Each runs from its CLI11 callback and ends by
/// throwing CLI::RuntimeError with its exit code (0 = success; non-zero: bad input, directory unreachable,
/// configuration error, or — for inventory — a site that is not ready), which main() turns into the process
/// exit status. Results go to stdout, diagnostics to stderr.
void add_sites_command(CLI::App& app);

}  // namespace orgproxy::daemon
