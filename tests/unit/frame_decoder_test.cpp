#include "diampool/frame_decoder.hpp"

#include <gtest/gtest.h>

#include "diampool/error.hpp"
#include "samples.hpp"

namespace diampool {
namespace {

using bytes = std::vector<std::uint8_t>;

// Feeds `stream` in pieces cut at `cuts` (offsets), returns the messages decoded (copied) and
// the first error.
std::pair<std::vector<bytes>, std::error_code> feed(frame_decoder& d, const bytes& stream,
                                                    const std::vector<std::size_t>& cuts) {
  std::vector<bytes> out;
  std::size_t from = 0;
  auto piece = [&](std::size_t to) -> std::error_code {
    std::span<const std::uint8_t> chunk(stream.data() + from, to - from);
    while (!chunk.empty()) {
      std::error_code ec;
      const auto r = d.put(chunk, ec);
      EXPECT_LE(r.consumed, chunk.size());
      if (r.status == decode_status::error) return ec;
      EXPECT_FALSE(ec);
      if (r.status == decode_status::message) {
        const auto m = d.message().bytes();
        out.emplace_back(m.begin(), m.end());
      } else {
        EXPECT_EQ(r.consumed, chunk.size());  // need_more consumes everything
      }
      chunk = chunk.subspan(r.consumed);
    }
    return {};
  };
  for (std::size_t cut : cuts) {
    if (auto ec = piece(cut)) return {out, ec};
    from = cut;
  }
  return {out, piece(stream.size())};
}

TEST(frame_decoder, decodes_each_message_whole_in_place) {
  for (const auto& msg : test::base_messages()) {
    frame_decoder d;
    std::error_code ec;
    const auto r = d.put(msg, ec);
    ASSERT_EQ(r.status, decode_status::message);
    EXPECT_EQ(r.consumed, msg.size());
    EXPECT_EQ(d.message().bytes().data(), msg.data());  // viewed in place, no copy
    EXPECT_EQ(d.message().header().length, msg.size());
  }
}

TEST(frame_decoder, decodes_each_message_split_at_every_offset) {
  for (const auto& msg : test::base_messages()) {
    for (std::size_t cut = 1; cut < msg.size(); ++cut) {
      frame_decoder d;
      auto [msgs, ec] = feed(d, msg, {cut});
      ASSERT_FALSE(ec) << cut;
      ASSERT_EQ(msgs.size(), 1U) << cut;
      EXPECT_EQ(msgs[0], msg) << cut;
    }
  }
}

TEST(frame_decoder, decodes_each_message_one_byte_at_a_time) {
  for (const auto& msg : test::base_messages()) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < msg.size(); ++i)
      cuts.push_back(i);
    frame_decoder d;
    auto [msgs, ec] = feed(d, msg, cuts);
    ASSERT_FALSE(ec);
    ASSERT_EQ(msgs.size(), 1U);
    EXPECT_EQ(msgs[0], msg);
  }
}

TEST(frame_decoder, splits_a_stream_of_messages_at_every_offset) {
  const auto all = test::base_messages();
  bytes stream;
  for (const auto& m : all)
    stream.insert(stream.end(), m.begin(), m.end());
  for (std::size_t cut = 0; cut <= stream.size(); cut += 3) {
    frame_decoder d;
    auto [msgs, ec] = feed(d, stream, {cut, std::min(stream.size(), cut + 7)});
    ASSERT_FALSE(ec);
    ASSERT_EQ(msgs, all) << cut;
    EXPECT_EQ(d.bytes_needed(), header_size);
  }
}

TEST(frame_decoder, says_how_many_bytes_it_needs) {
  const auto msg = test::hex(test::reference_cer_hex);
  frame_decoder d;
  EXPECT_EQ(d.bytes_needed(), 20U);
  std::error_code ec;
  d.put(std::span(msg).first(5), ec);
  EXPECT_EQ(d.bytes_needed(), 15U);
  d.put(std::span(msg).subspan(5, 20), ec);
  EXPECT_EQ(d.bytes_needed(), 103U);
}

