// Renewal overlap: which of several certificates of one purpose to present now.
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

IdentityPtr select_current_identity(const std::vector<IdentityPtr>& candidates,
                                    std::chrono::system_clock::time_point now) {
  IdentityPtr best;
  for (const IdentityPtr& c : candidates) {
    if (!c || !c->usable() || now < c->not_before() || now >= c->not_after()) continue;
    // The newest issue wins: during an overlap the renewed certificate takes over as soon as it is valid,
    // and the old one stays loaded as a fallback until it expires or is removed.
    if (!best || c->not_before() > best->not_before() ||
        (c->not_before() == best->not_before() && c->not_after() > best->not_after()))
      best = c;
  }
  return best;
}

}  // namespace orgproxy::keystore
