// The RFC 6733 base protocol dictionary: section 4.5 (base AVPs), section 9.8 (accounting
// AVPs), section 3.1 (commands) and section 2.4 (applications).
#include "diampool/codes.hpp"
#include "diampool/dictionary.hpp"

namespace diampool {
namespace {

using t = avp_type;

avp_definition def(std::uint32_t code, const char* name, avp_type type,
                   flag_rule m = flag_rule::must, std::vector<enum_value> values = {}) {
  return {code, 0, name, type, m, std::move(values)};
}

dictionary make_base() {
  dictionary d;
  const auto must_not = flag_rule::must_not;

  // Section 4.5: Base protocol AVPs.
  d.add(def(avp_code::acct_interim_interval, "Acct-Interim-Interval", t::unsigned32));
  d.add(def(avp_code::accounting_realtime_required, "Accounting-Realtime-Required", t::enumerated,
            flag_rule::must,
            {{1, "DELIVER_AND_GRANT"}, {2, "GRANT_AND_STORE"}, {3, "GRANT_AND_LOSE"}}));
  d.add(def(avp_code::acct_multi_session_id, "Acct-Multi-Session-Id", t::utf8_string));
  d.add(def(avp_code::accounting_record_number, "Accounting-Record-Number", t::unsigned32));
  d.add(def(avp_code::accounting_record_type, "Accounting-Record-Type", t::enumerated,
            flag_rule::must,
            {{1, "EVENT_RECORD"}, {2, "START_RECORD"}, {3, "INTERIM_RECORD"}, {4, "STOP_RECORD"}}));
  d.add(def(avp_code::acct_session_id, "Acct-Session-Id", t::octet_string));
  d.add(def(avp_code::accounting_sub_session_id, "Accounting-Sub-Session-Id", t::unsigned64));
  d.add(def(avp_code::acct_application_id, "Acct-Application-Id", t::unsigned32));
  d.add(def(avp_code::auth_application_id, "Auth-Application-Id", t::unsigned32));
  d.add(def(avp_code::auth_request_type, "Auth-Request-Type", t::enumerated, flag_rule::must,
            {{1, "AUTHENTICATE_ONLY"}, {2, "AUTHORIZE_ONLY"}, {3, "AUTHORIZE_AUTHENTICATE"}}));
  d.add(def(avp_code::authorization_lifetime, "Authorization-Lifetime", t::unsigned32));
  d.add(def(avp_code::auth_grace_period, "Auth-Grace-Period", t::unsigned32));
  d.add(def(avp_code::auth_session_state, "Auth-Session-State", t::enumerated, flag_rule::must,
            {{0, "STATE_MAINTAINED"}, {1, "NO_STATE_MAINTAINED"}}));
  d.add(def(avp_code::re_auth_request_type, "Re-Auth-Request-Type", t::enumerated, flag_rule::must,
            {{0, "AUTHORIZE_ONLY"}, {1, "AUTHORIZE_AUTHENTICATE"}}));
  d.add(def(avp_code::class_, "Class", t::octet_string));
  d.add(def(avp_code::destination_host, "Destination-Host", t::diameter_identity));
  d.add(def(avp_code::destination_realm, "Destination-Realm", t::diameter_identity));
  d.add(def(avp_code::disconnect_cause, "Disconnect-Cause", t::enumerated, flag_rule::must,
            {{0, "REBOOTING"}, {1, "BUSY"}, {2, "DO_NOT_WANT_TO_TALK_TO_YOU"}}));
  d.add(def(avp_code::error_message, "Error-Message", t::utf8_string, must_not));
  d.add(
      def(avp_code::error_reporting_host, "Error-Reporting-Host", t::diameter_identity, must_not));
  d.add(def(avp_code::event_timestamp, "Event-Timestamp", t::time));
  d.add(def(avp_code::experimental_result, "Experimental-Result", t::grouped));
  d.add(def(avp_code::experimental_result_code, "Experimental-Result-Code", t::unsigned32));
  d.add(def(avp_code::failed_avp, "Failed-AVP", t::grouped));
  d.add(def(avp_code::firmware_revision, "Firmware-Revision", t::unsigned32, must_not));
  d.add(def(avp_code::host_ip_address, "Host-IP-Address", t::address));
  d.add(def(avp_code::inband_security_id, "Inband-Security-Id", t::unsigned32, flag_rule::must,
            {{0, "NO_INBAND_SECURITY"}, {1, "TLS"}}));
  d.add(def(avp_code::multi_round_time_out, "Multi-Round-Time-Out", t::unsigned32));
  d.add(def(avp_code::origin_host, "Origin-Host", t::diameter_identity));
  d.add(def(avp_code::origin_realm, "Origin-Realm", t::diameter_identity));
  d.add(def(avp_code::origin_state_id, "Origin-State-Id", t::unsigned32));
  d.add(def(avp_code::product_name, "Product-Name", t::utf8_string, must_not));
  d.add(def(avp_code::proxy_host, "Proxy-Host", t::diameter_identity));
  d.add(def(avp_code::proxy_info, "Proxy-Info", t::grouped));
  d.add(def(avp_code::proxy_state, "Proxy-State", t::octet_string));
  d.add(def(avp_code::redirect_host, "Redirect-Host", t::diameter_uri));
  d.add(def(avp_code::redirect_host_usage, "Redirect-Host-Usage", t::enumerated, flag_rule::must,
            {{0, "DONT_CACHE"},
             {1, "ALL_SESSION"},
             {2, "ALL_REALM"},
             {3, "REALM_AND_APPLICATION"},
             {4, "ALL_APPLICATION"},
             {5, "ALL_HOST"},
             {6, "ALL_USER"}}));
  d.add(def(avp_code::redirect_max_cache_time, "Redirect-Max-Cache-Time", t::unsigned32));
  d.add(def(avp_code::result_code, "Result-Code", t::unsigned32, flag_rule::must,
            {{1001, "DIAMETER_MULTI_ROUND_AUTH"},
             {2001, "DIAMETER_SUCCESS"},
             {2002, "DIAMETER_LIMITED_SUCCESS"},
             {3001, "DIAMETER_COMMAND_UNSUPPORTED"},
             {3002, "DIAMETER_UNABLE_TO_DELIVER"},
             {3003, "DIAMETER_REALM_NOT_SERVED"},
             {3004, "DIAMETER_TOO_BUSY"},
             {3005, "DIAMETER_LOOP_DETECTED"},
             {3006, "DIAMETER_REDIRECT_INDICATION"},
             {3007, "DIAMETER_APPLICATION_UNSUPPORTED"},
             {3008, "DIAMETER_INVALID_HDR_BITS"},
             {3009, "DIAMETER_INVALID_AVP_BITS"},
             {3010, "DIAMETER_UNKNOWN_PEER"},
             {4001, "DIAMETER_AUTHENTICATION_REJECTED"},
             {4002, "DIAMETER_OUT_OF_SPACE"},
             {4003, "ELECTION_LOST"},
             {5001, "DIAMETER_AVP_UNSUPPORTED"},
             {5002, "DIAMETER_UNKNOWN_SESSION_ID"},
             {5003, "DIAMETER_AUTHORIZATION_REJECTED"},
             {5004, "DIAMETER_INVALID_AVP_VALUE"},
             {5005, "DIAMETER_MISSING_AVP"},
             {5006, "DIAMETER_RESOURCES_EXCEEDED"},
             {5007, "DIAMETER_CONTRADICTING_AVPS"},
             {5008, "DIAMETER_AVP_NOT_ALLOWED"},
             {5009, "DIAMETER_AVP_OCCURS_TOO_MANY_TIMES"},
             {5010, "DIAMETER_NO_COMMON_APPLICATION"},
             {5011, "DIAMETER_UNSUPPORTED_VERSION"},
             {5012, "DIAMETER_UNABLE_TO_COMPLY"},
             {5013, "DIAMETER_INVALID_BIT_IN_HEADER"},
             {5014, "DIAMETER_INVALID_AVP_LENGTH"},
             {5015, "DIAMETER_INVALID_MESSAGE_LENGTH"},
             {5016, "DIAMETER_INVALID_AVP_BIT_COMBO"},
             {5017, "DIAMETER_NO_COMMON_SECURITY"}}));
  d.add(def(avp_code::route_record, "Route-Record", t::diameter_identity));
  d.add(def(avp_code::session_id, "Session-Id", t::utf8_string));
  d.add(def(avp_code::session_timeout, "Session-Timeout", t::unsigned32));
  d.add(def(avp_code::session_binding, "Session-Binding", t::unsigned32));
  d.add(def(avp_code::session_server_failover, "Session-Server-Failover", t::enumerated,
            flag_rule::must,
            {{0, "REFUSE_SERVICE"},
             {1, "TRY_AGAIN"},
             {2, "ALLOW_SERVICE"},
             {3, "TRY_AGAIN_ALLOW_SERVICE"}}));
  d.add(def(avp_code::supported_vendor_id, "Supported-Vendor-Id", t::unsigned32));
  d.add(def(avp_code::termination_cause, "Termination-Cause", t::enumerated, flag_rule::must,
            {{1, "DIAMETER_LOGOUT"},
             {2, "DIAMETER_SERVICE_NOT_PROVIDED"},
             {3, "DIAMETER_BAD_ANSWER"},
             {4, "DIAMETER_ADMINISTRATIVE"},
             {5, "DIAMETER_LINK_BROKEN"},
             {6, "DIAMETER_AUTH_EXPIRED"},
             {7, "DIAMETER_USER_MOVED"},
             {8, "DIAMETER_SESSION_TIMEOUT"}}));
  d.add(def(avp_code::user_name, "User-Name", t::utf8_string));
  d.add(def(avp_code::vendor_id, "Vendor-Id", t::unsigned32));
  d.add(
      def(avp_code::vendor_specific_application_id, "Vendor-Specific-Application-Id", t::grouped));
  d.add(def(avp_code::e2e_sequence, "E2E-Sequence", t::grouped));

  // Section 3.1: commands.
  d.add(command_definition{command::capabilities_exchange, "Capabilities-Exchange", "CER", "CEA",
                           application::common_messages, false});
  d.add(command_definition{command::re_auth, "Re-Auth", "RAR", "RAA", application::common_messages,
                           true});
  d.add(command_definition{command::accounting, "Accounting", "ACR", "ACA",
                           application::base_accounting, true});
  d.add(command_definition{command::abort_session, "Abort-Session", "ASR", "ASA",
                           application::common_messages, true});
  d.add(command_definition{command::session_termination, "Session-Termination", "STR", "STA",
                           application::common_messages, true});
  d.add(command_definition{command::device_watchdog, "Device-Watchdog", "DWR", "DWA",
                           application::common_messages, false});
  d.add(command_definition{command::disconnect_peer, "Disconnect-Peer", "DPR", "DPA",
                           application::common_messages, false});

  // Section 2.4: application ids.
  d.add(application_definition{application::common_messages, "Diameter Common Messages"});
  d.add(application_definition{application::base_accounting, "Diameter Base Accounting"});
  d.add(application_definition{application::relay, "Relay"});
  return d;
}

}  // namespace

const dictionary& dictionary::base() {
  static const dictionary instance = make_base();
  return instance;
}

}  // namespace diampool
