// histogram.hpp: bucket layout, bounded relative error, quantiles, merging, threads.
#include "diampool/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

namespace diampool {
namespace {

using small = basic_histogram<3, 25>;

TEST(histogram, buckets_are_exact_below_the_sub_bucket_count_then_log_linear) {
  for (std::uint64_t v = 0; v < 8; ++v)
    EXPECT_EQ(small::index(v), v);
  EXPECT_EQ(small::index(8), 8U);    // [8, 9]: group 1 has width 1
  EXPECT_EQ(small::index(15), 15U);  // last of group 1
  EXPECT_EQ(small::index(16), 16U);  // group 2: width 2
  EXPECT_EQ(small::index(17), 16U);
  EXPECT_EQ(small::index(18), 17U);
  EXPECT_EQ(small::index(~std::uint64_t{0}), small::size - 1);  // clamped
}

TEST(histogram, every_value_lies_within_its_bucket_and_within_the_relative_error) {
  small h;
  const histogram_snapshot s = h.snapshot();
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 40 + 24);  // spread over many magnitudes
    const std::size_t b = small::index(v);
    if (b == small::size - 1 && v > s.bucket_upper(b)) continue;  // beyond the range
    ASSERT_LE(s.bucket_lower(b), v) << v;
    ASSERT_GE(s.bucket_upper(b), v) << v;
    ASSERT_LE(static_cast<double>(s.bucket_upper(b) - s.bucket_lower(b)),
              static_cast<double>(v) / 8.0 + 1)
        << v;
  }
}

TEST(histogram, quantiles_of_a_known_distribution) {
  basic_histogram<5, 30> h;  // 3 % buckets
  for (std::uint64_t v = 1; v <= 10000; ++v)
    h.record(v);
  const histogram_snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 10000U);
  EXPECT_EQ(s.min, 1U);
  EXPECT_EQ(s.max, 10000U);
  EXPECT_EQ(s.sum, 10000U * 10001U / 2);
  EXPECT_DOUBLE_EQ(s.mean(), 5000.5);
  auto near = [](std::uint64_t got, double want) {
    return std::abs(static_cast<double>(got) - want) <= want / 32.0 + 1;
  };
  EXPECT_TRUE(near(s.quantile(0.5), 5000)) << s.quantile(0.5);
  EXPECT_TRUE(near(s.quantile(0.9), 9000)) << s.quantile(0.9);
  EXPECT_TRUE(near(s.quantile(0.99), 9900)) << s.quantile(0.99);
  EXPECT_EQ(s.quantile(1.0), 10000U);  // the exact maximum, not the bucket's top
  EXPECT_EQ(s.quantile(0.0), 1U);
  EXPECT_GE(s.quantile(0.999), s.quantile(0.99));
}

TEST(histogram, an_empty_histogram_says_zero) {
  const histogram_snapshot s = small().snapshot();
  EXPECT_EQ(s.count, 0U);
  EXPECT_EQ(s.min, 0U);
  EXPECT_EQ(s.quantile(0.5), 0U);
  EXPECT_EQ(s.mean(), 0.0);
}

TEST(histogram, snapshots_merge) {
  small a;
  small b;
  for (int i = 0; i < 100; ++i)
    a.record(10);
  for (int i = 0; i < 100; ++i)
    b.record(1000);
  histogram_snapshot m;
  m.merge(a.snapshot());
  m.merge(b.snapshot());
  EXPECT_EQ(m.count, 200U);
  EXPECT_EQ(m.min, 10U);
  EXPECT_EQ(m.max, 1000U);
  EXPECT_LE(m.quantile(0.5), 11U);
  EXPECT_GE(m.quantile(0.51), 896U);  // within 12.5 % below 1000
}

// The single-writer form keeps the same counters as record(), sum saturation included.
TEST(histogram, single_writer_records_match_shared_ones) {
  basic_histogram<5, 30> shared;
  basic_histogram<5, 30> single;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 50000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 50 + 14);
    shared.record(v);
    single.record_single_writer(v);
  }
  const histogram_snapshot a = shared.snapshot();
  const histogram_snapshot b = single.snapshot();
  EXPECT_EQ(a.buckets, b.buckets);
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.sum, b.sum);
  EXPECT_EQ(a.min, b.min);
  EXPECT_EQ(a.max, b.max);
  EXPECT_EQ(single.count(), 50000U);
  small big;
  big.record_single_writer(~std::uint64_t{0} - 1);
  big.record_single_writer(5);
  EXPECT_EQ(big.snapshot().sum, ~std::uint64_t{0});  // saturated, not wrapped
}

// One thread records with record_single_writer() while another takes snapshots: every
// snapshot is consistent (count = the buckets' sum) and never goes back.
TEST(histogram, a_single_writer_can_be_read_while_it_records) {
  small h;
  constexpr std::uint64_t n = 200000;
  std::thread writer([&h] {
    for (std::uint64_t i = 0; i < n; ++i)
      h.record_single_writer(i % 1000);
  });
  std::uint64_t last = 0;
  while (last < n) {
    const histogram_snapshot s = h.snapshot();
    ASSERT_GE(s.count, last);
    last = s.count;
    if (h.count() == n && s.count == n) break;
  }
  writer.join();
  const histogram_snapshot s = h.snapshot();
  EXPECT_EQ(s.count, n);
  EXPECT_EQ(s.max, 999U);
  EXPECT_EQ(s.min, 0U);
}

TEST(histogram, concurrent_records_are_all_counted) {
  small h;
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i)
        h.record(static_cast<std::uint64_t>(t * 100 + i % 50));
    });
  }
  for (auto& t : ts)
    t.join();
  const histogram_snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 80000U);
  EXPECT_EQ(h.count(), 80000U);
  EXPECT_EQ(s.min, 0U);
  EXPECT_EQ(s.max, 749U);
}

TEST(histogram, threads_racing_into_untouched_powers_of_two_lose_no_value) {
  // Every thread's first value of a power of two finds its counters missing: they race to
  // allocate and publish them, and every increment must land in the published ones.
  for (int round = 0; round < 20; ++round) {
    small h;
    constexpr int threads = 4;
    constexpr int per_thread = 2000;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&h, t] {
        for (int i = 0; i < per_thread; ++i)
          h.record(std::uint64_t{1} << ((i + t) % 26));  // one value per power of two, in turn
      });
    }
    for (auto& t : ts)
      t.join();
    const histogram_snapshot s = h.snapshot();
    ASSERT_EQ(s.count, std::uint64_t{threads} * per_thread);
    std::uint64_t in_buckets = 0;
    for (std::uint64_t b : s.buckets)
      in_buckets += b;
    ASSERT_EQ(in_buckets, s.count);
    for (unsigned k = 0; k < 26; ++k) {  // each power of two got exactly its values
      std::uint64_t expected = 0;
      for (int t = 0; t < threads; ++t) {
        for (int i = 0; i < per_thread; ++i)
          expected += static_cast<unsigned>((i + t) % 26) == k ? 1 : 0;
      }
      ASSERT_EQ(s.buckets[small::index(std::uint64_t{1} << k)], expected) << "2^" << k;
    }
  }
}

}  // namespace
}  // namespace diampool
