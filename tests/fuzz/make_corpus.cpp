// Writes the seed corpus of fuzz_codec into a directory (tests/fuzz/corpus/codec is its
// committed output; this program is built but never run by the build):
//   make_corpus DIR
// Each seed is one schedule byte (how fuzz_codec cuts the stream into put() calls, see
// fuzz_codec.cpp) followed by a Diameter byte stream: valid base protocol and application
// messages built with message_builder, streams of several messages, and hostile frames.
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/print.hpp"

namespace {

using namespace diampool;
using bytes = std::vector<std::uint8_t>;

// Schedule bytes understood by fuzz_codec.
namespace schedule {
constexpr std::uint8_t whole = 0;                    // the whole stream in one put()
constexpr std::uint8_t one_byte = 1;                 // one byte per put()
constexpr std::uint8_t chunks_of_3 = (2 << 3) | 2;   // p = 2: 3-byte chunks
constexpr std::uint8_t chunks_of_21 = (2 << 3) | 3;  // p = 2: 7 * 3 bytes
constexpr std::uint8_t needed = 4;                   // exactly bytes_needed()
constexpr std::uint8_t needed_plus_5 = (5 << 3) | 5;
constexpr std::uint8_t random = (9 << 3) | 6;
constexpr std::uint8_t cycle = (3 << 3) | 7;
constexpr std::uint8_t small_max = 0x80;  // OR-ed in: 256-byte maximum message size
}  // namespace schedule

constexpr std::uint32_t tgpp = vendor::tgpp;

message_header header(std::uint32_t command_code, bool request, std::uint32_t app = 0,
                      std::uint32_t hbh = 0x1000, std::uint8_t extra_flags = 0) {
  message_header h;
  h.flags = static_cast<std::uint8_t>((request ? cmd_flags::request : 0) | extra_flags);
  h.command_code = command_code;
  h.application_id = app;
  h.hop_by_hop = hbh;
  h.end_to_end = 0x5a5a0000 | hbh;
  return h;
}

template <typename Fill>
bytes build(const message_header& h, Fill fill) {
  bytes out;
  message_builder b(out, h);
  fill(b);
  b.finish();  // throws on a builder error
  return out;
}

bytes cer() {
  return build(header(command::capabilities_exchange, true), [](message_builder& b) {
    b.add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_address(avp_code::host_ip_address, ip_address::v4({192, 0, 2, 7}))
        .add_address(avp_code::host_ip_address, *ip_address::parse("2001:db8::7"))
        .add_unsigned32(avp_code::vendor_id, 0)
        .add_string(avp_code::product_name, "diampool", 0)
        .add_unsigned32(avp_code::origin_state_id, 1700000000)
        .add_unsigned32(avp_code::supported_vendor_id, tgpp)
        .add_unsigned32(avp_code::auth_application_id, application::credit_control)
        .add_unsigned32(avp_code::inband_security_id, 0)
        .add_unsigned32(avp_code::acct_application_id, application::base_accounting);
    auto g = b.begin_group(avp_code::vendor_specific_application_id);
    b.add_unsigned32(avp_code::vendor_id, tgpp)
        .add_unsigned32(avp_code::auth_application_id, 16777238);
    b.end_group(g);
    b.add_unsigned32(avp_code::firmware_revision, 1, 0);
  });
}

bytes cea() {
  return build(header(command::capabilities_exchange, false), [](message_builder& b) {
    b.add_unsigned32(avp_code::result_code, result_code::success)
        .add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net")
        .add_address(avp_code::host_ip_address, *ip_address::parse("::1"))
        .add_unsigned32(avp_code::vendor_id, 10415)
        .add_string(avp_code::product_name, "peer", 0)
        .add_unsigned32(avp_code::auth_application_id, application::relay);
  });
}

bytes cea_error() {
  const message_header h =
      header(command::capabilities_exchange, false, 0, 0x1001, cmd_flags::error);
  return build(h, [](message_builder& b) {
    b.add_unsigned32(avp_code::result_code, result_code::no_common_application)
        .add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net")
        .add_string(avp_code::error_message, "no common application \xc3\xa9t\xc3\xa9", 0);
    auto failed = b.begin_group(avp_code::failed_avp);
    b.add_unsigned32(avp_code::auth_application_id, 99);
    b.end_group(failed);
  });
}

bytes dwr() {
  return build(header(command::device_watchdog, true, 0, 0x2000), [](message_builder& b) {
    b.add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_unsigned32(avp_code::origin_state_id, 7);
  });
}

bytes dwa() {
  return build(header(command::device_watchdog, false, 0, 0x2000), [](message_builder& b) {
    b.add_unsigned32(avp_code::result_code, result_code::success)
        .add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net");
  });
}

bytes dpr() {
  return build(header(command::disconnect_peer, true, 0, 0x3000), [](message_builder& b) {
    b.add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_integer32(avp_code::disconnect_cause, disconnect_cause::do_not_want_to_talk_to_you);
  });
}

bytes dpa() {
  return build(header(command::disconnect_peer, false, 0, 0x3000), [](message_builder& b) {
    b.add_unsigned32(avp_code::result_code, result_code::success)
        .add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net");
  });
}

bytes acr() {
  const message_header h = header(command::accounting, true, application::base_accounting, 0x4000,
                                  cmd_flags::proxiable | cmd_flags::retransmit);
  return build(h, [](message_builder& b) {
    b.add_string(avp_code::session_id, "client.example.com;1700000000;42")
        .add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_string(avp_code::destination_realm, "example.net")
        .add_integer32(avp_code::accounting_record_type, 2)
        .add_unsigned32(avp_code::accounting_record_number, 0)
        .add_unsigned32(avp_code::acct_application_id, application::base_accounting)
        .add_string(avp_code::user_name, "alice@example.com")
        .add_unsigned64(avp_code::accounting_sub_session_id, 0x0123456789abcdefULL)
        .add_time(avp_code::event_timestamp, diameter_time{std::chrono::seconds{1700000000}});
    auto proxy = b.begin_group(avp_code::proxy_info);
    b.add_string(avp_code::proxy_host, "proxy.example.org")
        .add_string(avp_code::proxy_state, std::string_view("\x00\x01\x02", 3));
    b.end_group(proxy);
    b.add_string(avp_code::route_record, "relay.example.org");
  });
}

// A credit-control style request: vendor-specific 3GPP AVPs, 64-bit and float values, and
// AVPs the base dictionary does not know.
bytes ccr() {
  const message_header h =
      header(272, true, application::credit_control, 0x5000, cmd_flags::proxiable);
  return build(h, [](message_builder& b) {
    b.add_string(avp_code::session_id, "gw.example.com;1;2;3")
        .add_string(avp_code::origin_host, "gw.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_string(avp_code::destination_realm, "ocs.example.com")
        .add_unsigned32(avp_code::auth_application_id, application::credit_control)
        .add_integer32(416, 1)                                      // CC-Request-Type
        .add_unsigned32(415, 0)                                     // CC-Request-Number
        .add_integer64(447, -5, 0x40)                               // unknown code as Integer64
        .add_float32(9001, 1.5f, 0)                                 // unknown code as Float32
        .add_float64(9002, -0.25, 0)                                // unknown code as Float64
        .add_string(30, "internet", avp_flags::mandatory, tgpp);    // vendor-specific
    auto service = b.begin_group(873, avp_flags::mandatory, tgpp);  // Service-Information
    auto ps = b.begin_group(874, avp_flags::mandatory, tgpp);       // PS-Information
    b.add_unsigned32(2, 17, avp_flags::mandatory, tgpp)
        .add_address(6, ip_address::v4({10, 1, 2, 3}), avp_flags::mandatory, tgpp);
    b.end_group(ps);
    b.end_group(service);
    auto er = b.begin_group(avp_code::experimental_result);
    b.add_unsigned32(avp_code::vendor_id, tgpp)
        .add_unsigned32(avp_code::experimental_result_code, 5030);
    b.end_group(er);
  });
}

// Grouped AVPs the dictionary knows, nested several levels.
bytes nested_grouped() {
  return build(header(command::session_termination, false, 0, 0x6000), [](message_builder& b) {
    b.add_string(avp_code::session_id, "s;1")
        .add_unsigned32(avp_code::result_code, result_code::unable_to_comply);
    auto failed = b.begin_group(avp_code::failed_avp);
    auto vsai = b.begin_group(avp_code::vendor_specific_application_id);
    b.add_unsigned32(avp_code::vendor_id, tgpp);
    auto proxy = b.begin_group(avp_code::proxy_info);
    b.add_string(avp_code::proxy_host, "p.example");
    auto e2e = b.begin_group(avp_code::e2e_sequence);
    auto empty = b.begin_group(avp_code::failed_avp);
    b.end_group(empty);
    b.add_string(avp_code::proxy_state, "x");
    b.end_group(e2e);
    b.end_group(proxy);
    b.end_group(vsai);
    b.end_group(failed);
  });
}

// Failed-AVP nested `depth` deep: beyond the decoder's default limit of 16 at 20.
bytes nested_deep(int depth) {
  return build(header(command::abort_session, false, 0, 0x7000), [depth](message_builder& b) {
    std::vector<message_builder::group> open;
    for (int i = 0; i < depth; ++i)
      open.push_back(b.begin_group(avp_code::failed_avp));
    b.add_unsigned32(avp_code::result_code, result_code::success);
    while (!open.empty()) {
      b.end_group(open.back());
      open.pop_back();
    }
  });
}

// Values the typed accessors must reject or print carefully.
bytes odd_values() {
  return build(header(command::re_auth, true, 0, 0x8000), [](message_builder& b) {
    const std::uint8_t e164[] = {0, 8, '1', '2', '3'};
    const std::uint8_t v4_short[] = {0, 1, 10, 0, 0};
    const std::uint8_t one_byte[] = {1};
    const std::uint8_t time_max[] = {0xff, 0xff, 0xff, 0xff};
    const std::uint8_t time_zero[] = {0, 0, 0, 0};
    const std::uint8_t time_short[] = {0, 0, 0};
    b.add_string(avp_code::session_id, "bad \xc3\x28 utf8 \xed\xa0\x80")
        .add_string(avp_code::user_name, "\xf4\x90\x80\x80")
        .add_octets(avp_code::host_ip_address, e164)
        .add_octets(avp_code::host_ip_address, v4_short)
        .add_octets(avp_code::host_ip_address, one_byte)
        .add_octets(avp_code::event_timestamp, time_max)
        .add_octets(avp_code::event_timestamp, time_zero)
        .add_octets(avp_code::event_timestamp, time_short)
        .add_octets(avp_code::result_code, one_byte)
        .add_octets(avp_code::accounting_sub_session_id, time_max)
        .add_integer32(avp_code::re_auth_request_type, 77)
        .add_string(avp_code::origin_host, std::string_view("a\0\"\\\x7f", 5));
  });
}

bytes header_only() {
  return build(header(command::device_watchdog, true, 0, 1), [](auto&) {});
}

// A message of exactly `length` bytes (a multiple of 4, at least 28): one octet AVP.
bytes sized(std::size_t length) {
  return build(header(command::device_watchdog, true, 0, 2), [length](message_builder& b) {
    const std::vector<std::uint8_t> data(length - header_size - 8, 0x61);
    b.add_octets(avp_code::proxy_state, data);
  });
}

void put24(bytes& m, std::size_t at, std::uint32_t v) {
  m[at] = static_cast<std::uint8_t>(v >> 16);
  m[at + 1] = static_cast<std::uint8_t>(v >> 8);
  m[at + 2] = static_cast<std::uint8_t>(v);
}

bytes operator+(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A message whose body is the raw bytes `body` (padded by the caller as the case needs).
bytes raw_message(const bytes& body) {
  bytes m = header_only() + body;
  put24(m, 1, static_cast<std::uint32_t>(m.size()));
  return m;
}

bytes avp_raw(std::uint32_t code, std::uint8_t flags, std::uint32_t length, const bytes& rest) {
  bytes a = {static_cast<std::uint8_t>(code >> 24),
             static_cast<std::uint8_t>(code >> 16),
             static_cast<std::uint8_t>(code >> 8),
             static_cast<std::uint8_t>(code),
             flags,
             0,
             0,
             0};
  put24(a, 5, length);
  return a + rest;
}

struct seed {
  std::string name;
  std::uint8_t schedule;
  bytes stream;
};

std::vector<seed> seeds() {
  bool ok = false;
  // The reference CER (freeDiameter and Erlang/OTP diameter accept it).
  const bytes reference_cer = from_hex(
      "0100008080000101000000000000000100000001000001084000001a636c6965"
      "6e742e6578616d706c652e636f6d000000000128400000136578616d706c652e"
      "636f6d00000001014000000e00017f00000100000000010a4000000c00000000"
      "0000010d000000146c61622d7079636c69656e74000001024000000c00ffffff",
      ok);
  if (!ok) throw std::logic_error("bad reference CER hex");

  std::vector<seed> s;
  s.push_back({"cer", schedule::whole, cer()});
  s.push_back({"cer_one_byte", schedule::one_byte, cer()});
  s.push_back({"cer_reference", schedule::needed, reference_cer});
  s.push_back({"cea", schedule::chunks_of_3, cea()});
  s.push_back({"cea_error", schedule::cycle, cea_error()});
  s.push_back({"dwr", schedule::whole, dwr()});
  s.push_back({"dwa", schedule::random, dwa()});
  s.push_back({"dpr", schedule::needed_plus_5, dpr()});
  s.push_back({"dpa", schedule::chunks_of_21, dpa()});
  s.push_back({"acr", schedule::whole, acr()});
  s.push_back({"ccr_vendor", schedule::one_byte, ccr()});
  s.push_back({"stream_cer_cea_dwr_dwa", schedule::chunks_of_21, cer() + cea() + dwr() + dwa()});
  s.push_back({"stream_dpr_dpa_needed", schedule::needed_plus_5, dpr() + dpa() + header_only()});
  s.push_back({"nested_grouped", schedule::random, nested_grouped()});
  s.push_back({"nested_20_deep", schedule::whole, nested_deep(20)});
  s.push_back({"odd_values", schedule::whole, odd_values()});
  s.push_back({"header_only", schedule::one_byte, header_only()});
  s.push_back({"small_max_exact_256", schedule::small_max | schedule::needed, sized(256)});
  s.push_back({"small_max_too_long_260", schedule::small_max | schedule::whole, sized(260)});

  // ---- hostile frames ----
  bytes m = dwr();
  put24(m, 1, 16);  // Message Length below the header size
  s.push_back({"bad_length_16", schedule::whole, m});
  m = dwr();
  put24(m, 1, 0xFFFFFC);  // 16 MiB: over any maximum
  s.push_back({"bad_length_16mib", schedule::one_byte, m});
  m = dwr();
  put24(m, 1, static_cast<std::uint32_t>(m.size() - 2));  // not a multiple of 4
  s.push_back({"bad_length_unaligned", schedule::chunks_of_3, m});
  m = dwr();
  m[0] = 2;
  s.push_back({"bad_version_2", schedule::whole, m});
  m = dwr();
  m.resize(m.size() - 9);  // the stream ends mid-message
  s.push_back({"truncated_frame", schedule::chunks_of_3, m});
  m = dwr();
  m.resize(11);  // ... and mid-header
  s.push_back({"truncated_header", schedule::one_byte, m});
  bytes bad = dwa();
  bad[0] = 0;
  s.push_back({"valid_then_bad_version", schedule::needed, dwr() + bad});

  for (const std::uint32_t length : {0u, 4u, 7u}) {
    s.push_back({"avp_length_" + std::to_string(length), schedule::whole,
                 raw_message(avp_raw(avp_code::origin_host, 0x40, length, bytes(8, 0)))});
  }
  // V flag: a length of 11 is shorter than the 12-byte header.
  s.push_back({"avp_vendor_length_11", schedule::whole,
               raw_message(avp_raw(avp_code::origin_host, 0xC0, 11, bytes(8, 0)))});
  // The AVP claims 64 bytes; the message has 12.
  s.push_back({"avp_overrun", schedule::whole,
               raw_message(avp_raw(avp_code::origin_host, 0x40, 64, {'a', 'b', 'c', 'd'}))});
  // Missing padding: a Failed-AVP of length 17 holds a 9-byte child with no room for its
  // padding (the group's own padding follows the group).
  s.push_back({"avp_missing_padding", schedule::whole,
               raw_message(avp_raw(avp_code::failed_avp, 0x40, 17,
                                   avp_raw(avp_code::proxy_state, 0x40, 9, {'z', 0, 0, 0})))});
  // V set with a zero Vendor-ID, and padding that is not zero: valid, but the builder would
  // write them differently.
  s.push_back({"avp_vendor_zero_dirty_padding", schedule::whole,
               raw_message(avp_raw(9000, 0x80, 13, {0, 0, 0, 0, 'q', 0xAA, 0xBB, 0xCC}) +
                           avp_raw(avp_code::user_name, 0x40, 9, {'u', 1, 2, 3}))});
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT-DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  std::size_t count = 0;
  for (const seed& s : seeds()) {
    std::ofstream out(dir / s.name, std::ios::binary | std::ios::trunc);
    out.put(static_cast<char>(s.schedule));
    out.write(reinterpret_cast<const char*>(s.stream.data()),
              static_cast<std::streamsize>(s.stream.size()));
    if (!out) {
      std::fprintf(stderr, "make_corpus: cannot write %s\n", (dir / s.name).c_str());
      return 1;
    }
    ++count;
  }
  std::printf("make_corpus: wrote %zu seeds to %s\n", count, dir.c_str());
  return 0;
}
