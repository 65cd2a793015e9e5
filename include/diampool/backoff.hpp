// diampool: exponential backoff for re-establishing connections (sans-I/O).
//
// A retry_schedule remembers, for one remote address, how many establishments failed in a row
// and when the next attempt is allowed, so that no amount of sending to a dead address causes
// more dials than the schedule permits. Time is an input; no clock is read.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <system_error>

#include "diampool/detail/random.hpp"
#include "diampool/peer_machine.hpp"

namespace diampool {

/// Delays between attempts: initial, initial*multiplier, initial*multiplier^2, ... capped at
/// max, each drawn uniformly within +-jitter of its value (and never above max).
struct backoff_policy {
  std::chrono::nanoseconds initial = std::chrono::seconds(5);  ///< [ReconnectInterval]
  double multiplier = 1.5;                                     ///< [ReconnectBackoff]
  std::chrono::nanoseconds max = std::chrono::minutes(5);      ///< [MaxReconnectDelay]
  double jitter = 0.2;  ///< Fraction, 0 <= jitter < 1; spreads reconnections of many clients.

  /// invalid_config naming the first bad field (initial, multiplier, max, jitter).
  std::error_code validate(std::string* field = nullptr) const;

  /// The delay before retry number `failures` (1 = after the first failure), without jitter.
  std::chrono::nanoseconds nominal_delay(unsigned failures) const noexcept;
};

/// The retry state of one address.
class retry_schedule {
 public:
  retry_schedule(backoff_policy policy, std::uint64_t seed) : policy_(policy), rng_(seed) {}

  /// An establishment failed at `now`; returns when the next one may start.
  steady_time failed(steady_time now);
  /// An establishment succeeded: the next failure starts from the initial delay again.
  void succeeded() noexcept {
    failures_ = 0;
    next_ = steady_time{};
  }
  /// The peer asked not to be called again (DPR with DO_NOT_WANT_TO_TALK_TO_YOU): no attempt
  /// before now + policy.max. Returns that time.
  steady_time hold_back(steady_time now) noexcept;

  bool may_attempt(steady_time now) const noexcept { return now >= next_; }
  steady_time next_attempt() const noexcept { return next_; }
  unsigned failures() const noexcept { return failures_; }
  const backoff_policy& policy() const noexcept { return policy_; }

 private:
  backoff_policy policy_;
  detail::splitmix64 rng_;
  unsigned failures_ = 0;
  steady_time next_{};
};

}  // namespace diampool
