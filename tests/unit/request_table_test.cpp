#include "diampool/detail/request_table.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace diampool::detail {
namespace {

struct entry {
  std::uint32_t hop_by_hop = 0;
  std::uint64_t request = 0;
  int payload = 0;
};

using table = request_table<entry>;

// As the peer machine does: ids counting up, skipping those whose slot is taken.
std::uint32_t next_free(const table& t, std::uint32_t& next) {
  for (;;) {
    const std::uint32_t id = next++;
    if (t.free_for(id)) return id;
  }
}

TEST(request_table, finds_by_either_id_and_forgets_erased_entries) {
  table t;
  EXPECT_EQ(t.find(1), nullptr);
  EXPECT_EQ(t.find_request(1), nullptr);
  EXPECT_TRUE(t.free_for(1));
  t.reserve_one();
  t.insert({5, 500, 1});
  t.reserve_one();
  t.insert({6, 600, 2});
  ASSERT_NE(t.find(5), nullptr);
  EXPECT_EQ(t.find(5)->payload, 1);
  ASSERT_NE(t.find_request(600), nullptr);
  EXPECT_EQ(t.find_request(600)->payload, 2);
  EXPECT_FALSE(t.free_for(5));
  // An id with the same slot is not the entry's.
  EXPECT_EQ(t.find(5 + static_cast<std::uint32_t>(t.capacity())), nullptr);
  EXPECT_FALSE(t.free_for(5 + static_cast<std::uint32_t>(t.capacity())));
  t.erase(*t.find(5));
  EXPECT_EQ(t.find(5), nullptr);
  EXPECT_EQ(t.find_request(500), nullptr);
  EXPECT_TRUE(t.free_for(5));
  EXPECT_EQ(t.size(), 1U);
  EXPECT_EQ(t.find_request(600)->hop_by_hop, 6U);
}

TEST(request_table, grows_past_half_full_and_says_the_entries_moved) {
  table t;
  std::uint32_t next = 1;
  EXPECT_FALSE(t.reserve_one());  // nothing held yet: nothing moved
  const std::size_t first = t.capacity();
  EXPECT_EQ(first, table::min_slots);
  bool moved = false;
  for (std::uint64_t r = 0; r < first / 2; ++r) {
    moved = moved || t.reserve_one();
    t.insert({next_free(t, next), r, 0});
  }
  EXPECT_FALSE(moved);
  EXPECT_EQ(t.capacity(), first);
  const entry* before = t.find_request(0);
  EXPECT_TRUE(t.reserve_one());
  EXPECT_EQ(t.capacity(), 2 * first);
  EXPECT_NE(t.find_request(0), before);
  for (std::uint64_t r = 0; r < first / 2; ++r) {
    ASSERT_NE(t.find_request(r), nullptr) << r;
    EXPECT_EQ(t.find(t.find_request(r)->hop_by_hop), t.find_request(r));
  }
  t.release();
  EXPECT_EQ(t.capacity(), 0U);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find_request(0), nullptr);
}

// Random inserts and erases (request ids from a small range, so that probe runs collide and
// wrap) against a std::map: every entry is found by both ids, erased ones by neither.
TEST(request_table, agrees_with_a_map_under_random_operations) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; ++round) {
    table t;
    std::map<std::uint64_t, entry> model;
    std::uint32_t next = static_cast<std::uint32_t>(rng());  // wraps past 0 in some rounds
    for (int op = 0; op < 4000; ++op) {
      const bool add = model.empty() || (rng() % 100) < (model.size() < 40 ? 60U : 40U);
      if (add) {
        std::uint64_t r;
        do {
          r = rng() % 256;
        } while (model.contains(r));
        t.reserve_one();
        const entry e{next_free(t, next), r, op};
        t.insert(e);
        model[r] = e;
      } else {
        auto it = model.begin();
        std::advance(it, static_cast<long>(rng() % model.size()));
        entry* e = t.find_request(it->first);
        ASSERT_NE(e, nullptr);
        t.erase(*e);
        model.erase(it);
      }
      ASSERT_EQ(t.size(), model.size());
      if (op % 50 == 0 || !add) {
        for (const auto& [r, e] : model) {
          const entry* by_request = t.find_request(r);
          ASSERT_NE(by_request, nullptr) << r;
          EXPECT_EQ(by_request->payload, e.payload);
          EXPECT_EQ(t.find(e.hop_by_hop), by_request);
        }
        for (std::uint64_t r = 0; r < 256; ++r) {
          if (!model.contains(r)) {
            ASSERT_EQ(t.find_request(r), nullptr) << r;
          }
        }
      }
    }
    std::size_t seen = 0;
    t.for_each([&](entry& e) {
      ++seen;
      EXPECT_TRUE(model.contains(e.request));
    });
    EXPECT_EQ(seen, model.size());
    t.clear();
    EXPECT_TRUE(t.empty());
    for (const auto& [r, e] : model) {
      EXPECT_EQ(t.find_request(r), nullptr);
      EXPECT_EQ(t.find(e.hop_by_hop), nullptr);
    }
  }
}

}  // namespace
}  // namespace diampool::detail
