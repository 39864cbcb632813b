#include "key_index.hpp"

#include <algorithm>

namespace orgproxy::keystore {

KeyObjectIndex::KeyObjectIndex(const std::vector<TokenKeyObject>& keys) : keys_(keys) {
  by_label_.reserve(keys_.size());
  by_id_.reserve(keys_.size());
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    by_label_.emplace(keys_[i].label, i);
    by_id_.emplace(keys_[i].id, i);
  }
}

std::vector<const TokenKeyObject*> KeyObjectIndex::matching(const KeyUri& uri) const {
  std::vector<std::size_t> positions;
  auto collect = [&](const auto& map, const std::string& value) {
    auto [first, last] = map.equal_range(std::string_view(value));
    for (auto it = first; it != last; ++it) positions.push_back(it->second);
    std::sort(positions.begin(), positions.end());  // search order, as a scan would give
  };
  if (uri.label()) {
    collect(by_label_, *uri.label());
  } else if (uri.id()) {
    collect(by_id_, *uri.id());
  } else {
    positions.resize(keys_.size());
    for (std::size_t i = 0; i < keys_.size(); ++i) positions[i] = i;
  }
  std::vector<const TokenKeyObject*> out;
  for (std::size_t i : positions)
    if (uri.matches_object(keys_[i].id, keys_[i].label)) out.push_back(&keys_[i]);
  return out;
}

}  // namespace orgproxy::keystore
