// diampool: the pending requests' deadlines of a peer machine, as an indexed binary heap.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace diampool::detail {

/// A min-heap of deadlines in one vector: the earliest is top(), equal deadlines come out in
/// the order they went in. Each entry knows its position (Entry::heap_pos, kept up to date
/// here), so any entry leaves in O(log n). Nothing is allocated once the vector has grown to
/// the most entries held at once; release() gives that memory back.
///
/// Compared with a std::multimap: no node per request, and the entries touched when one
/// leaves are in one array rather than scattered over the tree.
template <typename Entry>
class deadline_heap {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  struct item {
    time_point when;
    std::uint64_t seq;  // insertion order, for equal deadlines
    Entry* entry;
  };

  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }
  const item& top() const noexcept { return items_.front(); }

  void push(time_point when, Entry* entry) {
    const item it{when, next_seq_++, entry};
    items_.push_back(it);
    sift_up(items_.size() - 1, it);  // sets entry->heap_pos
  }

  /// Removes the entry at `pos` (an Entry's heap_pos).
  void remove(std::size_t pos) noexcept {
    const std::size_t last = items_.size() - 1;
    if (pos != last) {
      items_[pos] = items_[last];
      items_[pos].entry->heap_pos = pos;
      items_.pop_back();
      if (pos > 0 && less(items_[pos], items_[(pos - 1) / 2])) {
        sift_up(pos, items_[pos]);
      } else {
        sift_down(pos);
      }
    } else {
      items_.pop_back();
    }
  }

  void pop() noexcept { remove(0); }

  /// The entry of the item at `pos` has moved to `entry` (its owner's storage grew).
  void repoint(std::size_t pos, Entry* entry) noexcept { items_[pos].entry = entry; }

  /// Calls f(item) for every item, from the earliest deadline to the latest, and empties the
  /// heap (sorted in place: nothing allocated).
  template <typename F>
  void drain_in_order(F&& f) {
    std::sort(items_.begin(), items_.end(), less);
    for (const item& it : items_)
      f(it);
    items_.clear();
  }

  void clear() noexcept { items_.clear(); }

  /// Empties the heap and lets go of its memory.
  void release() noexcept { std::vector<item>().swap(items_); }

 private:
  static bool less(const item& a, const item& b) noexcept {
    return a.when != b.when ? a.when < b.when : a.seq < b.seq;
  }

  void place(std::size_t pos, const item& it) noexcept {
    items_[pos] = it;
    it.entry->heap_pos = pos;
  }

  // `moving` is items_[pos], passed rather than read back: push() has just written it field
  // by field, and a wide load of those stores stalls on store forwarding.
  void sift_up(std::size_t pos, const item moving) noexcept {
    while (pos > 0) {
      const std::size_t parent = (pos - 1) / 2;
      if (!less(moving, items_[parent])) break;
      place(pos, items_[parent]);
      pos = parent;
    }
    place(pos, moving);
  }

  void sift_down(std::size_t pos) noexcept {
    const item moving = items_[pos];
    const std::size_t n = items_.size();
    for (;;) {
      std::size_t child = 2 * pos + 1;
      if (child >= n) break;
      if (child + 1 < n && less(items_[child + 1], items_[child])) ++child;
      if (!less(items_[child], moving)) break;
      place(pos, items_[child]);
      pos = child;
    }
    place(pos, moving);
  }

  std::vector<item> items_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace diampool::detail
