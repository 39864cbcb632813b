// `orgproxy sites status`: the sites of a running daemon as its admin listener reports them (GET /sites):
// identities with days to expiry, and per upstream the last success and failure.
#pragma once

#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace orgproxy::daemon {

struct SitesStatusArgs {
  std::string admin_url = "http://127.0.0.1:9464";  ///< http://host:port of the admin listener
  std::string token_file;                            ///< admin bearer token (one line), when required
  bool json = false;                                 ///< print the daemon's JSON as is
  unsigned timeout_s = 10;
};

/// Fetches /sites and prints a table (or the JSON). Returns 0 when every identity is usable, 1 when some
/// is not (scripts can alert on it), 2 when the daemon cannot be reached or answers an error (message on
/// `err`, naming the URL; never the token).
int run_sites_status(const SitesStatusArgs& args, std::ostream& out, std::ostream& err);

/// Registers `status` under the `sites` subcommand of `app` (created when absent, so this works with or
/// without the onboarding commands registered first). Exits through CLI::RuntimeError(code) like them.
void add_sites_status_command(CLI::App& app);

}  // namespace orgproxy::daemon
