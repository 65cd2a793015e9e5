#include "diampool/types.hpp"

#include <gtest/gtest.h>

#include "diampool/error.hpp"

namespace diampool {
namespace {

using std::chrono::seconds;
using std::chrono::sys_days;
using namespace std::chrono_literals;

diameter_time utc(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return diameter_time{sys_days{std::chrono::year{y} / mo / d}.time_since_epoch() +
                       std::chrono::hours{h} + std::chrono::minutes{mi} + seconds{s}};
}

TEST(avp_type, every_type_has_its_rfc_name) {
  EXPECT_EQ(to_string(avp_type::octet_string), "OctetString");
  EXPECT_EQ(to_string(avp_type::integer32), "Integer32");
  EXPECT_EQ(to_string(avp_type::integer64), "Integer64");
  EXPECT_EQ(to_string(avp_type::unsigned32), "Unsigned32");
  EXPECT_EQ(to_string(avp_type::unsigned64), "Unsigned64");
  EXPECT_EQ(to_string(avp_type::float32), "Float32");
  EXPECT_EQ(to_string(avp_type::float64), "Float64");
  EXPECT_EQ(to_string(avp_type::grouped), "Grouped");
  EXPECT_EQ(to_string(avp_type::address), "Address");
  EXPECT_EQ(to_string(avp_type::time), "Time");
  EXPECT_EQ(to_string(avp_type::utf8_string), "UTF8String");
  EXPECT_EQ(to_string(avp_type::diameter_identity), "DiameterIdentity");
  EXPECT_EQ(to_string(avp_type::diameter_uri), "DiameterURI");
  EXPECT_EQ(to_string(avp_type::enumerated), "Enumerated");
  EXPECT_EQ(to_string(avp_type::ip_filter_rule), "IPFilterRule");
}

TEST(ip_address, parses_and_prints_ipv4) {
  auto a = ip_address::parse("192.0.2.33");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(a->family(), address_family::ipv4);
  ASSERT_EQ(a->bytes().size(), 4U);
  EXPECT_EQ(a->bytes()[0], 192);
  EXPECT_EQ(a->bytes()[3], 33);
  EXPECT_EQ(a->to_string(), "192.0.2.33");
  EXPECT_EQ(*a, ip_address::v4({192, 0, 2, 33}));
}

TEST(ip_address, parses_and_prints_ipv6) {
  auto a = ip_address::parse("2001:db8::ff00:42:8329");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v6());
  EXPECT_EQ(a->family(), address_family::ipv6);
  ASSERT_EQ(a->bytes().size(), 16U);
  EXPECT_EQ(a->bytes()[0], 0x20);
  EXPECT_EQ(a->bytes()[15], 0x29);
  EXPECT_EQ(a->to_string(), "2001:db8::ff00:42:8329");
  EXPECT_EQ(ip_address::parse("::1")->to_string(), "::1");
}

TEST(ip_address, rejects_what_is_not_an_address) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "::g", "[::1]", "localhost",
                          "1.2.3.4 ", "0123456789012345678901234567890123456789012345678901"}) {
    EXPECT_FALSE(ip_address::parse(bad)) << bad;
  }
}

TEST(address_view, gives_the_ip_only_for_well_sized_ip_families) {
  const std::uint8_t v4[] = {10, 0, 0, 1};
  EXPECT_EQ((address_view{1, v4}.ip()), ip_address::v4({10, 0, 0, 1}));
  EXPECT_FALSE((address_view{2, v4}.ip()));
  EXPECT_FALSE((address_view{8, v4}.ip()));  // E.164: not an IP
  EXPECT_FALSE((address_view{1, std::span<const std::uint8_t>(v4, 3)}.ip()));
}

TEST(diameter_time, unix_epoch_is_ntp_2208988800) {
  std::error_code ec;
  EXPECT_EQ(to_ntp_seconds(diameter_time{}, ec), 2208988800U);
  EXPECT_FALSE(ec);
  EXPECT_EQ(from_ntp_seconds(2208988800U), diameter_time{});
}

TEST(diameter_time, wraps_in_2036_per_rfc_6733) {
  // The last second of NTP era 0 and the first of era 1.
  EXPECT_EQ(from_ntp_seconds(0xFFFFFFFFU), utc(2036, 2, 7, 6, 28, 15));
  EXPECT_EQ(from_ntp_seconds(0U), utc(2036, 2, 7, 6, 28, 16));
  std::error_code ec;
  EXPECT_EQ(to_ntp_seconds(utc(2036, 2, 7, 6, 28, 16), ec), 0U);
  EXPECT_EQ(to_ntp_seconds(utc(2036, 2, 7, 6, 28, 15), ec), 0xFFFFFFFFU);
  // 2040-01-01 is 2208988800 s after 1970, as 1970 is after 1900: twice that, modulo 2^32.
  EXPECT_EQ(to_ntp_seconds(utc(2040, 1, 1, 0, 0, 0), ec), 0x0754FD00U);
  EXPECT_FALSE(ec);
}

TEST(diameter_time, range_ends_are_1968_and_2104) {
  EXPECT_EQ(from_ntp_seconds(0x80000000U), utc(1968, 1, 20, 3, 14, 8));
  EXPECT_EQ(from_ntp_seconds(0x7FFFFFFFU), utc(2104, 2, 26, 9, 42, 23));
  std::error_code ec;
  EXPECT_EQ(to_ntp_seconds(utc(1968, 1, 20, 3, 14, 8), ec), 0x80000000U);
  EXPECT_FALSE(ec);
  EXPECT_EQ(to_ntp_seconds(utc(2104, 2, 26, 9, 42, 23), ec), 0x7FFFFFFFU);
  EXPECT_FALSE(ec);
  to_ntp_seconds(utc(1968, 1, 20, 3, 14, 7), ec);
  EXPECT_EQ(ec, error::time_out_of_range);
  to_ntp_seconds(utc(2104, 2, 26, 9, 42, 24), ec);
  EXPECT_EQ(ec, error::time_out_of_range);
}

TEST(diameter_time, round_trips_across_the_whole_range) {
  for (std::uint64_t ntp = 0; ntp <= 0xFFFFFFFFULL; ntp += 0x0FFFFFFFULL / 7) {
    std::error_code ec;
    const auto t = from_ntp_seconds(static_cast<std::uint32_t>(ntp));
    EXPECT_EQ(to_ntp_seconds(t, ec), static_cast<std::uint32_t>(ntp));
    EXPECT_FALSE(ec);
  }
}

TEST(utf8, accepts_valid_text) {
  for (const char* ok : {"", "plain ascii", "h\xc3\xa9llo", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                         "\xf4\x8f\xbf\xbf"}) {
    EXPECT_TRUE(is_valid_utf8(ok)) << ok;
  }
  EXPECT_TRUE(is_valid_utf8(std::string_view("a\0b", 3)));
}

TEST(utf8, rejects_malformed_text) {
  for (const char* bad : {"\x80", "\xc3", "\xc3\x28", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                          "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "ab\xe2\x82"}) {
    EXPECT_FALSE(is_valid_utf8(bad)) << testing::PrintToString(std::string(bad));
  }
}

}  // namespace
}  // namespace diampool
