#include "diampool/avp.hpp"

#include <bit>
#include <cstring>

#include "diampool/detail/endian.hpp"
#include "diampool/error.hpp"

namespace diampool {

bool avp_reader::next_checked(avp& out, std::error_code& ec) noexcept {
  ec.clear();
  if (rest_.empty()) return false;
  auto fail = [&](error e) {
    ec = e;
    rest_ = {};
    return false;
  };
  if (depth_left_ == 0) return fail(error::nesting_too_deep);
  if (rest_.size() < 8) return fail(error::truncated_avp_header);
  const std::uint8_t* p = rest_.data();
  avp_header h;
  h.code = detail::load_u32(p);
  h.flags = p[4];
  h.length = detail::load_u24(p + 5);
  const std::size_t hsize = h.size();
  if (hsize == 12) {
    if (rest_.size() < 12) return fail(error::truncated_avp_header);
    h.vendor_id = detail::load_u32(p + 8);
  }
  if (h.length < hsize) return fail(error::bad_avp_length);
  if (h.length > rest_.size()) return fail(error::avp_overrun);
  const std::size_t padded = h.length + detail::padding(h.length);
  if (padded > rest_.size()) return fail(error::bad_padding);
  out = avp(h, rest_.subspan(hsize, h.length - hsize), depth_left_ - 1);
  rest_ = rest_.subspan(padded);
  return true;
}

avp_range avp::children() const noexcept {
  return {data_, depth_left_};
}

namespace {

template <typename T>
T fixed(std::span<const std::uint8_t> d, std::error_code& ec) noexcept {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  if (d.size() != sizeof(T)) {
    ec = error::bad_value_length;
    return T{};
  }
  ec.clear();
  if constexpr (sizeof(T) == 4) {
    return std::bit_cast<T>(detail::load_u32(d.data()));
  } else {
    return std::bit_cast<T>(detail::load_u64(d.data()));
  }
}

template <typename T>
T or_throw(T v, const std::error_code& ec) {
  if (ec) throw std::system_error(ec);
  return v;
}

}  // namespace

std::int32_t avp::as_integer32(std::error_code& ec) const noexcept {
  return fixed<std::int32_t>(data_, ec);
}
std::int64_t avp::as_integer64(std::error_code& ec) const noexcept {
  return fixed<std::int64_t>(data_, ec);
}
std::uint32_t avp::as_unsigned32(std::error_code& ec) const noexcept {
  return fixed<std::uint32_t>(data_, ec);
}
std::uint64_t avp::as_unsigned64(std::error_code& ec) const noexcept {
  return fixed<std::uint64_t>(data_, ec);
}
float avp::as_float32(std::error_code& ec) const noexcept {
  return fixed<float>(data_, ec);
}
double avp::as_float64(std::error_code& ec) const noexcept {
  return fixed<double>(data_, ec);
}

std::string_view avp::as_utf8(std::error_code& ec) const noexcept {
  const std::string_view s = as_string();
  if (!is_valid_utf8(s)) {
    ec = error::invalid_utf8;
    return {};
  }
  ec.clear();
  return s;
}

address_view avp::as_address(std::error_code& ec) const noexcept {
  if (data_.size() < 2) {
    ec = error::bad_address;
    return {};
  }
  address_view v{static_cast<std::uint16_t>((data_[0] << 8) | data_[1]), data_.subspan(2)};
  if ((v.family == address_family::ipv4 && v.address.size() != 4) ||
      (v.family == address_family::ipv6 && v.address.size() != 16)) {
    ec = error::bad_address;
    return {};
  }
  ec.clear();
  return v;
}

diameter_time avp::as_time(std::error_code& ec) const noexcept {
  const std::uint32_t ntp = fixed<std::uint32_t>(data_, ec);
  return ec ? diameter_time{} : from_ntp_seconds(ntp);
}

std::int32_t avp::as_integer32() const {
  std::error_code ec;
  return or_throw(as_integer32(ec), ec);
}
std::int64_t avp::as_integer64() const {
  std::error_code ec;
  return or_throw(as_integer64(ec), ec);
}
std::uint32_t avp::as_unsigned32() const {
  std::error_code ec;
  return or_throw(as_unsigned32(ec), ec);
}
std::uint64_t avp::as_unsigned64() const {
  std::error_code ec;
  return or_throw(as_unsigned64(ec), ec);
}
float avp::as_float32() const {
  std::error_code ec;
  return or_throw(as_float32(ec), ec);
}
double avp::as_float64() const {
  std::error_code ec;
  return or_throw(as_float64(ec), ec);
}
std::string_view avp::as_utf8() const {
  std::error_code ec;
  return or_throw(as_utf8(ec), ec);
}
address_view avp::as_address() const {
  std::error_code ec;
  return or_throw(as_address(ec), ec);
}
diameter_time avp::as_time() const {
  std::error_code ec;
  return or_throw(as_time(ec), ec);
}

}  // namespace diampool
