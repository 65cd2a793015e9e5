#include "diampool/detail/deadline_heap.hpp"

#include <gtest/gtest.h>

#include <list>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace diampool::detail {
namespace {

using namespace std::chrono_literals;
using time_point = std::chrono::steady_clock::time_point;

struct entry {
  std::uint32_t id = 0;
  std::size_t heap_pos = 0;
};

using heap = deadline_heap<entry>;

std::vector<std::uint32_t> drain(heap& h) {
  std::vector<std::uint32_t> ids;
  h.drain_in_order([&](const heap::item& it) { ids.push_back(it.entry->id); });
  return ids;
}

TEST(deadline_heap, the_earliest_first_and_equal_deadlines_in_insertion_order) {
  const time_point t0{1h};
  std::vector<entry> e(6);
  for (std::uint32_t i = 0; i < 6; ++i)
    e[i].id = i + 1;
  heap h;
  h.push(t0 + 3s, &e[0]);
  h.push(t0 + 1s, &e[1]);
  h.push(t0 + 3s, &e[2]);
  h.push(t0 + 1s, &e[3]);
  h.push(t0 + 2s, &e[4]);
  h.push(t0 + 1s, &e[5]);
  std::vector<std::uint32_t> popped;
  while (!h.empty()) {
    popped.push_back(h.top().entry->id);
    h.pop();
  }
  EXPECT_EQ(popped, (std::vector<std::uint32_t>{2, 4, 6, 5, 1, 3}));
}

TEST(deadline_heap, any_entry_leaves_by_its_position) {
  const time_point t0{1h};
  std::vector<entry> e(5);
  heap h;
  for (std::uint32_t i = 0; i < 5; ++i) {
    e[i].id = i;
    h.push(t0 + std::chrono::seconds(i), &e[i]);
  }
  h.remove(e[2].heap_pos);
  h.remove(e[0].heap_pos);  // the top
  h.remove(e[4].heap_pos);  // the last
  EXPECT_EQ(h.size(), 2U);
  EXPECT_EQ(drain(h), (std::vector<std::uint32_t>{1, 3}));
  EXPECT_TRUE(h.empty());
}

// Random pushes, pops and removals against a std::multimap ordered the same way: the heap always
// agrees on the earliest deadline, every entry's heap_pos points at its own item, and a drain
// gives the multimap's order.
TEST(deadline_heap, agrees_with_a_multimap_under_random_operations) {
  std::mt19937_64 rng(12345);
  const time_point t0{1h};
  std::list<entry> storage;  // stable addresses
  std::map<std::uint32_t, entry*> live;
  std::multimap<std::pair<time_point, std::uint64_t>, std::uint32_t> model;
  std::map<std::uint32_t, std::pair<time_point, std::uint64_t>> key_of;
  heap h;
  std::uint64_t seq = 0;
  std::uint32_t next_key = 0;
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5 || live.empty()) {
      const time_point when = t0 + std::chrono::milliseconds(rng() % 50);  // many equal
      const std::uint32_t k = next_key++;
      entry& e = storage.emplace_back(entry{.id = k});
      h.push(when, &e);
      live[k] = &e;
      model.emplace(std::make_pair(when, seq), k);
      key_of[k] = {when, seq};
      ++seq;
    } else if (op < 7) {
      const std::uint32_t k = h.top().entry->id;
      ASSERT_EQ(k, model.begin()->second);
      h.pop();
      model.erase(model.begin());
      key_of.erase(k);
      live.erase(k);
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      const std::uint32_t k = it->first;
      h.remove(it->second->heap_pos);
      model.erase(model.find(key_of[k]));
      key_of.erase(k);
      live.erase(it);
    }
    ASSERT_EQ(h.size(), model.size());
    if (!model.empty()) {
      ASSERT_EQ(h.top().entry->id, model.begin()->second);
      ASSERT_EQ(h.top().when, model.begin()->first.first);
    }
  }
  std::vector<std::uint32_t> expected;
  for (const auto& [when_seq, k] : model)
    expected.push_back(k);
  EXPECT_EQ(drain(h), expected);
}

}  // namespace
}  // namespace diampool::detail