bytes header_with_length(std::uint32_t length, std::uint8_t version = 1) {
  bytes b(20, 0);
  b[0] = version;
  b[1] = static_cast<std::uint8_t>(length >> 16);
  b[2] = static_cast<std::uint8_t>(length >> 8);
  b[3] = static_cast<std::uint8_t>(length);
  b[4] = cmd_flags::request;
  return b;
}

TEST(frame_decoder, rejects_hostile_headers_whole_and_byte_by_byte) {
  const std::pair<bytes, error> cases[] = {
      {header_with_length(0), error::message_too_short},
      {header_with_length(19), error::message_too_short},
      {header_with_length(16 * 1024 * 1024 - 4), error::message_too_long},
      {header_with_length(0xFFFFFC), error::message_too_long},
      {header_with_length(default_max_message_size + 4), error::message_too_long},
      {header_with_length(22), error::bad_message_length},
      {header_with_length(20, 2), error::bad_version},
      {header_with_length(20, 0), error::bad_version},
  };
  for (const auto& [hdr, expected] : cases) {
    {
      frame_decoder d;
      std::error_code ec;
      const auto r = d.put(hdr, ec);
      EXPECT_EQ(r.status, decode_status::error);
      EXPECT_EQ(ec, expected);
      EXPECT_EQ(ec, condition::malformed_message);
    }
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < hdr.size(); ++i)
      cuts.push_back(i);
    frame_decoder d;
    auto [msgs, ec] = feed(d, hdr, cuts);
    EXPECT_TRUE(msgs.empty());
    EXPECT_EQ(ec, expected);
  }
}

TEST(frame_decoder, honours_a_configured_maximum) {
  const auto msg = test::hex(test::reference_cer_hex);
  std::error_code ec;
  frame_decoder small(124);
  EXPECT_EQ(small.put(msg, ec).status, decode_status::error);
  EXPECT_EQ(ec, error::message_too_long);
  frame_decoder exact(128);
  EXPECT_EQ(exact.put(msg, ec).status, decode_status::message);
  EXPECT_EQ(exact.max_message_size(), 128U);
}

TEST(frame_decoder, errors_are_sticky_until_reset) {
  const auto msg = test::hex(test::reference_cer_hex);
  frame_decoder d;
  std::error_code ec;
  d.put(header_with_length(4), ec);
  ASSERT_EQ(ec, error::message_too_short);
  const auto r = d.put(msg, ec);
  EXPECT_EQ(r.status, decode_status::error);
  EXPECT_EQ(r.consumed, 0U);
  EXPECT_EQ(ec, error::message_too_short);
  d.reset();
  EXPECT_EQ(d.put(msg, ec).status, decode_status::message);
  EXPECT_FALSE(ec);
}

TEST(frame_decoder, reset_drops_a_partial_message) {
  const auto msg = test::hex(test::reference_cer_hex);
  frame_decoder d;
  std::error_code ec;
  d.put(std::span(msg).first(50), ec);
  d.reset();
  const auto r = d.put(msg, ec);
  EXPECT_EQ(r.status, decode_status::message);
  EXPECT_EQ(r.consumed, msg.size());
}

TEST(frame_decoder, delivers_a_message_with_a_truncated_avp_for_the_walk_to_reject) {
  // Framing is fine (length matches) but the last AVP claims more than the message holds.
  auto msg = test::hex(test::reference_cer_hex);
  msg[128 - 12 + 7] = 0x40;  // Auth-Application-Id length 64
  frame_decoder d;
  std::error_code ec;
  ASSERT_EQ(d.put(msg, ec).status, decode_status::message);
  EXPECT_EQ(check_avps(d.message(), dictionary::base()), error::avp_overrun);
}

TEST(frame_decoder, empty_input_needs_more) {
  frame_decoder d;
  std::error_code ec;
  const auto r = d.put({}, ec);
  EXPECT_EQ(r.status, decode_status::need_more);
  EXPECT_EQ(r.consumed, 0U);
}

}  // namespace
}  // namespace diampool
