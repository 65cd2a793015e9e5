// diampool: the small random generator behind identifier starts and jitter.
#pragma once

#include <cstdint>

namespace diampool::detail {

/// SplitMix64 (Steele, Lea and Flood, 2014): 8 bytes of state and a few instructions per draw,
/// a UniformRandomBitGenerator good enough for Hop-by-Hop starts, End-to-End low bits and
/// timer jitter. (std::mt19937_64 keeps 2.5 KiB of state: most of what an idle connection
/// would otherwise hold.)
class splitmix64 {
 public:
  using result_type = std::uint64_t;
  explicit splitmix64(std::uint64_t seed) noexcept : state_(seed) {}
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return ~result_type{0}; }
  result_type operator()() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

/// A seed for a new connection, pool or address: distinct on every call, from a process-wide
/// sequence seeded once by std::random_device (which costs microseconds per use on some
/// virtual machines). Thread-safe.
std::uint64_t fresh_seed() noexcept;

}  // namespace diampool::detail
