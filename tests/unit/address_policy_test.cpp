// The timing decisions of an address (address_policy.hpp), with made-up times.
#include "diampool/address_policy.hpp"

#include <gtest/gtest.h>

namespace diampool {
namespace {

using namespace std::chrono_literals;

const steady_time t0 = steady_time{} + 1000s;

address_timing timing(std::chrono::nanoseconds idle = 0s, std::chrono::nanoseconds life = 0s,
                      bool reconnect = true) {
  return {idle, life, reconnect};
}

address_snapshot open_since(steady_time opened, steady_time active) {
  address_snapshot a;
  a.phase = address_phase::open;
  a.ever_open = true;
  a.opened_at = opened;
  a.last_activity = active;
  return a;
}

address_snapshot down_until(steady_time next, bool ever_open = true) {
  address_snapshot a;
  a.phase = address_phase::down;
  a.ever_open = ever_open;
  a.next_attempt = next;
  a.last_activity = t0;
  return a;
}

// ---- admission of a request ----

TEST(address_policy, a_new_or_idle_address_is_established_by_the_first_request) {
  EXPECT_EQ(admit(address_snapshot{}, t0, t0 + 1s), admission::establish);
}

TEST(address_policy, an_idle_address_waits_for_its_closing_connection_before_dialling) {
  address_snapshot a;
  a.draining = 1;  // e.g. closed for idleness, its DPR/DPA under way
  EXPECT_EQ(admit(a, t0, t0 + 1s), admission::wait);
  a.draining = 0;
  EXPECT_EQ(admit(a, t0, t0 + 1s), admission::establish);
}

TEST(address_policy, requests_wait_for_an_establishment_under_way) {
  address_snapshot a;
  a.phase = address_phase::establishing;
  EXPECT_EQ(admit(a, t0, t0 + 1ms), admission::wait);
  a.phase = address_phase::open;  // open, but its connection just stopped being ready
  EXPECT_EQ(admit(a, t0, t0 + 1ms), admission::wait);
}

TEST(address_policy, a_down_address_waits_within_the_deadline_or_fails_fast) {
  const address_snapshot a = down_until(t0 + 200ms);
  EXPECT_EQ(admit(a, t0, t0 + 1s), admission::wait);                  // the attempt comes in time
  EXPECT_EQ(admit(a, t0, t0 + 200ms), admission::wait);               // exactly at the deadline
  EXPECT_EQ(admit(a, t0, t0 + 199ms), admission::fail_fast);          // it cannot
  EXPECT_EQ(admit(a, t0 + 200ms, t0 + 201ms), admission::establish);  // the delay is over
  EXPECT_TRUE(can_wait(a, t0 + 200ms));
  EXPECT_FALSE(can_wait(a, t0 + 199ms));
}

TEST(address_policy, a_closing_client_refuses) {
  address_snapshot a;
  a.phase = address_phase::closed;
  EXPECT_EQ(admit(a, t0, t0 + 1s), admission::refuse);
  EXPECT_EQ(next_due(timing(1s, 1s), a), steady_time::max());
}

// ---- reconnection ----

TEST(address_policy, a_lost_connection_is_reconnected_at_the_next_attempt_when_enabled) {
  const address_snapshot a = down_until(t0 + 5s);
  EXPECT_TRUE(wants_reconnect(timing(), a));
  EXPECT_EQ(due(timing(), a, t0 + 4999ms), address_action::none);
  EXPECT_EQ(due(timing(), a, t0 + 5s), address_action::reconnect);
  EXPECT_EQ(next_due(timing(), a), t0 + 5s);
}

TEST(address_policy, without_reconnect_only_queued_requests_bring_an_address_back) {
  address_snapshot a = down_until(t0 + 5s);
  const address_timing off = timing(0s, 0s, false);
  EXPECT_FALSE(wants_reconnect(off, a));
  EXPECT_EQ(due(off, a, t0 + 10s), address_action::none);
  EXPECT_EQ(next_due(off, a), steady_time::max());
  a.waiters = 1;
  a.earliest_waiter_deadline = t0 + 6s;
  EXPECT_TRUE(wants_reconnect(off, a));
  EXPECT_EQ(due(off, a, t0 + 5s), address_action::reconnect);
  EXPECT_EQ(next_due(off, a), t0 + 5s);
}

TEST(address_policy, an_address_never_open_is_not_redialled_in_the_background) {
  const address_snapshot a = down_until(t0 + 1s, /*ever_open=*/false);
  EXPECT_FALSE(wants_reconnect(timing(), a));
  EXPECT_EQ(due(timing(), a, t0 + 2s), address_action::none);
}

// ---- idle timeout ----

TEST(address_policy, an_idle_connection_is_closed_after_the_idle_timeout) {
  const address_snapshot a = open_since(t0, t0 + 1s);
  const address_timing t = timing(30s);
  EXPECT_EQ(next_due(t, a), t0 + 31s);
  EXPECT_EQ(due(t, a, t0 + 30s), address_action::none);
  EXPECT_EQ(due(t, a, t0 + 31s), address_action::close_idle);
  EXPECT_EQ(due(timing(), a, t0 + 100h), address_action::none);  // 0: never
}

TEST(address_policy, requests_awaiting_answers_or_queued_are_activity) {
  address_snapshot a = open_since(t0, t0);
  a.requests_pending = true;
  EXPECT_EQ(due(timing(1s), a, t0 + 2s), address_action::keep_alive);
  a.requests_pending = false;
  a.waiters = 1;
  a.earliest_waiter_deadline = t0 + 5s;
  EXPECT_EQ(due(timing(1s), a, t0 + 2s), address_action::none);
  EXPECT_EQ(next_due(timing(1s), a), t0 + 5s);  // the idle deadline is not armed meanwhile
}

TEST(address_policy, a_down_address_unused_for_the_idle_timeout_stops_reconnecting) {
  address_snapshot a = down_until(t0 + 10s);
  a.last_activity = t0;
  EXPECT_EQ(next_due(timing(2s), a), t0 + 2s);
  EXPECT_EQ(due(timing(2s), a, t0 + 2s), address_action::stop_reconnecting);
}

// ---- max lifetime ----

TEST(address_policy, a_connection_is_replaced_at_its_max_lifetime_once) {
  address_snapshot a = open_since(t0, t0 + 50s);
  const address_timing t = timing(0s, 60s);
  EXPECT_EQ(next_due(t, a), t0 + 60s);
  EXPECT_EQ(due(t, a, t0 + 59s), address_action::none);
  EXPECT_EQ(due(t, a, t0 + 60s), address_action::replace);
  a.replacing = true;  // under way: not twice
  EXPECT_EQ(due(t, a, t0 + 61s), address_action::none);
  EXPECT_EQ(next_due(t, a), steady_time::max());
}

TEST(address_policy, a_failed_replacement_is_retried_after_its_delay) {
  address_snapshot a = open_since(t0, t0);
  a.replace_not_before = t0 + 65s;
  const address_timing t = timing(0s, 60s);
  EXPECT_EQ(due(t, a, t0 + 61s), address_action::none);
  EXPECT_EQ(next_due(t, a), t0 + 65s);
  EXPECT_EQ(due(t, a, t0 + 65s), address_action::replace);
}

TEST(address_policy, idleness_comes_before_replacement) {
  const address_snapshot a = open_since(t0, t0);
  EXPECT_EQ(due(timing(10s, 10s), a, t0 + 10s), address_action::close_idle);
}

TEST(address_policy, the_earliest_of_all_deadlines_is_next) {
  address_snapshot a = open_since(t0, t0);
  a.waiters = 1;
  a.earliest_waiter_deadline = t0 + 3s;
  EXPECT_EQ(next_due(timing(10s, 20s), a), t0 + 3s);
}

// ---- forgetting ----

TEST(address_policy, only_addresses_with_nothing_to_remember_are_forgotten) {
  address_snapshot idle;
  EXPECT_TRUE(forgettable(timing(), idle, t0));
  idle.draining = 1;  // a connection still closing
  EXPECT_FALSE(forgettable(timing(), idle, t0));

  address_snapshot down = down_until(t0 + 5s, /*ever_open=*/false);
  EXPECT_FALSE(forgettable(timing(), down, t0 + 4s));  // its backoff still matters
  EXPECT_TRUE(forgettable(timing(), down, t0 + 5s));
  down.ever_open = true;  // reconnecting in the background
  EXPECT_FALSE(forgettable(timing(), down, t0 + 5s));
  EXPECT_FALSE(forgettable(timing(), open_since(t0, t0), t0 + 1h));
}

}  // namespace
}  // namespace diampool
