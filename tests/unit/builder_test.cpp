#include "diampool/builder.hpp"

#include <gtest/gtest.h>

#include "diampool/dictionary.hpp"
#include "diampool/error.hpp"
#include "samples.hpp"

namespace diampool {
namespace {

message_header request(std::uint32_t code = 16777214, std::uint32_t app = 16777215) {
  message_header h;
  h.flags = cmd_flags::request | cmd_flags::proxiable;
  h.command_code = code;
  h.application_id = app;
  h.hop_by_hop = 0xdeadbeef;
  h.end_to_end = 0x12345678;
  return h;
}

message_view parse_ok(std::span<const std::uint8_t> bytes) {
  std::error_code ec;
  auto m = message_view::parse(bytes, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(check_avps(m, dictionary::base()));
  return m;
}

TEST(message_builder, produces_the_reference_cer_byte_for_byte) {
  EXPECT_EQ(test::build_reference_cer(), test::hex(test::reference_cer_hex));
}

TEST(message_builder, round_trips_every_basic_type) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  const auto when = diameter_time{std::chrono::seconds{2'200'000'000}};  // after the 2036 wrap
  const std::uint8_t raw[] = {0, 1, 2, 0xff, 0xfe};
  b.add_octets(1, raw)
      .add_integer32(2, -123456)
      .add_integer64(3, -(std::int64_t{1} << 62))
      .add_unsigned32(4, 0xfffffff0U)
      .add_unsigned64(5, 0xfedcba9876543210ULL)
      .add_float32(6, 3.25F)
      .add_float64(7, -1e300)
      .add_address(8, *ip_address::parse("192.0.2.1"))
      .add_address(9, *ip_address::parse("2001:db8::2"))
      .add_time(10, when)
      .add_string(11, "h\xc3\xa9llo", 0, 10415)
      .add_string(12, "");
  const auto bytes = b.finish();
  const auto m = parse_ok(bytes);
  EXPECT_EQ(m.header(), message_header::read(bytes.data()));
  EXPECT_EQ(m.header().length, bytes.size());
  EXPECT_EQ(m.header().hop_by_hop, 0xdeadbeefU);
  std::vector<avp> avps;
  auto range = m.avps();
  for (const avp& a : range)
    avps.push_back(a);
  ASSERT_FALSE(range.error());
  ASSERT_EQ(avps.size(), 12U);
  EXPECT_TRUE(std::ranges::equal(avps[0].data(), raw));
  EXPECT_EQ(avps[1].as_integer32(), -123456);
  EXPECT_EQ(avps[2].as_integer64(), -(std::int64_t{1} << 62));
  EXPECT_EQ(avps[3].as_unsigned32(), 0xfffffff0U);
  EXPECT_EQ(avps[4].as_unsigned64(), 0xfedcba9876543210ULL);
  EXPECT_EQ(avps[5].as_float32(), 3.25F);
  EXPECT_EQ(avps[6].as_float64(), -1e300);
  EXPECT_EQ(avps[7].as_address().ip()->to_string(), "192.0.2.1");
  EXPECT_EQ(avps[8].as_address().ip()->to_string(), "2001:db8::2");
  EXPECT_EQ(avps[9].as_time(), when);
  EXPECT_EQ(avps[10].as_utf8(), "h\xc3\xa9llo");
  EXPECT_EQ(avps[10].vendor_id(), 10415U);
  EXPECT_EQ(avps[10].flags(), avp_flags::vendor);
  EXPECT_EQ(avps[11].data().size(), 0U);
  for (std::size_t i = 0; i < 10; ++i)
    EXPECT_EQ(avps[i].code(), i + 1);
  EXPECT_TRUE(avps[0].is_mandatory());
}

TEST(message_builder, pads_every_avp_with_zeros) {
  std::vector<std::uint8_t> out(64, 0xAA);  // garbage that must not leak into padding
  out.clear();
  message_builder b(out, request());
  b.add_string(1, "x").add_string(2, "yz").add_string(3, "abc").add_string(4, "abcd");
  const auto bytes = b.finish();
  EXPECT_EQ(bytes.size(), 20U + 12 + 12 + 12 + 12);
  EXPECT_EQ(bytes[20 + 7], 9);  // length excludes padding
  EXPECT_EQ(bytes[20 + 9], 0);
  EXPECT_EQ(bytes[20 + 10], 0);
  EXPECT_EQ(bytes[20 + 11], 0);
}

TEST(message_builder, clears_a_stray_v_flag_without_vendor) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  b.add_unsigned32(1, 5, avp_flags::vendor | avp_flags::mandatory, 0);
  const auto m = parse_ok(b.finish());
  EXPECT_EQ(m.avps().begin()->flags(), avp_flags::mandatory);
}

TEST(message_builder, nests_groups_and_patches_their_lengths) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  auto outer = b.begin_group(avp_code::failed_avp);
  b.add_string(avp_code::origin_host, "a");
  auto inner = b.begin_group(avp_code::vendor_specific_application_id, avp_flags::mandatory, 9);
  b.add_unsigned32(avp_code::vendor_id, 10415);
  b.end_group(inner);
  b.end_group(outer);
  b.add_unsigned32(avp_code::result_code, 2001);
  const auto m = parse_ok(b.finish());
  auto it = m.avps().begin();
  const avp failed = *it;
  EXPECT_EQ(failed.code(), avp_code::failed_avp);
  EXPECT_EQ(failed.header().length, 8U + 12 + (12 + 12));
  auto kids = failed.children();
  auto k = kids.begin();
  EXPECT_EQ(k->as_string(), "a");
  ++k;
  EXPECT_EQ(k->vendor_id(), 9U);
  EXPECT_EQ(k->children().begin()->as_unsigned32(), 10415U);
  ++k;
  EXPECT_EQ(k, kids.end());
  EXPECT_FALSE(kids.error());
  EXPECT_EQ(m.find(avp_code::result_code)->as_unsigned32(), 2001U);
}

TEST(message_builder, empty_group_is_a_header_only_avp) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  b.end_group(b.begin_group(avp_code::proxy_info));
  const auto m = parse_ok(b.finish());
  EXPECT_EQ(m.header().length, 28U);
  EXPECT_EQ(m.avps().begin()->children().begin(), m.avps().begin()->children().end());
}

TEST(message_builder, reports_unbalanced_groups) {
  {
    std::vector<std::uint8_t> out;
    message_builder b(out, request());
    b.begin_group(1);
    std::error_code ec;
    EXPECT_TRUE(b.finish(ec).empty());
    EXPECT_EQ(ec, error::unbalanced_group);
  }
  {
    std::vector<std::uint8_t> out;
    message_builder b(out, request());
    auto outer = b.begin_group(1);
    b.begin_group(2);
    b.end_group(outer);  // closes out of order
    EXPECT_EQ(b.error(), error::unbalanced_group);
  }
  {
    std::vector<std::uint8_t> out;
    message_builder b(out, request());
    b.end_group({});
    EXPECT_EQ(b.error(), error::unbalanced_group);
    EXPECT_THROW(b.finish(), std::system_error);
  }
}

TEST(message_builder, appends_after_existing_bytes_for_batching) {
  std::vector<std::uint8_t> out;
  {
    message_builder b(out, request());
    b.add_unsigned32(1, 1);
    b.finish();
  }
  const std::size_t first = out.size();
  message_builder b(out, request(280, 0));
  b.add_string(avp_code::origin_host, "second");
  const auto second = b.finish();
  EXPECT_EQ(second.data(), out.data() + first);
  EXPECT_EQ(out.size(), first + second.size());
  EXPECT_EQ(parse_ok(std::span(out).first(first)).header().command_code, 16777214U);
  EXPECT_EQ(parse_ok(second).header().command_code, 280U);
}

TEST(message_builder, fixed_buffer_fits_exactly_or_reports_too_small) {
  const auto reference = test::hex(test::reference_cer_hex);
  auto build = [](std::span<std::uint8_t> buf, std::error_code& ec) {
    return test::write_reference_cer(buf, ec);
  };
  std::vector<std::uint8_t> exact(128);
  std::error_code ec;
  const auto bytes = build(exact, ec);
  ASSERT_FALSE(ec);
  EXPECT_TRUE(std::ranges::equal(bytes, reference));
  for (std::size_t n : {0, 19, 20, 64, 127}) {
    std::vector<std::uint8_t> small(n);
    EXPECT_TRUE(build(small, ec).empty());
    EXPECT_EQ(ec, error::buffer_too_small) << n;
  }
}

TEST(message_builder, rejects_values_too_long_for_the_length_field) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  const std::vector<std::uint8_t> huge(max_length_field, 0);
  b.add_octets(1, huge);
  EXPECT_EQ(b.error(), error::value_too_long);
  EXPECT_LT(out.size(), 1024U);  // nothing of the value was written
}

