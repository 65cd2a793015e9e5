#include "diampool/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace diampool {

std::uint64_t histogram_snapshot::bucket_lower(std::size_t i) const noexcept {
  const std::size_t sub = std::size_t{1} << sub_bits;
  const std::size_t group = i >> sub_bits;
  const std::uint64_t s = i & (sub - 1);
  if (group == 0) return s;
  return (sub + s) << (group - 1);
}

std::uint64_t histogram_snapshot::bucket_upper(std::size_t i) const noexcept {
  const std::size_t group = i >> sub_bits;
  if (group == 0) return bucket_lower(i);
  return bucket_lower(i) + (std::uint64_t{1} << (group - 1)) - 1;
}

std::uint64_t histogram_snapshot::quantile(double q) const noexcept {
  if (count == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    seen += buckets[i];
    if (seen >= rank) return std::clamp(bucket_upper(i), min, max);
  }
  return max;
}

void histogram_snapshot::merge(const histogram_snapshot& other) {
  if (other.count == 0) return;
  if (count == 0 && buckets.empty()) {
    *this = other;
    return;
  }
  if (other.sub_bits != sub_bits || other.buckets.size() != buckets.size()) return;
  for (std::size_t i = 0; i < buckets.size(); ++i)
    buckets[i] += other.buckets[i];
  min = count == 0 ? other.min : std::min(min, other.min);
  max = std::max(max, other.max);
  count += other.count;
  sum = sum + other.sum < sum ? ~std::uint64_t{0} : sum + other.sum;
}

}  // namespace diampool
