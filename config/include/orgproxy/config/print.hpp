// The effective configuration as YAML, for `orgproxy check-config --print`.
#pragma once

#include <string>

#include "orgproxy/config/config.hpp"

namespace orgproxy::config {

/// What print_effective may reveal.
struct PrintOptions {
  /// Print clients' and admin's bearer_sha256 values in full. Off by default: only their first 8 hex digits
  /// are shown (enough to tell tokens apart; an offline guess of a weak token needs the whole hash), and the
  /// output then does not load again for those entries.
  bool full_bearer_hashes = false;
};

/// The configuration `config` exactly as orgproxy uses it, as one YAML document: includes merged into
/// the one file, every default written out, relative paths already resolved (absolute), durations and
/// sizes in the config's own units, every string double-quoted (tenant ids stay text), each entry preceded
/// by a comment naming the file:line:col it came from. Secrets are never printed: a `pin-value` in a key
/// URI shows as `pin-value=REDACTED`, and bearer hashes are truncated unless `options` says otherwise.
/// With no pin-value and full bearer hashes, loading the output gives a Config equal to `config` (but for
/// source marks and source_file). Schema: config/SCHEMA.md. Never throws but std::bad_alloc.
std::string print_effective(const Config& config, const PrintOptions& options = {});

}  // namespace orgproxy::config
