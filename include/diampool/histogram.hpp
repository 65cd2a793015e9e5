// diampool: latency histograms with bounded relative error (HdrHistogram's log-linear layout).
//
// Values are unsigned integers in a unit the owner chooses (microseconds for the pool's
// per-address latencies, nanoseconds for the load generator). Each power of two is split into
// 2^SubBits equal buckets, so a value is known to within 1/2^SubBits of itself (12.5 % for 3
// bits, 3.1 % for 5), with at most (Groups + 1) * 2^SubBits counters. Values beyond the last
// bucket are counted in it (the exact maximum is kept apart). The counters of a power of two
// are allocated when a value first falls in it: latencies usually span a few powers of two,
// so a histogram holds a few hundred bytes rather than all its counters.
//
// record() is thread-safe and lock-free (relaxed atomic increments; the first value of a power
// of two allocates its counters and publishes them with a compare-and-swap);
// record_single_writer() is its cheaper form for a histogram one thread writes at a time.
// snapshot() copies the counters for quantiles, merging and export. No clock is read here.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace diampool {

/// A copy of a histogram's counters, with the layout needed to read them.
struct histogram_snapshot {
  unsigned sub_bits = 0;
  std::vector<std::uint64_t> buckets;  ///< count per bucket, in increasing value order
  std::uint64_t count = 0;
  std::uint64_t sum = 0;  ///< of the values recorded (saturating)
  std::uint64_t min = 0;  ///< exact; 0 when empty
  std::uint64_t max = 0;  ///< exact

  /// The smallest and largest value bucket `i` holds.
  std::uint64_t bucket_lower(std::size_t i) const noexcept;
  std::uint64_t bucket_upper(std::size_t i) const noexcept;

  /// The value at quantile q (0 <= q <= 1): the largest value of the bucket holding the
  /// ceil(q * count)-th smallest recorded value, but never above the exact maximum (nor below
  /// the exact minimum). 0 when empty.
  std::uint64_t quantile(double q) const noexcept;
  double mean() const noexcept {
    return count == 0 ? 0.0 : static_cast<double>(sum) / static_cast<double>(count);
  }

  /// Adds another snapshot of the same layout (sub_bits and size); an empty `*this` takes
  /// the other's layout.
  void merge(const histogram_snapshot& other);
};

template <unsigned SubBits, unsigned Groups>
class basic_histogram {
 public:
  static_assert(SubBits >= 1 && SubBits <= 8 && Groups >= 1 && SubBits + Groups <= 63);
  static constexpr std::size_t sub_buckets = std::size_t{1} << SubBits;
  static constexpr std::size_t size = (Groups + 1) * sub_buckets;

  basic_histogram() = default;
  ~basic_histogram() {
    for (auto& g : groups_)
      delete g.load(std::memory_order_relaxed);
  }
  basic_histogram(const basic_histogram&) = delete;
  basic_histogram& operator=(const basic_histogram&) = delete;

  /// The bucket of value v.
  static constexpr std::size_t index(std::uint64_t v) noexcept {
    if (v < sub_buckets) return static_cast<std::size_t>(v);
    const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;  // e >= SubBits
    const std::size_t group = e - SubBits + 1;
    const std::size_t sub = static_cast<std::size_t>(v >> (e - SubBits)) & (sub_buckets - 1);
    const std::size_t i = (group << SubBits) | sub;
    return i < size ? i : size - 1;
  }

  void record(std::uint64_t v) noexcept { add<true>(v); }

  /// record() for a histogram that one thread at a time records into (successive writers
  /// ordered by a happens-before, as on one strand or one thread): the same counters, written
  /// without atomic read-modify-writes (each costs a full barrier). snapshot() and count()
  /// may still run on other threads at any time.
  void record_single_writer(std::uint64_t v) noexcept { add<false>(v); }

  histogram_snapshot snapshot() const {
    histogram_snapshot s;
    s.sub_bits = SubBits;
    s.buckets.resize(size);
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      const group* g = groups_[gi].load(std::memory_order_acquire);
      if (g == nullptr) continue;
      for (std::size_t j = 0; j < sub_buckets; ++j) {
        const std::uint64_t n = (*g)[j].load(std::memory_order_relaxed);
        s.buckets[(gi << SubBits) | j] = n;
        s.count += n;  // consistent with the buckets, whatever count_ says now
      }
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    s.max = max_.load(std::memory_order_relaxed);
    const std::uint64_t mn = min_.load(std::memory_order_relaxed);
    s.min = s.count == 0 ? 0 : mn;
    return s;
  }

  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  template <bool Shared>
  static void bump(std::atomic<std::uint64_t>& a, std::uint64_t d) noexcept {
    if constexpr (Shared) {
      a.fetch_add(d, std::memory_order_relaxed);
    } else {
      a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    }
  }

  template <bool Shared>
  void add(std::uint64_t v) noexcept {
    const std::size_t i = index(v);
    std::atomic<group*>& slot = groups_[i >> SubBits];
    group* g = slot.load(std::memory_order_acquire);
    if (g == nullptr) {
      auto* fresh = new (std::nothrow) group{};
      if (fresh == nullptr) return;  // out of memory: the value goes unrecorded
      if constexpr (Shared) {
        if (slot.compare_exchange_strong(g, fresh, std::memory_order_acq_rel)) {
          g = fresh;
        } else {
          delete fresh;  // another thread was first; g is its group
        }
      } else {
        slot.store(fresh, std::memory_order_release);
        g = fresh;
      }
    }
    bump<Shared>((*g)[i & (sub_buckets - 1)], 1);
    bump<Shared>(count_, 1);
    constexpr std::uint64_t saturated = ~std::uint64_t{0};
    if constexpr (Shared) {
      const std::uint64_t before = sum_.fetch_add(v, std::memory_order_relaxed);
      if (before + v < before) sum_.store(saturated, std::memory_order_relaxed);
    } else {
      const std::uint64_t before = sum_.load(std::memory_order_relaxed);
      sum_.store(before + v < before ? saturated : before + v, std::memory_order_relaxed);
    }
    std::uint64_t m = max_.load(std::memory_order_relaxed);
    while (v > m && !max_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
    m = min_.load(std::memory_order_relaxed);
    while (v < m && !min_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
  }

  using group = std::array<std::atomic<std::uint64_t>, sub_buckets>;  // one power of two
  std::array<std::atomic<group*>, Groups + 1> groups_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> max_{0};
  std::atomic<std::uint64_t> min_{~std::uint64_t{0}};
};

/// The pool's per-address latency histogram: microseconds, within 12.5 %, up to 2^27 us
/// (134 s); 26 groups of 8 counters (64 bytes each, allocated as they are first used).
using latency_histogram = basic_histogram<3, 25>;

}  // namespace diampool
