#include "diampool/message.hpp"

#include <gtest/gtest.h>

#include "diampool/codes.hpp"
#include "diampool/error.hpp"
#include "samples.hpp"

namespace diampool {
namespace {

TEST(message_header, writes_and_reads_every_field) {
  message_header h;
  h.length = 0x123456;
  h.flags = cmd_flags::request | cmd_flags::proxiable | cmd_flags::error | cmd_flags::retransmit;
  h.command_code = 0xABCDEF;
  h.application_id = 0xFFFFFFFF;
  h.hop_by_hop = 0x01020304;
  h.end_to_end = 0xF1F2F3F4;
  std::uint8_t buf[header_size];
  h.write(buf);
  EXPECT_EQ(buf[0], 1);
  EXPECT_EQ(buf[1], 0x12);
  EXPECT_EQ(buf[3], 0x56);
  EXPECT_EQ(buf[4], 0xF0);
  EXPECT_EQ(buf[5], 0xAB);
  EXPECT_EQ(message_header::read(buf), h);
  const auto r = message_header::read(buf);
  EXPECT_TRUE(r.is_request());
  EXPECT_TRUE(r.is_proxiable());
  EXPECT_TRUE(r.is_error());
  EXPECT_TRUE(r.is_retransmit());
}

TEST(check_header, accepts_good_and_names_each_fault) {
  std::uint8_t buf[header_size] = {1, 0, 0, 20};
  std::error_code ec;
  EXPECT_EQ(check_header(buf, 1000, ec), 20U);
  EXPECT_FALSE(ec);
  buf[0] = 2;
  EXPECT_EQ(check_header(buf, 1000, ec), 0U);
  EXPECT_EQ(ec, error::bad_version);
  buf[0] = 1;
  for (std::uint8_t len = 0; len < 20; ++len) {
    buf[3] = len;
    check_header(buf, 1000, ec);
    EXPECT_EQ(ec, error::message_too_short) << int{len};
  }
  buf[3] = 22;
  check_header(buf, 1000, ec);
  EXPECT_EQ(ec, error::bad_message_length);
  buf[1] = 0xFF;  // 16 MiB - ish
  buf[3] = 0xFC;
  check_header(buf, default_max_message_size, ec);
  EXPECT_EQ(ec, error::message_too_long);
  EXPECT_EQ(ec, condition::malformed_message);
}

TEST(message_view, parses_the_reference_cer) {
  const auto bytes = test::hex(test::reference_cer_hex);
  std::error_code ec;
  const auto m = message_view::parse(bytes, ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(m.header().length, 128U);
  EXPECT_EQ(m.header().command_code, 257U);
  EXPECT_TRUE(m.header().is_request());
  EXPECT_EQ(m.header().hop_by_hop, 1U);
  EXPECT_EQ(m.header().end_to_end, 1U);
  EXPECT_EQ(m.body().size(), 108U);
  auto host = m.find(avp_code::origin_host);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->as_string(), "client.example.com");
  auto app = m.find(avp_code::auth_application_id);
  ASSERT_TRUE(app);
  EXPECT_EQ(app->as_unsigned32(), 16777215U);
  EXPECT_FALSE(m.find(avp_code::result_code));
  EXPECT_FALSE(m.find(avp_code::origin_host, 10415));
}

TEST(message_view, rejects_length_that_does_not_match_the_bytes) {
  auto bytes = test::hex(test::reference_cer_hex);
  std::error_code ec;
  message_view::parse(std::span(bytes).first(124), ec);
  EXPECT_EQ(ec, error::bad_message_length);
  bytes.resize(132, 0);
  message_view::parse(bytes, ec);
  EXPECT_EQ(ec, error::bad_message_length);
  message_view::parse(std::span(bytes).first(10), ec);
  EXPECT_EQ(ec, error::message_too_short);
  message_view::parse(std::span(bytes).first(128), ec, 100);
  EXPECT_EQ(ec, error::message_too_long);
}

// Each header fault gives its own error and an empty view (check(): false); a good parse or
// check clears the error (callers reuse one error_code).
TEST(message_view, tells_each_header_fault_and_clears_the_error_on_success) {
  const std::vector<std::uint8_t> good = test::hex(test::reference_cer_hex);
  std::error_code ec;
  const auto fails = [&](std::vector<std::uint8_t> b, std::error_code want,
                         std::size_t max = max_length_field) {
    const message_view m = message_view::parse(b, ec, max);
    EXPECT_EQ(ec, want);
    EXPECT_TRUE(m.bytes().empty());
    EXPECT_EQ(m.header(), message_header{});
    // check() says the same without a view.
    std::error_code checked = make_error_code(error::timed_out);
    EXPECT_FALSE(message_view::check(b, checked, max));
    EXPECT_EQ(checked, want);
  };
  std::vector<std::uint8_t> b = good;
  b[0] = 2;
  fails(b, error::bad_version);
  b = good;
  b[3] = static_cast<std::uint8_t>(b[3] + 2);  // 130: not a multiple of 4
  b.resize(130, 0);
  fails(b, error::bad_message_length);
  b = good;
  b[1] = b[2] = 0;
  b[3] = 16;  // under the header's own size
  b.resize(16);
  fails(b, error::message_too_short);
  fails(good, error::message_too_long, good.size() - 4);
  ec = make_error_code(error::timed_out);
  EXPECT_TRUE(message_view::check(good, ec, good.size()));
  EXPECT_FALSE(ec);
  ec = make_error_code(error::timed_out);
  const message_view m = message_view::parse(good, ec, good.size());
  EXPECT_FALSE(ec);
  EXPECT_EQ(m.bytes().size(), good.size());
  EXPECT_EQ(m.header().length, good.size());
  EXPECT_EQ(m.header().command_code, command::capabilities_exchange);
}

TEST(message_view, find_stops_at_a_malformed_avp) {
  auto bytes = test::hex(test::reference_cer_hex);
  bytes[20 + 7] = 5;  // Origin-Host length 5: malformed before anything else
  std::error_code ec;
  const auto m = message_view::parse(bytes, ec);
  ASSERT_FALSE(ec);
  EXPECT_FALSE(m.find(avp_code::auth_application_id));
  auto range = m.avps();
  for ([[maybe_unused]] const avp& a : range) {
  }
  EXPECT_EQ(range.error(), error::bad_avp_length);
}

}  // namespace
}  // namespace diampool
