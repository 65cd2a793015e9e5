#include "diampool/print.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "diampool/error.hpp"
#include "samples.hpp"

namespace diampool {
namespace {

// Golden files: tests/unit/golden/*.txt hold a hex block, a line "----", then the exact
// text to_text() must render for it.
TEST(to_text, matches_every_golden_file) {
  const std::filesystem::path dir =
      std::filesystem::path(DIAMPOOL_SOURCE_DIR) / "tests/unit/golden";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".txt") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string content = ss.str();
    const auto sep = content.find("\n----\n");
    ASSERT_NE(sep, std::string::npos) << entry.path();
    bool ok = false;
    const auto bytes = from_hex(content.substr(0, sep), ok);
    ASSERT_TRUE(ok) << entry.path();
    std::error_code ec;
    const auto msg = message_view::parse(bytes, ec);
    ASSERT_FALSE(ec) << entry.path();
    EXPECT_EQ(to_text(msg), content.substr(sep + 6)) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 3);
}

TEST(to_text, renders_the_reference_cer_by_name) {
  const auto bytes = test::hex(test::reference_cer_hex);
  std::error_code ec;
  const std::string text = to_text(message_view::parse(bytes, ec));
  EXPECT_NE(text.find("CER Capabilities-Exchange-Request"), std::string::npos);
  EXPECT_NE(text.find("Origin-Host (264) [-M-] DiameterIdentity: \"client.example.com\""),
            std::string::npos);
  EXPECT_NE(text.find("Host-IP-Address (257) [-M-] Address: 127.0.0.1"), std::string::npos);
  EXPECT_NE(text.find("Product-Name (269) [---] UTF8String: \"lab-pyclient\""), std::string::npos);
}

TEST(to_text, shows_unknown_avps_and_commands_by_code) {
  std::vector<std::uint8_t> out;
  message_header h;
  h.flags = cmd_flags::request;
  h.command_code = 16777214;
  h.application_id = 16777215;
  message_builder b(out, h);
  b.add_unsigned32(1000, 0x0a0b0c0d, avp_flags::mandatory, 999999);
  std::error_code ec;
  const std::string text = to_text(message_view::parse(b.finish(), ec));
  EXPECT_NE(text.find("Command 16777214 Request"), std::string::npos) << text;
  EXPECT_NE(text.find("AVP (1000, vendor 999999) [VM-] 4 bytes: 0a0b0c0d"), std::string::npos)
      << text;
}

TEST(to_text, ends_with_a_note_on_malformed_avps) {
  auto bytes = test::hex(test::reference_cer_hex);
  bytes[20 + 28 + 7] = 0x7f;  // Origin-Realm runs past the message
  std::error_code ec;
  const std::string text = to_text(message_view::parse(bytes, ec));
  EXPECT_NE(text.find("Origin-Host"), std::string::npos);
  EXPECT_EQ(text.find("Origin-Realm"), std::string::npos);
  EXPECT_NE(text.find("!! malformed: AVP runs past the end of its parent"), std::string::npos)
      << text;
}

TEST(to_text, flags_values_that_do_not_fit_their_type) {
  std::vector<std::uint8_t> out;
  message_header h;
  h.command_code = 280;
  message_builder b(out, h);
  b.add_string(avp_code::result_code, "abc");           // Unsigned32 of 3 bytes
  b.add_string(avp_code::host_ip_address, "\x00\x01");  // Address without the address
  std::error_code ec;
  const std::string text = to_text(message_view::parse(b.finish(), ec));
  EXPECT_NE(text.find("Result-Code (268) [-M-] Unsigned32: !! AVP data has the wrong size"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Host-IP-Address (257) [-M-] Address: !! malformed Address AVP"),
            std::string::npos)
      << text;
}

TEST(to_text, escapes_control_characters_in_strings) {
  std::vector<std::uint8_t> out;
  message_header h;
  h.command_code = 280;
  message_builder b(out, h);
  b.add_string(avp_code::origin_host, "a\"b\\c\n\x01");
  std::error_code ec;
  const std::string text = to_text(message_view::parse(b.finish(), ec));
  EXPECT_NE(text.find(R"("a\"b\\c\x0a\x01")"), std::string::npos) << text;
}

TEST(hex, round_trips_and_rejects_bad_input) {
  const std::vector<std::uint8_t> bytes = {0x00, 0x7f, 0x80, 0xff};
  EXPECT_EQ(to_hex(bytes), "007f80ff");
  bool ok = false;
  EXPECT_EQ(from_hex("00 7F:80\nff", ok), bytes);
  EXPECT_TRUE(ok);
  EXPECT_EQ(from_hex("0x007f80ff", ok), bytes);
  EXPECT_TRUE(ok);
  from_hex("abc", ok);
  EXPECT_FALSE(ok);
  from_hex("zz", ok);
  EXPECT_FALSE(ok);
  EXPECT_TRUE(from_hex("", ok).empty());
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace diampool
