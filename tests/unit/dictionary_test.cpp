#include "diampool/dictionary.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <string>

#include "diampool/codes.hpp"
#include "diampool/error.hpp"
#include "samples.hpp"

namespace diampool {
namespace {

struct expected_avp {
  std::uint32_t code;
  const char* name;
  avp_type type;
  flag_rule m;
};

// RFC 6733 section 4.5 and 9.8, row by row.
constexpr expected_avp rfc6733_avps[] = {
    {85, "Acct-Interim-Interval", avp_type::unsigned32, flag_rule::must},
    {483, "Accounting-Realtime-Required", avp_type::enumerated, flag_rule::must},
    {50, "Acct-Multi-Session-Id", avp_type::utf8_string, flag_rule::must},
    {485, "Accounting-Record-Number", avp_type::unsigned32, flag_rule::must},
    {480, "Accounting-Record-Type", avp_type::enumerated, flag_rule::must},
    {44, "Acct-Session-Id", avp_type::octet_string, flag_rule::must},
    {287, "Accounting-Sub-Session-Id", avp_type::unsigned64, flag_rule::must},
    {259, "Acct-Application-Id", avp_type::unsigned32, flag_rule::must},
    {258, "Auth-Application-Id", avp_type::unsigned32, flag_rule::must},
    {274, "Auth-Request-Type", avp_type::enumerated, flag_rule::must},
    {291, "Authorization-Lifetime", avp_type::unsigned32, flag_rule::must},
    {276, "Auth-Grace-Period", avp_type::unsigned32, flag_rule::must},
    {277, "Auth-Session-State", avp_type::enumerated, flag_rule::must},
    {285, "Re-Auth-Request-Type", avp_type::enumerated, flag_rule::must},
    {25, "Class", avp_type::octet_string, flag_rule::must},
    {293, "Destination-Host", avp_type::diameter_identity, flag_rule::must},
    {283, "Destination-Realm", avp_type::diameter_identity, flag_rule::must},
    {273, "Disconnect-Cause", avp_type::enumerated, flag_rule::must},
    {281, "Error-Message", avp_type::utf8_string, flag_rule::must_not},
    {294, "Error-Reporting-Host", avp_type::diameter_identity, flag_rule::must_not},
    {55, "Event-Timestamp", avp_type::time, flag_rule::must},
    {297, "Experimental-Result", avp_type::grouped, flag_rule::must},
    {298, "Experimental-Result-Code", avp_type::unsigned32, flag_rule::must},
    {279, "Failed-AVP", avp_type::grouped, flag_rule::must},
    {267, "Firmware-Revision", avp_type::unsigned32, flag_rule::must_not},
    {257, "Host-IP-Address", avp_type::address, flag_rule::must},
    {299, "Inband-Security-Id", avp_type::unsigned32, flag_rule::must},
    {272, "Multi-Round-Time-Out", avp_type::unsigned32, flag_rule::must},
    {264, "Origin-Host", avp_type::diameter_identity, flag_rule::must},
    {296, "Origin-Realm", avp_type::diameter_identity, flag_rule::must},
    {278, "Origin-State-Id", avp_type::unsigned32, flag_rule::must},
    {269, "Product-Name", avp_type::utf8_string, flag_rule::must_not},
    {280, "Proxy-Host", avp_type::diameter_identity, flag_rule::must},
    {284, "Proxy-Info", avp_type::grouped, flag_rule::must},
    {33, "Proxy-State", avp_type::octet_string, flag_rule::must},
    {292, "Redirect-Host", avp_type::diameter_uri, flag_rule::must},
    {261, "Redirect-Host-Usage", avp_type::enumerated, flag_rule::must},
    {262, "Redirect-Max-Cache-Time", avp_type::unsigned32, flag_rule::must},
    {268, "Result-Code", avp_type::unsigned32, flag_rule::must},
    {282, "Route-Record", avp_type::diameter_identity, flag_rule::must},
    {263, "Session-Id", avp_type::utf8_string, flag_rule::must},
    {27, "Session-Timeout", avp_type::unsigned32, flag_rule::must},
    {270, "Session-Binding", avp_type::unsigned32, flag_rule::must},
    {271, "Session-Server-Failover", avp_type::enumerated, flag_rule::must},
    {265, "Supported-Vendor-Id", avp_type::unsigned32, flag_rule::must},
    {295, "Termination-Cause", avp_type::enumerated, flag_rule::must},
    {1, "User-Name", avp_type::utf8_string, flag_rule::must},
    {266, "Vendor-Id", avp_type::unsigned32, flag_rule::must},
    {260, "Vendor-Specific-Application-Id", avp_type::grouped, flag_rule::must},
    {300, "E2E-Sequence", avp_type::grouped, flag_rule::must},
};

TEST(base_dictionary, has_every_rfc_6733_avp_with_type_and_m_rule) {
  const dictionary& d = dictionary::base();
  EXPECT_EQ(d.avp_count(), std::size(rfc6733_avps));
  for (const auto& e : rfc6733_avps) {
    const avp_definition* by_code = d.find_avp(e.code);
    ASSERT_NE(by_code, nullptr) << e.name;
    EXPECT_EQ(by_code, d.find_avp(e.name)) << e.name;
    EXPECT_EQ(by_code->name, e.name);
    EXPECT_EQ(by_code->type, e.type) << e.name;
    EXPECT_EQ(by_code->m_rule, e.m) << e.name;
    EXPECT_EQ(by_code->vendor_id, 0U);
    EXPECT_EQ(by_code->default_flags(), e.m == flag_rule::must ? avp_flags::mandatory : 0);
  }
}

TEST(base_dictionary, every_enumerated_avp_names_its_values) {
  for (const auto& def : dictionary::base().avps()) {
    if (def.type == avp_type::enumerated) {
      EXPECT_FALSE(def.values.empty()) << def.name;
    }
  }
  const auto* cause = dictionary::base().find_avp(avp_code::disconnect_cause);
  EXPECT_EQ(cause->value_name(0), "REBOOTING");
  EXPECT_EQ(cause->value_name(1), "BUSY");
  EXPECT_EQ(cause->value_name(2), "DO_NOT_WANT_TO_TALK_TO_YOU");
  EXPECT_EQ(cause->value_name(3), "");
  const auto* rc = dictionary::base().find_avp(avp_code::result_code);
  EXPECT_EQ(rc->value_name(2001), "DIAMETER_SUCCESS");
  EXPECT_EQ(rc->value_name(5012), "DIAMETER_UNABLE_TO_COMPLY");
  EXPECT_EQ(rc->value_name(4003), "ELECTION_LOST");
}

TEST(base_dictionary, has_every_base_command_by_code_name_and_abbreviation) {
  const dictionary& d = dictionary::base();
  const std::tuple<std::uint32_t, const char*, const char*, const char*, bool> cmds[] = {
      {257, "Capabilities-Exchange", "CER", "CEA", false},
      {258, "Re-Auth", "RAR", "RAA", true},
      {271, "Accounting", "ACR", "ACA", true},
      {274, "Abort-Session", "ASR", "ASA", true},
      {275, "Session-Termination", "STR", "STA", true},
      {280, "Device-Watchdog", "DWR", "DWA", false},
      {282, "Disconnect-Peer", "DPR", "DPA", false},
  };
  EXPECT_EQ(d.command_count(), std::size(cmds));
  for (const auto& [code, name, req, ans, proxiable] : cmds) {
    const command_definition* c = d.find_command(code);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_EQ(c->name, name);
    EXPECT_EQ(c->request_abbr, req);
    EXPECT_EQ(c->answer_abbr, ans);
    EXPECT_EQ(c->proxiable, proxiable) << name;
    EXPECT_EQ(d.find_command(name), c);
    EXPECT_EQ(d.find_command(req), c);
    EXPECT_EQ(d.find_command(ans), c);
  }
  EXPECT_EQ(d.find_command(271)->application_id, application::base_accounting);
  EXPECT_EQ(d.find_command("XYZ"), nullptr);
  EXPECT_EQ(d.find_command(9999), nullptr);
  EXPECT_EQ(d.find_application(application::relay)->name, "Relay");
}

TEST(dictionary, extends_a_copy_of_base_without_touching_base) {
  dictionary s6a = dictionary::base();
  s6a.add(
      avp_definition{1407, 10415, "Visited-PLMN-Id", avp_type::octet_string, flag_rule::must, {}});
  s6a.add(command_definition{316, "Update-Location", "ULR", "ULA", 16777251, true});
  s6a.add(application_definition{16777251, "3GPP S6a/S6d"});
  EXPECT_NE(s6a.find_avp(1407, 10415), nullptr);
  EXPECT_EQ(s6a.find_avp(1407, 0), nullptr);
  EXPECT_EQ(s6a.find_avp(1407, 10415)->default_flags(), avp_flags::mandatory | avp_flags::vendor);
  EXPECT_EQ(s6a.find_command("ULR")->code, 316U);
  EXPECT_EQ(s6a.find_avp("Origin-Host")->code, avp_code::origin_host);
  EXPECT_EQ(dictionary::base().find_avp(1407, 10415), nullptr);
  EXPECT_EQ(dictionary::base().find_command("ULR"), nullptr);
}

TEST(dictionary, replacing_an_entry_updates_name_lookups) {
  dictionary d;
  d.add(avp_definition{1, 0, "Old-Name", avp_type::unsigned32, flag_rule::must, {}});
  d.add(avp_definition{1, 0, "New-Name", avp_type::utf8_string, flag_rule::may, {}});
  EXPECT_EQ(d.avp_count(), 1U);
  EXPECT_EQ(d.find_avp("New-Name"), d.find_avp(1));
  EXPECT_EQ(d.find_avp("Old-Name"), nullptr);
  EXPECT_EQ(d.find_avp(1)->type, avp_type::utf8_string);
  EXPECT_EQ(d.find_avp(1)->default_flags(), 0);
}

TEST(dictionary, copies_and_moves_keep_lookups_valid) {
  dictionary a = dictionary::base();
  dictionary b;
  b = a;
  a.add(avp_definition{9, 0, "Only-In-A", avp_type::unsigned32, flag_rule::must, {}});
  EXPECT_EQ(b.find_avp("Only-In-A"), nullptr);
  ASSERT_NE(b.find_avp("Origin-Host"), nullptr);
  EXPECT_EQ(b.find_avp("Origin-Host")->code, 264U);
  dictionary c = std::move(a);
  ASSERT_NE(c.find_avp("Only-In-A"), nullptr);
  EXPECT_EQ(c.find_avp(9)->name, "Only-In-A");
}

// Small IETF codes are looked up in a table, the rest in a hash: both give the same answers on
// either side of the table's edge, for vendors too, in copies and after replacement.
TEST(dictionary, lookups_by_code_agree_on_both_sides_of_the_small_code_table) {
  dictionary d;
  const std::uint32_t codes[] = {0, 1, 700, 1023, 1024, 1025, 70000};
  for (const std::uint32_t c : codes)
    d.add(avp_definition{c, 0, "A" + std::to_string(c), avp_type::unsigned32, flag_rule::may, {}});
  d.add(avp_definition{5, 10415, "Vendor-5", avp_type::unsigned32, flag_rule::must, {}});
  d.add(avp_definition{1023, 0, "Replaced", avp_type::grouped, flag_rule::may, {}});
  const auto expect_lookups = [&](const dictionary& x) {
    for (std::uint32_t c = 0; c < 1100; ++c) {
      const avp_definition* def = x.find_avp(c);
      const bool defined = std::find(std::begin(codes), std::end(codes), c) != std::end(codes);
      ASSERT_EQ(def != nullptr, defined) << c;
      if (def != nullptr) {
        EXPECT_EQ(def->code, c);
        EXPECT_EQ(def->vendor_id, 0U);
      }
    }
    EXPECT_EQ(x.find_avp(70000)->name, "A70000");
    EXPECT_EQ(x.find_avp(1023)->name, "Replaced");
    EXPECT_EQ(x.find_avp(1023)->type, avp_type::grouped);
    EXPECT_EQ(x.find_avp(5, 10415)->name, "Vendor-5");
    EXPECT_EQ(x.find_avp(5, 1), nullptr);
    EXPECT_EQ(x.find_avp(700, 10415), nullptr);
    EXPECT_EQ(x.find_avp(0xFFFFFFFF), nullptr);
  };
  expect_lookups(d);
  const dictionary copy = d;
  expect_lookups(copy);
  dictionary moved = std::move(d);
  expect_lookups(moved);
  dictionary assigned = dictionary::base();
  assigned = copy;
  expect_lookups(assigned);
  EXPECT_EQ(dictionary::base().find_avp(avp_code::origin_host)->name, "Origin-Host");
  EXPECT_EQ(dictionary::base().find_avp(1023), nullptr);
}

TEST(dictionary, merge_adds_and_replaces) {
  dictionary app;
  app.add(
      avp_definition{268, 0, "Result-Code", avp_type::unsigned32, flag_rule::must, {{2001, "OK"}}});
  app.add(avp_definition{628, 10415, "Supported-Features", avp_type::grouped, flag_rule::may, {}});
  dictionary d = dictionary::base();
  d.merge(app);
  EXPECT_EQ(d.find_avp(268)->value_name(2001), "OK");
  EXPECT_EQ(d.find_avp("Supported-Features")->vendor_id, 10415U);
  EXPECT_EQ(d.avp_count(), dictionary::base().avp_count() + 1);
  d.merge(d);  // self-merge is harmless
  EXPECT_EQ(d.avp_count(), dictionary::base().avp_count() + 1);
}

TEST(check_avps, walks_into_grouped_avps_the_dictionary_knows) {
  for (const auto& msg : test::base_messages()) {
    std::error_code ec;
    const auto m = message_view::parse(msg, ec);
    ASSERT_FALSE(ec);
    EXPECT_FALSE(check_avps(m, dictionary::base()));
  }
  // Corrupt a child inside Vendor-Specific-Application-Id of the CEA (second sample).
  auto cea = test::base_messages()[1];
  std::error_code ec;
  const auto m = message_view::parse(cea, ec);
  const auto vsai = m.find(avp_code::vendor_specific_application_id);
  ASSERT_TRUE(vsai);
  const std::size_t child = static_cast<std::size_t>(vsai->data().data() - cea.data());
  cea[child + 7] = 3;  // first child's length below its header
  const auto bad = message_view::parse(cea, ec);
  EXPECT_EQ(check_avps(bad, dictionary::base()), error::bad_avp_length);
  EXPECT_FALSE(check_avps(bad, dictionary{}));  // without the dictionary it is opaque data
}

TEST(check_avps, enforces_its_depth_limit) {
  std::vector<std::uint8_t> out;
  message_header h;
  h.command_code = 257;
  message_builder b(out, h);
  std::vector<message_builder::group> groups;
  for (int i = 0; i < 20; ++i)
    groups.push_back(b.begin_group(avp_code::proxy_info));
  for (auto it = groups.rbegin(); it != groups.rend(); ++it)
    b.end_group(*it);
  std::error_code ec;
  const auto m = message_view::parse(b.finish(), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(check_avps(m, dictionary::base()), error::nesting_too_deep);
  EXPECT_EQ(check_avps(m, dictionary::base(), 19), error::nesting_too_deep);
  EXPECT_FALSE(check_avps(m, dictionary::base(), 20));
}

}  // namespace
}  // namespace diampool
