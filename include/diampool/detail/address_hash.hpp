// diampool: the hash of the address map, looked up once per request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace diampool::detail {

/// Hashes "host:port" strings for the client's address map: eight bytes at a time, each word
/// folded in by a 64x64->128-bit multiply (the mixing step of wyhash), the last word loaded
/// overlapping the one before rather than byte by byte. std::hash (libstdc++'s
/// _Hash_bytes) costs about a hundred instructions on a 15-byte address, this about twenty.
/// Not meant to resist chosen keys: the addresses are the application's own.
struct address_hash {
  using is_transparent = void;

  std::size_t operator()(std::string_view s) const noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t n = s.size();
    std::uint64_t h = seed ^ n;
    if (n < 8) {
      std::uint64_t w = 0;
      for (std::size_t i = 0; i < n; ++i)
        w |= std::uint64_t{p[i]} << (8 * i);
      return static_cast<std::size_t>(mix(h ^ w, k1));
    }
    while (n > 8) {
      h = mix(h ^ load(p), k1);
      p += 8;
      n -= 8;
    }
    return static_cast<std::size_t>(mix(h ^ load(p + n - 8), k2));  // overlaps when n < 8
  }

 private:
  static constexpr std::uint64_t seed = 0xa0761d6478bd642fULL;
  static constexpr std::uint64_t k1 = 0xe7037ed1a0b428dbULL;
  static constexpr std::uint64_t k2 = 0x8ebc6af09c88c6e3ULL;

  static std::uint64_t load(const unsigned char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  static std::uint64_t mix(std::uint64_t a, std::uint64_t b) noexcept {
    __extension__ using u128 = unsigned __int128;  // GCC and Clang on 64-bit targets
    const u128 m = static_cast<u128>(a) * b;
    return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64U);
  }
};

}  // namespace diampool::detail
