// Building and reading Diameter messages with the diampool codec: a CEA built by dictionary
// name, framed out of a byte stream that arrives in pieces, read back AVP by AVP.
#include <diampool/diampool.hpp>

#include <cstdio>

int main() {
  using namespace diampool;
  const dictionary& dict = dictionary::base();

  // Build: every AVP is written straight into `wire`; lengths are patched at the end.
  std::vector<std::uint8_t> wire;
  message_header h;
  h.command_code = command::capabilities_exchange;  // an answer: R flag clear
  h.hop_by_hop = 0x1001;
  h.end_to_end = 0x2002;
  message_builder b(wire, h);
  b.add(*dict.find_avp("Result-Code"), std::uint32_t{result_code::success})
      .add(*dict.find_avp("Origin-Host"), std::string_view("peer.example.net"))
      .add(*dict.find_avp("Origin-Realm"), std::string_view("example.net"))
      .add(*dict.find_avp("Host-IP-Address"), *ip_address::parse("::1"))
      .add(*dict.find_avp("Vendor-Id"), std::uint32_t{0})
      .add(*dict.find_avp("Product-Name"), std::string_view("example"));
  auto vsai = b.begin_group(*dict.find_avp("Vendor-Specific-Application-Id"));
  b.add(*dict.find_avp("Vendor-Id"), std::uint32_t{vendor::tgpp})
      .add(*dict.find_avp("Auth-Application-Id"), std::uint32_t{16777251});
  b.end_group(vsai);
  std::error_code ec;
  const auto bytes = b.finish(ec);
  if (ec) {
    std::fprintf(stderr, "build failed: %s\n", ec.message().c_str());
    return 1;
  }

  // Frame: feed the bytes as a socket would deliver them, 7 at a time.
  frame_decoder decoder;
  for (std::size_t off = 0; off < bytes.size();) {
    const auto piece = std::span(bytes).subspan(off, std::min<std::size_t>(7, bytes.size() - off));
    const decode_result r = decoder.put(piece, ec);
    if (r.status == decode_status::error) {
      std::fprintf(stderr, "malformed: %s\n", ec.message().c_str());
      return 1;
    }
    off += r.consumed;
    if (r.status != decode_status::message) continue;

    // Read: check the structure once, then pick values out.
    const message_view& msg = decoder.message();
    if (auto bad = check_avps(msg, dict)) {
      std::fprintf(stderr, "malformed AVPs: %s\n", bad.message().c_str());
      return 1;
    }
    const auto rc = msg.find(avp_code::result_code);
    std::printf("answer hop-by-hop 0x%x, Result-Code %u\n", msg.header().hop_by_hop,
                rc ? rc->as_unsigned32() : 0U);
    std::fputs(to_text(msg, dict).c_str(), stdout);
  }
  return 0;
}
