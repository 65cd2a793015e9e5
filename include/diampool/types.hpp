// diampool: RFC 6733 AVP data types and the value classes that carry them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace diampool {

/// RFC 6733 section 4.2 and 4.3 data formats. Derived formats keep their own tag so the
/// dictionary and the printer can treat them properly; on the wire each is its base format.
enum class avp_type : std::uint8_t {
  octet_string,       ///< Arbitrary bytes.
  integer32,          ///< 32-bit two's complement.
  integer64,          ///< 64-bit two's complement.
  unsigned32,         ///< 32-bit unsigned.
  unsigned64,         ///< 64-bit unsigned.
  float32,            ///< IEEE 754 single precision.
  float64,            ///< IEEE 754 double precision.
  grouped,            ///< A sequence of AVPs.
  address,            ///< OctetString: 2-byte address family, then the address.
  time,               ///< OctetString of 4 bytes: seconds since 1900-01-01 UTC (NTP format).
  utf8_string,        ///< OctetString holding UTF-8 text.
  diameter_identity,  ///< OctetString holding a host or realm FQDN (ASCII).
  diameter_uri,       ///< OctetString holding an aaa:// or aaas:// URI.
  enumerated,         ///< Integer32 with named values.
  ip_filter_rule,     ///< OctetString holding an IPFilterRule; kept as text, not parsed.
};

/// The RFC 6733 name of a type ("Unsigned32", "DiameterIdentity", ...).
std::string_view to_string(avp_type t) noexcept;

/// IANA address family numbers used in Address AVPs (RFC 6733 section 4.3.1).
namespace address_family {
inline constexpr std::uint16_t ipv4 = 1;
inline constexpr std::uint16_t ipv6 = 2;
}  // namespace address_family

/// An IPv4 or IPv6 address, as carried by an Address AVP (e.g. Host-IP-Address).
class ip_address {
 public:
  /// 0.0.0.0
  ip_address() = default;

  static ip_address v4(const std::array<std::uint8_t, 4>& bytes) noexcept;
  static ip_address v6(const std::array<std::uint8_t, 16>& bytes) noexcept;

  /// Parses dotted IPv4 or textual IPv6 (no brackets, no zone). nullopt if it is neither.
  static std::optional<ip_address> parse(std::string_view text);

  bool is_v4() const noexcept { return family_ == address_family::ipv4; }
  bool is_v6() const noexcept { return family_ == address_family::ipv6; }
  std::uint16_t family() const noexcept { return family_; }

  /// 4 bytes for IPv4, 16 for IPv6, in network order.
  std::span<const std::uint8_t> bytes() const noexcept {
    return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
  }

  std::string to_string() const;

  friend bool operator==(const ip_address&, const ip_address&) = default;

 private:
  std::uint16_t family_ = address_family::ipv4;
  std::array<std::uint8_t, 16> bytes_{};
};

/// The data of an Address AVP as received: any family, bytes viewed in place.
struct address_view {
  std::uint16_t family = 0;
  std::span<const std::uint8_t> address;

  /// The IP address when the family is IPv4 or IPv6 with the right size.
  std::optional<ip_address> ip() const noexcept;
};

/// Diameter Time: whole seconds, UTC.
using diameter_time = std::chrono::sys_seconds;

/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01 (Unix epoch).
inline constexpr std::int64_t ntp_unix_offset = 2'208'988'800;

/// Converts an on-the-wire Time value to a time point. Following RFC 6733 section 4.3.1
/// (and RFC 5905), a value with the top bit clear is in the era that starts at
/// 2036-02-07T06:28:16Z, so the representable range is 1968-01-20T03:14:08Z to
/// 2104-02-26T09:42:23Z and the 2036 wrap is transparent.
diameter_time from_ntp_seconds(std::uint32_t ntp) noexcept;

/// Converts a time point to the on-the-wire Time value; time_out_of_range outside the range
/// above.
std::uint32_t to_ntp_seconds(diameter_time t, std::error_code& ec) noexcept;

/// True if `text` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

}  // namespace diampool
