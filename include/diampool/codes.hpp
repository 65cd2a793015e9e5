// diampool: well-known RFC 6733 numbers (commands, AVP codes, applications, result codes).
#pragma once

#include <cstdint>

namespace diampool {

/// Command codes (RFC 6733 section 3.1 and the base accounting / session commands).
namespace command {
inline constexpr std::uint32_t capabilities_exchange = 257;  ///< CER / CEA
inline constexpr std::uint32_t re_auth = 258;                ///< RAR / RAA
inline constexpr std::uint32_t accounting = 271;             ///< ACR / ACA
inline constexpr std::uint32_t abort_session = 274;          ///< ASR / ASA
inline constexpr std::uint32_t session_termination = 275;    ///< STR / STA
inline constexpr std::uint32_t device_watchdog = 280;        ///< DWR / DWA
inline constexpr std::uint32_t disconnect_peer = 282;        ///< DPR / DPA
}  // namespace command

/// Application ids (RFC 6733 section 2.4).
namespace application {
inline constexpr std::uint32_t common_messages = 0;
inline constexpr std::uint32_t nasreq = 1;
inline constexpr std::uint32_t base_accounting = 3;
inline constexpr std::uint32_t credit_control = 4;
inline constexpr std::uint32_t relay = 0xFFFFFFFF;
}  // namespace application

/// Vendor ids.
namespace vendor {
inline constexpr std::uint32_t ietf = 0;
inline constexpr std::uint32_t tgpp = 10415;
}  // namespace vendor

/// Base protocol AVP codes (RFC 6733 section 4.5 and 9.8).
namespace avp_code {
inline constexpr std::uint32_t user_name = 1;
// "class" is a keyword, hence the underscore.
inline constexpr std::uint32_t class_ = 25;  // NOLINT(readability-identifier-naming)
inline constexpr std::uint32_t session_timeout = 27;
inline constexpr std::uint32_t proxy_state = 33;
inline constexpr std::uint32_t acct_session_id = 44;
inline constexpr std::uint32_t acct_multi_session_id = 50;
inline constexpr std::uint32_t event_timestamp = 55;
inline constexpr std::uint32_t acct_interim_interval = 85;
inline constexpr std::uint32_t host_ip_address = 257;
inline constexpr std::uint32_t auth_application_id = 258;
inline constexpr std::uint32_t acct_application_id = 259;
inline constexpr std::uint32_t vendor_specific_application_id = 260;
inline constexpr std::uint32_t redirect_host_usage = 261;
inline constexpr std::uint32_t redirect_max_cache_time = 262;
inline constexpr std::uint32_t session_id = 263;
inline constexpr std::uint32_t origin_host = 264;
inline constexpr std::uint32_t supported_vendor_id = 265;
inline constexpr std::uint32_t vendor_id = 266;
inline constexpr std::uint32_t firmware_revision = 267;
inline constexpr std::uint32_t result_code = 268;
inline constexpr std::uint32_t product_name = 269;
inline constexpr std::uint32_t session_binding = 270;
inline constexpr std::uint32_t session_server_failover = 271;
inline constexpr std::uint32_t multi_round_time_out = 272;
inline constexpr std::uint32_t disconnect_cause = 273;
inline constexpr std::uint32_t auth_request_type = 274;
inline constexpr std::uint32_t auth_grace_period = 276;
inline constexpr std::uint32_t auth_session_state = 277;
inline constexpr std::uint32_t origin_state_id = 278;
inline constexpr std::uint32_t failed_avp = 279;
inline constexpr std::uint32_t proxy_host = 280;
inline constexpr std::uint32_t error_message = 281;
inline constexpr std::uint32_t route_record = 282;
inline constexpr std::uint32_t destination_realm = 283;
inline constexpr std::uint32_t proxy_info = 284;
inline constexpr std::uint32_t re_auth_request_type = 285;
inline constexpr std::uint32_t accounting_sub_session_id = 287;
inline constexpr std::uint32_t authorization_lifetime = 291;
inline constexpr std::uint32_t redirect_host = 292;
inline constexpr std::uint32_t destination_host = 293;
inline constexpr std::uint32_t error_reporting_host = 294;
inline constexpr std::uint32_t termination_cause = 295;
inline constexpr std::uint32_t origin_realm = 296;
inline constexpr std::uint32_t experimental_result = 297;
inline constexpr std::uint32_t experimental_result_code = 298;
inline constexpr std::uint32_t inband_security_id = 299;
inline constexpr std::uint32_t e2e_sequence = 300;
inline constexpr std::uint32_t accounting_record_type = 480;
inline constexpr std::uint32_t accounting_realtime_required = 483;
inline constexpr std::uint32_t accounting_record_number = 485;
}  // namespace avp_code

/// Result-Code values used by the base protocol (RFC 6733 section 7.1).
namespace result_code {
inline constexpr std::uint32_t multi_round_auth = 1001;
inline constexpr std::uint32_t success = 2001;
inline constexpr std::uint32_t limited_success = 2002;
inline constexpr std::uint32_t command_unsupported = 3001;
inline constexpr std::uint32_t unable_to_deliver = 3002;
inline constexpr std::uint32_t realm_not_served = 3003;
inline constexpr std::uint32_t too_busy = 3004;
inline constexpr std::uint32_t loop_detected = 3005;
inline constexpr std::uint32_t redirect_indication = 3006;
inline constexpr std::uint32_t application_unsupported = 3007;
inline constexpr std::uint32_t invalid_hdr_bits = 3008;
inline constexpr std::uint32_t invalid_avp_bits = 3009;
inline constexpr std::uint32_t unknown_peer = 3010;
inline constexpr std::uint32_t authentication_rejected = 4001;
inline constexpr std::uint32_t out_of_space = 4002;
inline constexpr std::uint32_t election_lost = 4003;
inline constexpr std::uint32_t avp_unsupported = 5001;
inline constexpr std::uint32_t unknown_session_id = 5002;
inline constexpr std::uint32_t authorization_rejected = 5003;
inline constexpr std::uint32_t invalid_avp_value = 5004;
inline constexpr std::uint32_t missing_avp = 5005;
inline constexpr std::uint32_t resources_exceeded = 5006;
inline constexpr std::uint32_t contradicting_avps = 5007;
inline constexpr std::uint32_t avp_not_allowed = 5008;
inline constexpr std::uint32_t avp_occurs_too_many_times = 5009;
inline constexpr std::uint32_t no_common_application = 5010;
inline constexpr std::uint32_t unsupported_version = 5011;
inline constexpr std::uint32_t unable_to_comply = 5012;
inline constexpr std::uint32_t invalid_bit_in_header = 5013;
inline constexpr std::uint32_t invalid_avp_length = 5014;
inline constexpr std::uint32_t invalid_message_length = 5015;
inline constexpr std::uint32_t invalid_avp_bit_combo = 5016;
inline constexpr std::uint32_t no_common_security = 5017;
}  // namespace result_code

/// Disconnect-Cause values (RFC 6733 section 5.4.3).
namespace disconnect_cause {
inline constexpr std::int32_t rebooting = 0;
inline constexpr std::int32_t busy = 1;
inline constexpr std::int32_t do_not_want_to_talk_to_you = 2;
}  // namespace disconnect_cause

}  // namespace diampool
