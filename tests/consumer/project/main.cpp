// Builds a DWR with the installed diampool, decodes it back and checks the round trip.
#include <diampool/diampool.hpp>

#include <cstdio>

int main() {
  std::vector<std::uint8_t> out;
  diampool::message_header h;
  h.flags = diampool::cmd_flags::request;
  h.command_code = diampool::command::device_watchdog;
  h.hop_by_hop = 42;
  diampool::message_builder b(out, h);
  b.add_string(diampool::avp_code::origin_host, "consumer.example.com")
      .add_string(diampool::avp_code::origin_realm, "example.com");
  const auto bytes = b.finish();

  diampool::frame_decoder decoder;
  std::error_code ec;
  const auto r = decoder.put(bytes, ec);
  if (r.status != diampool::decode_status::message || decoder.message().header().hop_by_hop != 42) {
    std::puts("round trip failed");
    return 1;
  }
  std::fputs(diampool::to_text(decoder.message()).c_str(), stdout);
  return 0;
}
