#include "diampool/backoff.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <set>

#include "diampool/error.hpp"

namespace diampool {
namespace {

using namespace std::chrono_literals;

const steady_time t0{std::chrono::hours(10)};

TEST(backoff_policy, nominal_delays_grow_by_the_multiplier_up_to_the_cap) {
  const backoff_policy p{5s, 1.5, 5min, 0.0};
  EXPECT_EQ(p.nominal_delay(1), 5s);
  EXPECT_EQ(p.nominal_delay(2), 7500ms);
  EXPECT_EQ(p.nominal_delay(3), 11250ms);
  // 5 s * 1.5^10 = 288.3 s is the last step under the cap; 5 s * 1.5^11 = 432 s is over it.
  EXPECT_GT(p.nominal_delay(11), 288s);
  EXPECT_LT(p.nominal_delay(11), 5min);
  EXPECT_EQ(p.nominal_delay(12), 5min);
  EXPECT_EQ(p.nominal_delay(100000), 5min);
  const backoff_policy doubling{1s, 2.0, 1h, 0.0};
  EXPECT_EQ(doubling.nominal_delay(4), 8s);
}

TEST(retry_schedule, without_jitter_follows_the_nominal_delays) {
  retry_schedule s({5s, 2.0, 30s, 0.0}, 1);
  EXPECT_TRUE(s.may_attempt(t0));
  EXPECT_EQ(s.failed(t0), t0 + 5s);
  EXPECT_FALSE(s.may_attempt(t0 + 5s - 1ns));
  EXPECT_TRUE(s.may_attempt(t0 + 5s));
  EXPECT_EQ(s.failed(t0 + 5s), t0 + 15s);
  EXPECT_EQ(s.failed(t0 + 15s), t0 + 35s);
  EXPECT_EQ(s.failed(t0 + 35s), t0 + 65s);  // capped at 30 s
  EXPECT_EQ(s.failures(), 4U);
  s.succeeded();
  EXPECT_EQ(s.failures(), 0U);
  EXPECT_TRUE(s.may_attempt(t0 + 65s));
  EXPECT_EQ(s.failed(t0 + 100s), t0 + 105s);  // back to the initial delay
}

TEST(retry_schedule, jitter_stays_within_bounds_and_varies) {
  std::set<std::int64_t> seen;
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    retry_schedule s({10s, 2.0, 25s, 0.2}, seed);
    const auto first = s.failed(t0) - t0;
    EXPECT_GE(first, 8s);
    EXPECT_LE(first, 12s);
    seen.insert(first.count());
    const auto second = s.failed(t0) - t0;  // nominal 20 s
    EXPECT_GE(second, 16s);
    EXPECT_LE(second, 24s);
    const auto third = s.failed(t0) - t0;  // nominal 40 s, capped at 25 s even with jitter
    EXPECT_GE(third, 25s * 0.8);
    EXPECT_LE(third, 25s);
  }
  EXPECT_GT(seen.size(), 40U);
}

TEST(retry_schedule, hold_back_waits_for_the_cap) {
  retry_schedule s({5s, 2.0, 2min, 0.0}, 1);
  EXPECT_EQ(s.hold_back(t0), t0 + 2min);
  EXPECT_FALSE(s.may_attempt(t0 + 2min - 1ns));
  EXPECT_TRUE(s.may_attempt(t0 + 2min));
  // A later failure cannot shorten a hold-back already in force.
  s.failed(t0);
  EXPECT_EQ(s.hold_back(t0), t0 + 2min);
}

TEST(backoff_policy, validate_names_the_bad_field) {
  const std::pair<std::function<void(backoff_policy&)>, const char*> cases[] = {
      {[](backoff_policy& p) { p.initial = 0s; }, "initial"},
      {[](backoff_policy& p) { p.multiplier = 0.5; }, "multiplier"},
      {[](backoff_policy& p) { p.multiplier = std::nan(""); }, "multiplier"},
      {[](backoff_policy& p) { p.max = 1s; }, "max"},
      {[](backoff_policy& p) { p.jitter = 1.0; }, "jitter"},
      {[](backoff_policy& p) { p.jitter = -0.1; }, "jitter"},
  };
  std::string field;
  EXPECT_FALSE(backoff_policy{}.validate(&field));
  for (const auto& [mutate, name] : cases) {
    backoff_policy p;
    mutate(p);
    EXPECT_EQ(p.validate(&field), error::invalid_config) << name;
    EXPECT_EQ(field, name);
  }
}

}  // namespace
}  // namespace diampool
