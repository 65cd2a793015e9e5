// The README's codec snippet, compiled and run by the tests (tests/component/readme_check.sh
// checks that the README shows exactly the lines between the markers).
#include <cstdio>

// clang-format off

// README-BEGIN
#include <diampool/diampool.hpp>
using namespace diampool;

// README-END
int main() {
  // README-BEGIN
std::vector<std::uint8_t> wire;                       // reused: no allocation once warm
message_header h{.flags = cmd_flags::request, .command_code = command::device_watchdog,
                 .hop_by_hop = 7, .end_to_end = 7};
message_builder b(wire, h);                           // AVPs are written in place
b.add_string(avp_code::origin_host, "client.example.com")
 .add_string(avp_code::origin_realm, "example.com");
auto bytes = b.finish();                              // throws, or finish(ec) to get an error_code

frame_decoder decoder;                                // max message size checked before allocating
std::error_code ec;
if (decoder.put(bytes, ec).status == decode_status::message) {
  const message_view& msg = decoder.message();        // views the bytes in place
  if (!check_avps(msg, dictionary::base()))           // lengths, padding, nesting depth
    for (const avp& a : msg.avps()) std::puts(to_text(a).c_str());
}
  // README-END
  return 0;
}
// clang-format on