TEST(message_builder, rejects_a_message_over_the_length_field) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  const std::vector<std::uint8_t> big(max_length_field / 2, 0);
  b.add_octets(1, big).add_octets(2, big);
  EXPECT_EQ(b.error(), error::value_too_long);
}

TEST(message_builder, rejects_time_outside_the_diameter_range) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  b.add_time(1, diameter_time{std::chrono::seconds{-3'000'000'000LL}});
  EXPECT_EQ(b.error(), error::time_out_of_range);
}

TEST(message_builder, errors_are_sticky_and_stop_writing) {
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  b.add_time(1, diameter_time{std::chrono::seconds{-3'000'000'000LL}});
  const std::size_t size = b.size();
  b.add_unsigned32(2, 1).add_string(3, "more");
  EXPECT_EQ(b.size(), size);
  EXPECT_EQ(b.error(), error::time_out_of_range);
  std::error_code ec;
  EXPECT_TRUE(b.finish(ec).empty());
  EXPECT_EQ(ec, error::time_out_of_range);
}

TEST(message_builder, dictionary_entries_set_code_vendor_and_flags) {
  const dictionary& d = dictionary::base();
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  b.add(*d.find_avp("Origin-Host"), std::string_view("h.example.com"))
      .add(*d.find_avp("Product-Name"), std::string_view("p"))
      .add(*d.find_avp("Result-Code"), std::uint32_t{2001})
      .add(*d.find_avp("Disconnect-Cause"), std::int32_t{2})
      .add(*d.find_avp("Accounting-Sub-Session-Id"), std::uint64_t{7})
      .add(*d.find_avp("Host-IP-Address"), *ip_address::parse("::1"))
      .add(*d.find_avp("Event-Timestamp"), diameter_time{std::chrono::seconds{0}});
  auto g = b.begin_group(*d.find_avp("Vendor-Specific-Application-Id"));
  b.add(*d.find_avp("Vendor-Id"), std::uint32_t{10415});
  b.end_group(g);
  dictionary app = d;
  app.add(avp_definition{1032, 10415, "RAT-Type", avp_type::enumerated, flag_rule::must_not, {}});
  b.add(*app.find_avp("RAT-Type"), std::int32_t{1004});
  const auto m = parse_ok(b.finish());
  std::vector<avp> avps;
  for (const avp& a : m.avps())
    avps.push_back(a);
  ASSERT_EQ(avps.size(), 9U);
  EXPECT_EQ(avps[0].code(), avp_code::origin_host);
  EXPECT_EQ(avps[0].flags(), avp_flags::mandatory);
  EXPECT_EQ(avps[1].flags(), 0);  // Product-Name: M must not be set
  EXPECT_EQ(avps[2].as_unsigned32(), 2001U);
  EXPECT_EQ(avps[3].as_integer32(), 2);
  EXPECT_EQ(avps[4].as_unsigned64(), 7U);
  EXPECT_EQ(avps[5].as_address().ip()->to_string(), "::1");
  EXPECT_EQ(avps[6].as_time(), diameter_time{});
  EXPECT_EQ(avps[7].code(), avp_code::vendor_specific_application_id);
  EXPECT_EQ(avps[8].flags(), avp_flags::vendor);
  EXPECT_EQ(avps[8].vendor_id(), 10415U);
  EXPECT_EQ(avps[8].as_integer32(), 1004);
}

TEST(message_builder, dictionary_entries_reject_mismatched_values) {
  const dictionary& d = dictionary::base();
  auto fails = [&](const char* name, const avp_value& v, error expected) {
    std::vector<std::uint8_t> out;
    message_builder b(out, request());
    b.add(*d.find_avp(name), v);
    EXPECT_EQ(b.error(), expected) << name;
  };
  fails("Result-Code", std::int32_t{2001}, error::type_mismatch);
  fails("Origin-Host", std::uint32_t{1}, error::type_mismatch);
  fails("Disconnect-Cause", std::uint32_t{1}, error::type_mismatch);
  fails("Host-IP-Address", std::string_view("127.0.0.1"), error::type_mismatch);
  fails("Proxy-Info", std::string_view("x"), error::type_mismatch);
  fails("Session-Id", std::string_view("\xff"), error::invalid_utf8);
  std::vector<std::uint8_t> out;
  message_builder b(out, request());
  b.begin_group(*d.find_avp("Origin-Host"));
  EXPECT_EQ(b.error(), error::type_mismatch);
}

TEST(message_builder, copies_received_avps_as_they_are) {
  // Rebuild every sample from its parsed top-level AVPs: the bytes must come out identical.
  for (const auto& msg : test::base_messages()) {
    const auto m = parse_ok(msg);
    std::vector<std::uint8_t> out;
    message_builder b(out, m.header());
    for (const avp& a : m.avps())
      b.add_avp(a);
    EXPECT_EQ(out.size(), msg.size());
    const auto bytes = b.finish();
    EXPECT_TRUE(std::ranges::equal(bytes, msg));
  }
}

TEST(message_builder, every_base_message_parses_back) {
  for (const auto& msg : test::base_messages()) {
    const auto m = parse_ok(msg);
    EXPECT_EQ(m.header().length, msg.size());
  }
}

}  // namespace
}  // namespace diampool
