#include "diampool/avp.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "diampool/error.hpp"

namespace diampool {
namespace {

using bytes = std::vector<std::uint8_t>;

// An AVP header with the given code, flags and length field, then `data`, then padding.
bytes raw_avp(std::uint32_t code, std::uint8_t flags, std::uint32_t length, const bytes& data,
              std::uint32_t vendor = 0, std::size_t pad = 0) {
  bytes b = {static_cast<std::uint8_t>(code >> 24),
             static_cast<std::uint8_t>(code >> 16),
             static_cast<std::uint8_t>(code >> 8),
             static_cast<std::uint8_t>(code),
             flags,
             static_cast<std::uint8_t>(length >> 16),
             static_cast<std::uint8_t>(length >> 8),
             static_cast<std::uint8_t>(length)};
  if ((flags & avp_flags::vendor) != 0) {
    for (int s = 24; s >= 0; s -= 8)
      b.push_back(static_cast<std::uint8_t>(vendor >> s));
  }
  b.insert(b.end(), data.begin(), data.end());
  b.insert(b.end(), pad, 0);
  return b;
}

std::error_code read_all(const bytes& b, unsigned depth = default_max_avp_depth,
                         std::size_t* count = nullptr) {
  avp_reader r(b, depth);
  avp a;
  std::error_code ec;
  std::size_t n = 0;
  while (r.next(a, ec))
    ++n;
  if (count != nullptr) *count = n;
  return ec;
}

TEST(avp_reader, reads_header_fields_and_data) {
  const bytes b = raw_avp(268, avp_flags::mandatory, 12, {0, 0, 7, 0xd1});
  avp_reader r(b, 4);
  avp a;
  std::error_code ec;
  ASSERT_TRUE(r.next(a, ec));
  EXPECT_EQ(a.code(), 268U);
  EXPECT_TRUE(a.is_mandatory());
  EXPECT_FALSE(a.is_vendor_specific());
  EXPECT_EQ(a.vendor_id(), 0U);
  EXPECT_EQ(a.header().length, 12U);
  EXPECT_EQ(a.header().size(), 8U);
  EXPECT_EQ(a.depth_left(), 3U);
  EXPECT_EQ(a.as_unsigned32(), 2001U);
  EXPECT_FALSE(r.next(a, ec));
  EXPECT_FALSE(ec);
}

TEST(avp_reader, reads_vendor_id_when_v_flag_set) {
  const bytes b = raw_avp(1032, avp_flags::vendor | avp_flags::mandatory, 16, {0, 0, 0, 1}, 10415);
  avp_reader r(b, 4);
  avp a;
  std::error_code ec;
  ASSERT_TRUE(r.next(a, ec));
  EXPECT_TRUE(a.is_vendor_specific());
  EXPECT_EQ(a.vendor_id(), 10415U);
  EXPECT_EQ(a.header().size(), 12U);
  EXPECT_EQ(a.data().size(), 4U);
}

TEST(avp_reader, skips_padding_between_avps) {
  bytes b = raw_avp(1, 0, 9, {'x'}, 0, 3);
  const bytes second = raw_avp(2, 0, 10, {'y', 'z'}, 0, 2);
  b.insert(b.end(), second.begin(), second.end());
  avp_reader r(b, 4);
  avp a;
  std::error_code ec;
  ASSERT_TRUE(r.next(a, ec));
  EXPECT_EQ(a.as_string(), "x");
  ASSERT_TRUE(r.next(a, ec));
  EXPECT_EQ(a.as_string(), "yz");
  EXPECT_FALSE(r.next(a, ec));
  EXPECT_FALSE(ec);
}

TEST(avp_reader, reports_truncated_headers) {
  for (std::size_t n = 1; n < 8; ++n) {
    EXPECT_EQ(read_all(bytes(n, 0)), error::truncated_avp_header) << n;
  }
  // V flag set but fewer than 12 bytes.
  bytes b = raw_avp(1, avp_flags::vendor, 12, {}, 0);
  b.resize(10);
  EXPECT_EQ(read_all(b), error::truncated_avp_header);
}

TEST(avp_reader, reports_avp_length_smaller_than_header) {
  for (std::uint32_t len = 0; len < 8; ++len) {
    EXPECT_EQ(read_all(raw_avp(1, 0, len, {0, 0, 0, 0})), error::bad_avp_length) << len;
  }
  for (std::uint32_t len = 8; len < 12; ++len) {
    EXPECT_EQ(read_all(raw_avp(1, avp_flags::vendor, len, {0, 0, 0, 0}, 5)), error::bad_avp_length)
        << len;
  }
}

TEST(avp_reader, reports_avp_running_past_parent) {
  EXPECT_EQ(read_all(raw_avp(1, 0, 13, {1, 2, 3, 4})), error::avp_overrun);
  EXPECT_EQ(read_all(raw_avp(1, 0, 0xFFFFFF, {1, 2, 3, 4})), error::avp_overrun);
}

TEST(avp_reader, reports_missing_padding) {
  EXPECT_EQ(read_all(raw_avp(1, 0, 9, {'x'})), error::bad_padding);
  EXPECT_EQ(read_all(raw_avp(1, 0, 9, {'x'}, 0, 2)), error::bad_padding);
  EXPECT_FALSE(read_all(raw_avp(1, 0, 9, {'x'}, 0, 3)));
}

TEST(avp_reader, stays_at_end_after_an_error) {
  bytes b = raw_avp(1, 0, 5, {});
  const bytes good = raw_avp(2, 0, 8, {});
  b.insert(b.end(), good.begin(), good.end());
  avp_reader r(b, 4);
  avp a;
  std::error_code ec;
  EXPECT_FALSE(r.next(a, ec));
  EXPECT_EQ(ec, error::bad_avp_length);
  EXPECT_EQ(r.remaining(), 0U);
  EXPECT_FALSE(r.next(a, ec));
  EXPECT_FALSE(ec);
}

TEST(avp_reader, enforces_the_nesting_limit) {
  // Five levels of grouping around an Unsigned32.
  bytes inner = raw_avp(268, 0, 12, {0, 0, 0, 1});
  for (int i = 0; i < 5; ++i) {
    inner = raw_avp(260, 0, static_cast<std::uint32_t>(8 + inner.size()), inner);
  }
  auto depth_of = [](const bytes& b, unsigned limit) -> std::error_code {
    std::function<std::error_code(avp_range)> walk = [&](avp_range r) -> std::error_code {
      for (const avp& a : r) {
        if (a.code() == 260) {
          if (auto ec = walk(a.children())) return ec;
        }
      }
      return r.error();
    };
    return walk(avp_range(b, limit));
  };
  EXPECT_FALSE(depth_of(inner, 6));
  EXPECT_EQ(depth_of(inner, 5), error::nesting_too_deep);
  EXPECT_EQ(depth_of(inner, 1), error::nesting_too_deep);
  EXPECT_EQ(read_all(inner, 0), error::nesting_too_deep);
  EXPECT_FALSE(read_all({}, 0));  // nothing to read: no error
}

TEST(avp_range, iterates_and_keeps_the_error) {
  bytes b = raw_avp(1, 0, 8, {});
  const bytes bad = raw_avp(2, 0, 4, {});
  b.insert(b.end(), bad.begin(), bad.end());
  avp_range r(b, 4);
  int n = 0;
  for (const avp& a : r) {
    EXPECT_EQ(a.code(), 1U);
    ++n;
  }
  EXPECT_EQ(n, 1);
  EXPECT_EQ(r.error(), error::bad_avp_length);
}

TEST(avp, typed_accessors_check_sizes) {
  const avp_header h{1, 0, 0, 0};
  const bytes four = {0xff, 0xff, 0xff, 0xfe};
  const bytes eight = {0x80, 0, 0, 0, 0, 0, 0, 1};
  const avp a4(h, four, 1);
  const avp a8(h, eight, 1);
  std::error_code ec;
  EXPECT_EQ(a4.as_integer32(ec), -2);
  EXPECT_FALSE(ec);
  EXPECT_EQ(a4.as_unsigned32(ec), 0xfffffffeU);
  EXPECT_EQ(a8.as_unsigned64(ec), 0x8000000000000001ULL);
  EXPECT_EQ(a8.as_integer64(ec), static_cast<std::int64_t>(0x8000000000000001ULL));
  EXPECT_FALSE(ec);
  a8.as_unsigned32(ec);
  EXPECT_EQ(ec, error::bad_value_length);
  a4.as_unsigned64(ec);
  EXPECT_EQ(ec, error::bad_value_length);
  a8.as_float32(ec);
  EXPECT_EQ(ec, error::bad_value_length);
  a4.as_float64(ec);
  EXPECT_EQ(ec, error::bad_value_length);
  a8.as_time(ec);
  EXPECT_EQ(ec, error::bad_value_length);
  EXPECT_THROW(a8.as_integer32(), std::system_error);
  EXPECT_THROW(a4.as_integer64(), std::system_error);
}

TEST(avp, float_accessors_read_ieee754) {
  const bytes f = {0x3f, 0xc0, 0, 0};              // 1.5f
  const bytes d = {0xc0, 0x02, 0, 0, 0, 0, 0, 0};  // -2.25
  EXPECT_EQ(avp({}, f, 1).as_float32(), 1.5F);
  EXPECT_EQ(avp({}, d, 1).as_float64(), -2.25);
}

TEST(avp, address_accessor_checks_family_sizes) {
  std::error_code ec;
  const bytes v4 = {0, 1, 127, 0, 0, 1};
  auto v = avp({}, v4, 1).as_address(ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(v.family, 1);
  EXPECT_EQ(v.ip()->to_string(), "127.0.0.1");
  for (const bytes& bad : {bytes{}, bytes{0}, bytes{0, 1, 1, 2, 3}, bytes{0, 2, 1, 2, 3, 4}}) {
    avp({}, bad, 1).as_address(ec);
    EXPECT_EQ(ec, error::bad_address);
  }
  const bytes e164 = {0, 8, '1', '2', '3'};
  v = avp({}, e164, 1).as_address(ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(v.family, 8);
  EXPECT_EQ(v.address.size(), 3U);
  EXPECT_THROW(avp({}, bytes{0}, 1).as_address(), std::system_error);
}

TEST(avp, utf8_accessor_validates) {
  const bytes good = {'h', 0xc3, 0xa9};
  const bytes bad = {'h', 0xc3};
  std::error_code ec;
  EXPECT_EQ(avp({}, good, 1).as_utf8(ec), "h\xc3\xa9");
  EXPECT_FALSE(ec);
  avp({}, bad, 1).as_utf8(ec);
  EXPECT_EQ(ec, error::invalid_utf8);
  EXPECT_THROW(avp({}, bad, 1).as_utf8(), std::system_error);
}

TEST(avp, time_accessor_handles_the_era_wrap) {
  const bytes early = {0x80, 0, 0, 0};
  const bytes late = {0, 0, 0, 0};
  EXPECT_EQ(avp({}, early, 1).as_time(), from_ntp_seconds(0x80000000U));
  EXPECT_GT(avp({}, late, 1).as_time(), avp({}, bytes{0xff, 0xff, 0xff, 0xff}, 1).as_time());
}

}  // namespace
}  // namespace diampool
