// diampool: reusing the nodes of node-based maps (C++17 node handles) so that a map that
// gains and loses an entry per request does not allocate per request.
#pragma once

#include <utility>
#include <vector>

namespace diampool::detail {

/// Inserts (key, value) into `map`, in a spare node when there is one (no allocation).
/// Returns the position of the new entry.
template <typename Map, typename K, typename V>
typename Map::iterator insert_reusing(Map& map, std::vector<typename Map::node_type>& spares,
                                      const K& key, V&& value) {
  if (spares.empty()) {
    if constexpr (requires { map.emplace(key, std::forward<V>(value)).first; }) {
      return map.emplace(key, std::forward<V>(value)).first;
    } else {
      return map.emplace(key, std::forward<V>(value));
    }
  }
  auto& node = spares.back();
  node.key() = key;
  node.mapped() = std::forward<V>(value);
  typename Map::iterator it;
  if constexpr (requires { map.insert(std::move(node)).position; }) {
    it = map.insert(std::move(node)).position;
  } else {
    it = map.insert(std::move(node));
  }
  spares.pop_back();
  return it;
}

/// Lets go of the spare nodes and of the vector's own storage.
template <typename Node>
void drop_spares(std::vector<Node>& spares) noexcept {
  std::vector<Node>().swap(spares);
}

}  // namespace diampool::detail
