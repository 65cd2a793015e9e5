#include "diampool/detail/random.hpp"

#include <atomic>
#include <random>

namespace diampool::detail {

std::uint64_t fresh_seed() noexcept {
  static std::atomic<std::uint64_t> next = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
  }();
  // Consecutive values of the sequence, scrambled: no two calls share a seed.
  return splitmix64(next.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed))();
}

}  // namespace diampool::detail
