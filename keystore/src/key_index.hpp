// The private keys of one token search, indexed by CKA_LABEL and CKA_ID, so that loading N identities
// against a token of M keys costs N lookups rather than N x M URI matches (10,000 sites: 10^8 matches, over
// a minute of start-up, before this index). Internal to the keystore.
#pragma once

#include <string_view>
#include <unordered_map>
#include <vector>

#include "token.hpp"
#include "uri.hpp"

namespace orgproxy::keystore {

class KeyObjectIndex {
 public:
  /// Indexes the keys of one token-wide search (TokenIndex::keys), which must outlive this index and not
  /// change while it lives.
  explicit KeyObjectIndex(const std::vector<TokenKeyObject>& keys);

  /// The keys `uri` names, in search order: narrowed by the URI's `object` (label) or else its `id`, then
  /// each confirmed by KeyUri::matches_object (so the result is exactly what a scan of every key would give).
  std::vector<const TokenKeyObject*> matching(const KeyUri& uri) const;

  const std::vector<TokenKeyObject>& keys() const { return keys_; }

 private:
  const std::vector<TokenKeyObject>& keys_;
  // Views into keys_' strings.
  std::unordered_multimap<std::string_view, std::size_t> by_label_, by_id_;
};

}  // namespace orgproxy::keystore
