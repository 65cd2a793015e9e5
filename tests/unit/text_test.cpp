#include "diampool/detail/text.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "diampool/types.hpp"

namespace diampool::detail {
namespace {

// A decoder written from RFC 3629's definition: the code point's value decides (no overlong
// form, no surrogate, at most U+10FFFF), not a table of allowed second bytes.
std::size_t reference_length(std::string_view s) {
  const auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  std::uint32_t cp = 0, min = 0;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1Fu, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0Fu, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

TEST(utf8_sequence_length, agrees_with_the_definition_on_every_sequence_up_to_three_bytes) {
  std::string s(3, '\0');
  for (unsigned a = 0; a < 256; ++a) {
    s.resize(1);
    s[0] = static_cast<char>(a);
    ASSERT_EQ(utf8_sequence_length(s, 0), reference_length(s)) << a;
    s.resize(2);
    for (unsigned b = 0; b < 256; ++b) {
      s[1] = static_cast<char>(b);
      ASSERT_EQ(utf8_sequence_length(s, 0), reference_length(s)) << a << " " << b;
    }
    if (a < 0xE0 || a > 0xEF) continue;  // three-byte leads only: 16 x 64 K
    s.resize(3);
    for (unsigned b = 0; b < 256; ++b) {
      for (unsigned c = 0; c < 256; ++c) {
        s[1] = static_cast<char>(b);
        s[2] = static_cast<char>(c);
        ASSERT_EQ(utf8_sequence_length(s, 0), reference_length(s)) << a << " " << b << " " << c;
      }
    }
  }
}

TEST(utf8_sequence_length, agrees_with_the_definition_on_four_byte_sequences) {
  std::mt19937 rng(7);
  std::string s(4, '\0');
  for (unsigned a = 0xF0; a < 0x100; ++a) {
    s[0] = static_cast<char>(a);
    for (unsigned b = 0; b < 256; ++b) {
      s[1] = static_cast<char>(b);
      for (int k = 0; k < 64; ++k) {  // the last two bytes mostly continuation bytes
        s[2] = static_cast<char>(k % 8 == 0 ? rng() : 0x80 | (rng() & 0x3F));
        s[3] = static_cast<char>(k % 8 == 1 ? rng() : 0x80 | (rng() & 0x3F));
        ASSERT_EQ(utf8_sequence_length(s, 0), reference_length(s)) << a << " " << b;
      }
    }
  }
  // Edges: the first and last code points of four bytes, one past the end, truncated.
  EXPECT_EQ(utf8_sequence_length("\xf0\x90\x80\x80", 0), 4U);
  EXPECT_EQ(utf8_sequence_length("\xf4\x8f\xbf\xbf", 0), 4U);
  EXPECT_EQ(utf8_sequence_length("\xf4\x90\x80\x80", 0), 0U);
  EXPECT_EQ(utf8_sequence_length("\xf0\x9f\x98", 0), 0U);
  // A sequence in the middle of a text is measured where it starts.
  EXPECT_EQ(utf8_sequence_length("ab\xe2\x82\xac", 2), 3U);
  EXPECT_EQ(utf8_sequence_length("ab\xe2\x82", 2), 0U);
}

TEST(is_valid_utf8, is_every_sequence_well_formed) {
  EXPECT_TRUE(is_valid_utf8("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("plain \xc3\xa9 \xe2\x82 \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("ends in a lead \xc3"));
}

std::string escaped(std::string_view s, bool quote = true) {
  std::string out;
  append_json_escaped(out, s, quote);
  return out;
}

TEST(append_json_escaped, escapes_quotes_backslashes_and_every_control_character) {
  EXPECT_EQ(escaped(R"(say "hi" \ bye)"), R"(say \"hi\" \\ bye)");
  EXPECT_EQ(escaped(R"(say "hi")", false), R"(say "hi")");  // quotes left when asked
  EXPECT_EQ(escaped("\n\r\t\b\f"), R"(\n\r\t\b\f)");
  EXPECT_EQ(escaped(std::string_view("a\0b", 3)), R"(a\u0000b)");
  EXPECT_EQ(escaped("\x1b[31m"), R"(\u001b[31m)");
  EXPECT_EQ(escaped("\x1f\x20"), "\\u001f ");
  EXPECT_EQ(escaped("del\x7f"), R"(del\u007f)");
  EXPECT_EQ(escaped("c1 \xc2\x85 \xc2\x9f, not \xc2\xa0"), "c1 \\u0085 \\u009f, not \xc2\xa0");
}

TEST(append_json_escaped, keeps_valid_utf8_and_replaces_each_invalid_byte) {
  EXPECT_EQ(escaped("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
            "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(escaped("a\xff"), R"(a\ufffd)");
  EXPECT_EQ(escaped("\xc3\x28"), R"(\ufffd()");                 // lead without continuation
  EXPECT_EQ(escaped("\xe2\x82"), R"(\ufffd\ufffd)");            // truncated at the end
  EXPECT_EQ(escaped("\xed\xa0\x80"), R"(\ufffd\ufffd\ufffd)");  // a surrogate
  EXPECT_EQ(escaped("\xc0\xaf"), R"(\ufffd\ufffd)");            // overlong '/'
  // Whatever the bytes, the result is valid UTF-8.
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string s(static_cast<std::size_t>(rng() % 16), '\0');
    for (auto& c : s)
      c = static_cast<char>(rng());
    EXPECT_TRUE(is_valid_utf8(escaped(s)));
  }
}

TEST(append_json_string, quotes_the_escaped_text_and_appends) {
  std::string out = "x=";
  append_json_string(out, "a\"b");
  EXPECT_EQ(out, R"(x="a\"b")");
  append_json_string(out, "");
  EXPECT_EQ(out, R"(x="a\"b""")");
}

}  // namespace
}  // namespace diampool::detail
