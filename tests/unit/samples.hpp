// Sample messages shared by the codec tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/print.hpp"

namespace diampool::test {

/// The 128-byte CER accepted by freeDiameter 1.2.1 and Erlang/OTP diameter.
inline constexpr const char* reference_cer_hex =
    "0100008080000101000000000000000100000001000001084000001a636c6965"
    "6e742e6578616d706c652e636f6d000000000128400000136578616d706c652e"
    "636f6d00000001014000000e00017f00000100000000010a4000000c00000000"
    "0000010d000000146c61622d7079636c69656e74000001024000000c00ffffff";

inline std::vector<std::uint8_t> hex(const char* text) {
  bool ok = false;
  auto bytes = from_hex(text, ok);
  if (!ok) throw std::invalid_argument("bad hex in test");
  return bytes;
}

/// Writes the reference CER into `out` (a std::vector or a fixed span) and returns its bytes;
/// an empty span with `ec` set if it does not fit.
template <typename Buffer>
std::span<const std::uint8_t> write_reference_cer(Buffer& out, std::error_code& ec) {
  message_header h;
  h.flags = cmd_flags::request;
  h.command_code = command::capabilities_exchange;
  h.hop_by_hop = 1;
  h.end_to_end = 1;
  message_builder b(out, h);
  b.add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_address(avp_code::host_ip_address, ip_address::v4({127, 0, 0, 1}))
      .add_unsigned32(avp_code::vendor_id, 0)
      .add_string(avp_code::product_name, "lab-pyclient", 0)
      .add_unsigned32(avp_code::auth_application_id, 16777215);
  return b.finish(ec);
}

/// Builds the reference CER with the builder.
inline std::vector<std::uint8_t> build_reference_cer() {
  std::vector<std::uint8_t> out;
  std::error_code ec;
  write_reference_cer(out, ec);
  if (ec) throw std::system_error(ec);
  return out;
}

/// One message of each base command (request and answer), plus an application request that
/// carries every basic type and nested groups.
inline std::vector<std::vector<std::uint8_t>> base_messages() {
  std::vector<std::vector<std::uint8_t>> all;
  auto make = [&](std::uint32_t code, std::uint8_t flags, std::uint32_t app, auto&& fill) {
    std::vector<std::uint8_t> out;
    message_header h;
    h.flags = flags;
    h.command_code = code;
    h.application_id = app;
    h.hop_by_hop = 0x01020304U + static_cast<std::uint32_t>(all.size());
    h.end_to_end = 0xA0B0C0D0U + static_cast<std::uint32_t>(all.size());
    message_builder b(out, h);
    fill(b);
    b.finish();
    all.push_back(std::move(out));
  };
  auto origin = [](message_builder& b) {
    b.add_string(avp_code::origin_host, "peer.example.net")
        .add_string(avp_code::origin_realm, "example.net");
  };
  const auto req = cmd_flags::request;
  const auto rp = static_cast<std::uint8_t>(cmd_flags::request | cmd_flags::proxiable);
  const auto ans_p = cmd_flags::proxiable;

  all.push_back(build_reference_cer());
  make(command::capabilities_exchange, 0, 0, [&](message_builder& b) {
    b.add_unsigned32(avp_code::result_code, result_code::success);
    origin(b);
    b.add_address(avp_code::host_ip_address, *ip_address::parse("2001:db8::1"))
        .add_unsigned32(avp_code::vendor_id, vendor::tgpp)
        .add_string(avp_code::product_name, "diampool-peer", 0)
        .add_unsigned32(avp_code::origin_state_id, 7)
        .add_unsigned32(avp_code::supported_vendor_id, vendor::tgpp);
    auto g = b.begin_group(avp_code::vendor_specific_application_id);
    b.add_unsigned32(avp_code::vendor_id, vendor::tgpp)
        .add_unsigned32(avp_code::auth_application_id, 16777251);
    b.end_group(g);
    b.add_unsigned32(avp_code::inband_security_id, 0)
        .add_unsigned32(avp_code::firmware_revision, 1, 0);
  });
  make(command::device_watchdog, req, 0, [&](message_builder& b) {
    origin(b);
    b.add_unsigned32(avp_code::origin_state_id, 7);
  });
  make(command::device_watchdog, 0, 0, [&](message_builder& b) {
    b.add_unsigned32(avp_code::result_code, result_code::success);
    origin(b);
  });
  make(command::disconnect_peer, req, 0, [&](message_builder& b) {
    origin(b);
    b.add_integer32(avp_code::disconnect_cause, disconnect_cause::do_not_want_to_talk_to_you);
  });
  make(command::disconnect_peer, 0, 0, [&](message_builder& b) {
    b.add_unsigned32(avp_code::result_code, result_code::success);
    origin(b);
  });
  for (std::uint32_t code :
       {command::re_auth, command::abort_session, command::session_termination}) {
    make(code, rp, 16777238, [&](message_builder& b) {
      b.add_string(avp_code::session_id, "peer.example.net;1;2;app");
      origin(b);
      b.add_string(avp_code::destination_realm, "example.com")
          .add_string(avp_code::destination_host, "client.example.com")
          .add_unsigned32(avp_code::auth_application_id, 16777238);
    });
    make(code, ans_p, 16777238, [&](message_builder& b) {
      b.add_string(avp_code::session_id, "peer.example.net;1;2;app");
      b.add_unsigned32(avp_code::result_code, result_code::success);
      origin(b);
    });
  }
  make(command::accounting, rp, application::base_accounting, [&](message_builder& b) {
    b.add_string(avp_code::session_id, "client.example.com;42;7");
    origin(b);
    b.add_string(avp_code::destination_realm, "example.com")
        .add_integer32(avp_code::accounting_record_type, 2)
        .add_unsigned32(avp_code::accounting_record_number, 0)
        .add_unsigned64(avp_code::accounting_sub_session_id, 0x1122334455667788ULL)
        .add_time(avp_code::event_timestamp, diameter_time{std::chrono::seconds{1700000000}})
        .add_string(avp_code::acct_session_id, std::string("\x00\x01\xff", 3))
        .add_string(avp_code::user_name, "h\xc3\xa9llo")
        .add_string(avp_code::redirect_host, "aaa://host.example.com:3868;transport=tcp");
    auto pi = b.begin_group(avp_code::proxy_info);
    b.add_string(avp_code::proxy_host, "proxy.example.com")
        .add_string(avp_code::proxy_state, "state");
    b.end_group(pi);
  });
  make(command::accounting, static_cast<std::uint8_t>(cmd_flags::proxiable | cmd_flags::error),
       application::base_accounting, [&](message_builder& b) {
         b.add_string(avp_code::session_id, "client.example.com;42;7");
         b.add_unsigned32(avp_code::result_code, result_code::command_unsupported);
         origin(b);
         b.add_string(avp_code::error_message, "no such command", 0);
         auto fa = b.begin_group(avp_code::failed_avp);
         auto er = b.begin_group(avp_code::experimental_result);
         b.add_unsigned32(avp_code::vendor_id, vendor::tgpp)
             .add_unsigned32(avp_code::experimental_result_code, 5420);
         b.end_group(er);
         b.end_group(fa);
       });
  // Vendor-specific AVPs of every fixed-size type (unknown to the base dictionary).
  make(16777214, rp, 16777215, [&](message_builder& b) {
    b.add_string(avp_code::session_id, "client.example.com;1;1");
    origin(b);
    b.add_integer32(1000, -5, avp_flags::mandatory, 999999)
        .add_integer64(1001, -(std::int64_t{1} << 40), avp_flags::mandatory, 999999)
        .add_float32(1002, 1.5F, 0, 999999)
        .add_float64(1003, -2.25, 0, 999999)
        .add_octets(1004, {}, 0, 999999);
  });
  return all;
}

}  // namespace diampool::test
