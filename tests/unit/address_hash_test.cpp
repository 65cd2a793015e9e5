#include "diampool/detail/address_hash.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <unordered_set>
#include <vector>

namespace diampool::detail {
namespace {

TEST(address_hash, depends_on_the_text_only) {
  const address_hash h;
  const std::string a = "192.0.2.1:3868";
  const std::string b(a.begin(), a.end());  // another buffer
  EXPECT_EQ(h(a), h(b));
  EXPECT_EQ(h(std::string_view(a)), h(b));
  // Every length around the word size, and a change in any one byte, changes the hash.
  const std::string text = "aaa.example.net:3868-and-some-more-bytes";
  std::unordered_set<std::size_t> seen;
  for (std::size_t n = 0; n <= text.size(); ++n) {
    EXPECT_TRUE(seen.insert(h(std::string_view(text).substr(0, n))).second) << n;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string t = text;
    t[i] ^= 1;
    EXPECT_NE(h(t), h(text)) << i;
  }
}

// Addresses that differ in a digit or two, as a pool's do: no two share a hash, and they
// spread over a hash table's buckets (libstdc++ takes the hash modulo a prime).
TEST(address_hash, spreads_similar_addresses) {
  const address_hash h;
  std::unordered_set<std::size_t> hashes;
  constexpr std::size_t buckets = 1031;
  std::vector<int> load(buckets, 0);
  std::size_t count = 0;
  for (int x = 0; x < 64; ++x) {
    for (int y = 0; y < 256; ++y) {
      for (int port : {3868, 3869}) {
        const std::string a =
            "10.0." + std::to_string(x) + "." + std::to_string(y) + ":" + std::to_string(port);
        const std::size_t v = h(a);
        EXPECT_TRUE(hashes.insert(v).second) << a;
        ++load[v % buckets];
        ++count;
      }
    }
  }
  // 32,768 addresses over 1,031 buckets: about 32 each; a poor hash piles them up.
  const int most = *std::max_element(load.begin(), load.end());
  EXPECT_LT(most, 3 * static_cast<int>(count / buckets)) << most;
}

}  // namespace
}  // namespace diampool::detail
