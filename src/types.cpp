#include "diampool/types.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "diampool/detail/text.hpp"
#include "diampool/error.hpp"

namespace diampool {

std::string_view to_string(avp_type t) noexcept {
  switch (t) {
    case avp_type::octet_string:
      return "OctetString";
    case avp_type::integer32:
      return "Integer32";
    case avp_type::integer64:
      return "Integer64";
    case avp_type::unsigned32:
      return "Unsigned32";
    case avp_type::unsigned64:
      return "Unsigned64";
    case avp_type::float32:
      return "Float32";
    case avp_type::float64:
      return "Float64";
    case avp_type::grouped:
      return "Grouped";
    case avp_type::address:
      return "Address";
    case avp_type::time:
      return "Time";
    case avp_type::utf8_string:
      return "UTF8String";
    case avp_type::diameter_identity:
      return "DiameterIdentity";
    case avp_type::diameter_uri:
      return "DiameterURI";
    case avp_type::enumerated:
      return "Enumerated";
    case avp_type::ip_filter_rule:
      return "IPFilterRule";
  }
  return "?";
}

ip_address ip_address::v4(const std::array<std::uint8_t, 4>& bytes) noexcept {
  ip_address a;
  a.family_ = address_family::ipv4;
  std::memcpy(a.bytes_.data(), bytes.data(), 4);
  return a;
}

ip_address ip_address::v6(const std::array<std::uint8_t, 16>& bytes) noexcept {
  ip_address a;
  a.family_ = address_family::ipv6;
  a.bytes_ = bytes;
  return a;
}

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  std::array<std::uint8_t, 16> bytes{};
  if (::inet_pton(AF_INET, buf, bytes.data()) == 1) {
    return v4({bytes[0], bytes[1], bytes[2], bytes[3]});
  }
  if (::inet_pton(AF_INET6, buf, bytes.data()) == 1) return v6(bytes);
  return std::nullopt;
}

std::string ip_address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

std::optional<ip_address> address_view::ip() const noexcept {
  if (family == address_family::ipv4 && address.size() == 4) {
    return ip_address::v4({address[0], address[1], address[2], address[3]});
  }
  if (family == address_family::ipv6 && address.size() == 16) {
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), address.data(), 16);
    return ip_address::v6(b);
  }
  return std::nullopt;
}

namespace {
constexpr std::int64_t era_length = std::int64_t{1} << 32;
constexpr std::int64_t half_era = std::int64_t{1} << 31;
// Unix seconds of the earliest (ntp 0x80000000 in era 0) and latest (ntp 0x7fffffff in era 1)
// representable times.
constexpr std::int64_t min_unix = half_era - ntp_unix_offset;
constexpr std::int64_t max_unix = era_length + half_era - 1 - ntp_unix_offset;
}  // namespace

diameter_time from_ntp_seconds(std::uint32_t ntp) noexcept {
  std::int64_t seconds = ntp;
  if ((ntp & 0x80000000U) == 0) seconds += era_length;  // era 1, from 2036-02-07
  return diameter_time{std::chrono::seconds{seconds - ntp_unix_offset}};
}

std::uint32_t to_ntp_seconds(diameter_time t, std::error_code& ec) noexcept {
  const std::int64_t unix_seconds = t.time_since_epoch().count();
  if (unix_seconds < min_unix || unix_seconds > max_unix) {
    ec = error::time_out_of_range;
    return 0;
  }
  ec.clear();
  return static_cast<std::uint32_t>((unix_seconds + ntp_unix_offset) % era_length);
}

bool is_valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {  // ASCII, the common case
      ++i;
      continue;
    }
    const std::size_t len = detail::utf8_sequence_length(text, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace diampool
