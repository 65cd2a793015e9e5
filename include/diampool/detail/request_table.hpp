// diampool: the requests in flight on one connection, found by Hop-by-Hop id and by the
// caller's request id, in two flat arrays.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace diampool::detail {

/// Pending requests of one peer machine. Entry has `std::uint32_t hop_by_hop` and
/// `std::uint64_t request`, both unique among the entries held.
///
/// By Hop-by-Hop id: a slot array of a power-of-two size, the slot of an id being its low bits.
/// The machine picks the ids (counting up, RFC 6733 3) and takes only ids whose slot is free
/// (free_for()), so a lookup is one index and no two entries ever compete for a slot. By
/// request id: an open-addressing index (linear probing, backward-shift deletion) of slot
/// numbers, at most a quarter full.
///
/// Nothing is allocated while the entries held fit (the slots are at most half used); growing
/// moves the entries (reserve_one() says so, for whoever keeps pointers to them). release()
/// lets the memory go. Compared with two std::unordered_map: no node per request, no hashing
/// of the Hop-by-Hop id, and an end that does not search a bucket for the node before.
template <typename Entry>
class request_table {
 public:
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// Slots, for tests and memory accounting.
  std::size_t capacity() const noexcept { return slots_.size(); }

  /// True if an entry with this Hop-by-Hop id could be inserted without displacing another:
  /// its slot is free. Always true before the first reserve_one().
  bool free_for(std::uint32_t hop_by_hop) const noexcept {
    return slots_.empty() || !slots_[hop_by_hop & mask()].used;
  }

  /// Makes room for one more entry, growing when the slots would be more than half used.
  /// Returns true if the entries moved. Throws std::bad_alloc with nothing changed.
  bool reserve_one() {
    if ((size_ + 1) * 2 <= slots_.size()) return false;
    rebuild(slots_.empty() ? min_slots : slots_.size() * 2);
    return size_ != 0;
  }

  /// The entry with this Hop-by-Hop id, or null.
  Entry* find(std::uint32_t hop_by_hop) noexcept {
    if (slots_.empty()) return nullptr;
    slot& s = slots_[hop_by_hop & mask()];
    return s.used && s.entry.hop_by_hop == hop_by_hop ? &s.entry : nullptr;
  }

  /// The entry with this request id, or null.
  Entry* find_request(std::uint64_t request) noexcept {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = home(request);; i = (i + 1) & index_mask()) {
      const std::uint32_t v = index_[i];
      if (v == 0) return nullptr;
      if (slots_[v - 1].entry.request == request) return &slots_[v - 1].entry;
    }
  }

  /// Inserts `e`. Preconditions: reserve_one() since the last insert, free_for(e.hop_by_hop),
  /// no entry with e.request.
  Entry& insert(const Entry& e) noexcept {
    const std::size_t at = e.hop_by_hop & mask();
    slots_[at].entry = e;
    slots_[at].used = true;
    place(static_cast<std::uint32_t>(at + 1), e.request);
    ++size_;
    return slots_[at].entry;
  }

  /// Removes `e`, an entry of this table.
  void erase(Entry& e) noexcept {
    const std::uint32_t v = static_cast<std::uint32_t>((e.hop_by_hop & mask()) + 1);
    std::size_t i = home(e.request);
    while (index_[i] != v)
      i = (i + 1) & index_mask();
    // Backward shift: pull later entries of the probe run into the hole when their home
    // position does not lie cyclically in (hole, their position].
    for (std::size_t j = (i + 1) & index_mask(); index_[j] != 0; j = (j + 1) & index_mask()) {
      const std::size_t k = home(slots_[index_[j] - 1].entry.request);
      const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) {
        index_[i] = index_[j];
        i = j;
      }
    }
    index_[i] = 0;
    slots_[v - 1].used = false;
    --size_;
  }

  /// Calls f(Entry&) for every entry, in slot order.
  template <typename F>
  void for_each(F&& f) {
    for (slot& s : slots_) {
      if (s.used) f(s.entry);
    }
  }

  /// Removes every entry, keeping the memory.
  void clear() noexcept {
    for (slot& s : slots_)
      s.used = false;
    std::fill(index_.begin(), index_.end(), 0);
    size_ = 0;
  }

  /// Removes every entry and lets the memory go.
  void release() noexcept {
    std::vector<slot>().swap(slots_);
    std::vector<std::uint32_t>().swap(index_);
    size_ = 0;
  }

  static constexpr std::size_t min_slots = 16;

 private:
  struct slot {
    Entry entry{};
    bool used = false;
  };

  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::size_t index_mask() const noexcept { return index_.size() - 1; }

  // Fibonacci hashing: request ids are usually consecutive numbers, which this spreads.
  std::size_t home(std::uint64_t request) const noexcept {
    return static_cast<std::size_t>((request * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  void place(std::uint32_t v, std::uint64_t request) noexcept {
    std::size_t i = home(request);
    while (index_[i] != 0)
      i = (i + 1) & index_mask();
    index_[i] = v;
  }

  // New arrays of `slots` slots (a power of two) and twice as many index positions; every
  // entry goes to the slot of its Hop-by-Hop id under the new mask, all distinct since their
  // low bits under the old, narrower mask were.
  void rebuild(std::size_t slots) {
    std::vector<slot> s(slots);
    std::vector<std::uint32_t> index(slots * 2, 0);
    std::swap(s, slots_);
    std::swap(index, index_);
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(index_.size()));
    for (slot& old : s) {
      if (!old.used) continue;
      const std::size_t at = old.entry.hop_by_hop & mask();
      slots_[at] = old;
      place(static_cast<std::uint32_t>(at + 1), old.entry.request);
    }
  }

  std::vector<slot> slots_;
  std::vector<std::uint32_t> index_;  // slot number + 1, 0 for empty
  unsigned shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace diampool::detail
