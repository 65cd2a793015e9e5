#include "diampool/backoff.hpp"

#include <algorithm>
#include <cmath>

#include "diampool/error.hpp"

namespace diampool {

std::error_code backoff_policy::validate(std::string* field) const {
  auto bad = [&](const char* name) {
    if (field != nullptr) *field = name;
    return std::error_code(error::invalid_config);
  };
  if (initial <= std::chrono::nanoseconds::zero()) return bad("initial");
  if (!(multiplier >= 1.0) || !std::isfinite(multiplier)) return bad("multiplier");
  if (max < initial) return bad("max");
  if (!(jitter >= 0.0 && jitter < 1.0)) return bad("jitter");
  if (field != nullptr) field->clear();
  return {};
}

std::chrono::nanoseconds backoff_policy::nominal_delay(unsigned failures) const noexcept {
  if (failures <= 1) return std::min(initial, max);
  // initial * multiplier^(failures-1), computed in double and capped before converting back.
  const double d = static_cast<double>(initial.count()) *
                   std::pow(multiplier, static_cast<double>(failures - 1));
  if (!(d < static_cast<double>(max.count()))) return max;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(d));
}

steady_time retry_schedule::failed(steady_time now) {
  if (failures_ < 1000) ++failures_;  // the delay is capped long before; keep pow() finite
  const auto nominal = policy_.nominal_delay(failures_);
  auto delay = nominal;
  if (policy_.jitter > 0.0) {
    std::uniform_real_distribution<double> d(1.0 - policy_.jitter, 1.0 + policy_.jitter);
    delay = std::chrono::nanoseconds(
        static_cast<std::int64_t>(static_cast<double>(nominal.count()) * d(rng_)));
  }
  delay = std::min(delay, policy_.max);
  next_ = now + delay;
  return next_;
}

steady_time retry_schedule::hold_back(steady_time now) noexcept {
  next_ = std::max(next_, now + policy_.max);
  return next_;
}

}  // namespace diampool
