#include "diampool/peer_machine.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "diampool/builder.hpp"
#include "diampool/detail/endian.hpp"
#include "diampool/error.hpp"

namespace diampool {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t unix_now = 1'700'000'123;  // wall-clock seconds given to the machine

peer_config test_config() {
  peer_config c;
  c.local.origin_host = "client.example.com";
  c.local.origin_realm = "example.com";
  c.local.product_name = "diampool-test";
  c.local.auth_application_ids = {4};
  c.cer_timeout = 5s;
  c.dwr_interval = 30s;
  c.dwr_jitter = 2s;
  c.dwr_timeout = 10s;
  c.max_dwr_failures = 3;
  c.dpa_timeout = 2s;
  return c;
}

// The peer's side of the wire: parses what the machine wrote and builds what a peer sends.
struct harness {
  explicit harness(peer_config c = test_config(), std::uint64_t seed = 42)
      : m(std::move(c), seed, unix_now) {}

  peer_machine m;
  steady_time now{std::chrono::hours(1000)};
  std::vector<peer_event> events;

  // Drains the machine's output into whole messages.
  std::vector<bytes> written() {
    bytes out;
    m.take_output(out);
    std::vector<bytes> msgs;
    frame_decoder d;
    std::span<const std::uint8_t> rest(out);
    while (!rest.empty()) {
      std::error_code ec;
      const auto r = d.put(rest, ec);
      EXPECT_EQ(r.status, decode_status::message) << ec.message();
      if (r.status != decode_status::message) break;
      const auto b = d.message().bytes();
      msgs.emplace_back(b.begin(), b.end());
      rest = rest.subspan(r.consumed);
    }
    return msgs;
  }
  bytes written_one() {
    auto msgs = written();
    EXPECT_EQ(msgs.size(), 1U);
    return msgs.empty() ? bytes{} : msgs.front();
  }
  void drain() {
    while (m.has_events())
      events.push_back(m.next_event());
  }
  template <typename T>
  std::vector<T> take() {
    drain();
    std::vector<T> out;
    for (auto& e : events) {
      if (auto* x = std::get_if<T>(&e)) out.push_back(*x);
    }
    return out;
  }
  void at(std::chrono::nanoseconds dt) {
    now += dt;
    m.advance(now);
  }
  void feed(const bytes& b) { m.receive(now, b); }

  // Connects and completes the handshake with a CEA 2001.
  void open(bool reopen = false) {
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    m.start_connecting(now);
    m.connected(now, {&local, 1}, reopen);
    const bytes cer = written_one();
    feed(cea_for(cer, result_code::success));
    drain();
  }

  static message_view view(const bytes& b) {
    std::error_code ec;
    auto v = message_view::parse(b, ec);
    EXPECT_FALSE(ec);
    return v;
  }

  static bytes answer_for(const bytes& request, std::uint32_t rc,
                          const std::function<void(message_builder&)>& more = {}) {
    message_header h = view(request).header();
    h.flags = static_cast<std::uint8_t>(h.flags & cmd_flags::proxiable);
    bytes out;
    message_builder b(out, h);
    b.add_unsigned32(avp_code::result_code, rc)
        .add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net");
    if (more) more(b);
    b.finish();
    return out;
  }

  static bytes cea_for(const bytes& cer, std::uint32_t rc,
                       const std::vector<std::uint32_t>& apps = {4}) {
    return answer_for(cer, rc, [&](message_builder& b) {
      b.add_address(avp_code::host_ip_address, ip_address::v4({192, 0, 2, 1}))
          .add_unsigned32(avp_code::vendor_id, 0)
          .add_string(avp_code::product_name, "peer", 0);
      for (auto a : apps)
        b.add_unsigned32(avp_code::auth_application_id, a);
      if (rc != result_code::success) {
        b.add_string(avp_code::error_message, "go away", 0);
        auto g = b.begin_group(avp_code::failed_avp);
        b.add_string(avp_code::origin_host, "client.example.com");
        b.end_group(g);
      }
    });
  }

  static bytes request(std::uint32_t code, std::uint32_t hbh, std::uint32_t e2e = 0,
                       std::uint8_t extra_flags = 0) {
    message_header h;
    h.flags = static_cast<std::uint8_t>(cmd_flags::request | extra_flags);
    h.command_code = code;
    h.application_id = code == command::device_watchdog || code == command::disconnect_peer ? 0 : 4;
    h.hop_by_hop = hbh;
    h.end_to_end = e2e;
    bytes out;
    message_builder b(out, h);
    b.add_string(avp_code::session_id, "client.example.com;1;" + std::to_string(hbh))
        .add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net");
    b.finish();
    return out;
  }
};

std::uint32_t u32(const bytes& msg, std::uint32_t code) {
  return harness::view(msg).find(code)->as_unsigned32();
}

// ---------------------------------------------------------------------------------------------
// Capabilities exchange

TEST(peer_machine, cer_carries_every_capability) {
  peer_config c = test_config();
  c.local.vendor_id = 10415;
  c.local.origin_state_id = 77;
  c.local.supported_vendor_ids = {10415, 5535};
  c.local.auth_application_ids = {4};
  c.local.acct_application_ids = {3};
  c.local.vendor_specific_application_ids = {{10415, 16777251, 0}, {10415, 0, 16777252}};
  c.local.inband_security_ids = {0};
  c.local.firmware_revision = 12;
  harness h(c);
  const ip_address addrs[] = {ip_address::v4({127, 0, 0, 1}), *ip_address::parse("::1")};
  h.m.start_connecting(h.now);
  EXPECT_EQ(h.m.state(), peer_state::connecting);
  h.m.connected(h.now, addrs);
  EXPECT_EQ(h.m.state(), peer_state::cer_sent);
  const bytes cer = h.written_one();
  const message_view v = harness::view(cer);
  EXPECT_EQ(v.header().command_code, command::capabilities_exchange);
  EXPECT_TRUE(v.header().is_request());
  EXPECT_FALSE(v.header().is_proxiable());
  EXPECT_EQ(v.header().application_id, 0U);
  std::vector<std::pair<std::uint32_t, std::string>> seen;
  std::vector<ip_address> hosts;
  std::vector<vendor_application> vsai;
  for (const avp& a : v.avps()) {
    if (a.code() == avp_code::host_ip_address) hosts.push_back(*a.as_address().ip());
    if (a.code() == avp_code::vendor_specific_application_id) {
      vendor_application x;
      for (const avp& k : a.children()) {
        if (k.code() == avp_code::vendor_id) x.vendor_id = k.as_unsigned32();
        if (k.code() == avp_code::auth_application_id) x.auth_application_id = k.as_unsigned32();
        if (k.code() == avp_code::acct_application_id) x.acct_application_id = k.as_unsigned32();
      }
      vsai.push_back(x);
    }
    if (a.code() == avp_code::product_name || a.code() == avp_code::firmware_revision) {
      EXPECT_FALSE(a.is_mandatory()) << a.code();
    }
    if (a.code() == avp_code::origin_host) {
      EXPECT_TRUE(a.is_mandatory());
    }
    seen.emplace_back(a.code(), std::string(a.as_string()));
  }
  EXPECT_EQ(v.find(avp_code::origin_host)->as_string(), "client.example.com");
  EXPECT_EQ(v.find(avp_code::origin_realm)->as_string(), "example.com");
  EXPECT_EQ(hosts, std::vector<ip_address>(std::begin(addrs), std::end(addrs)));
  EXPECT_EQ(u32(cer, avp_code::vendor_id), 10415U);
  EXPECT_EQ(v.find(avp_code::product_name)->as_string(), "diampool-test");
  EXPECT_EQ(u32(cer, avp_code::origin_state_id), 77U);
  EXPECT_EQ(u32(cer, avp_code::auth_application_id), 4U);
  EXPECT_EQ(u32(cer, avp_code::acct_application_id), 3U);
  EXPECT_EQ(u32(cer, avp_code::inband_security_id), 0U);
  EXPECT_EQ(u32(cer, avp_code::firmware_revision), 12U);
  int svi = 0;
  for (const auto& [code, _] : seen)
    svi += code == avp_code::supported_vendor_id ? 1 : 0;
  EXPECT_EQ(svi, 2);
  EXPECT_EQ(vsai, c.local.vendor_specific_application_ids);
  EXPECT_EQ(seen.front().first, avp_code::origin_host);
}

TEST(peer_machine, configured_host_ip_addresses_replace_the_socket_ones) {
  peer_config c = test_config();
  c.local.host_ip_addresses = {ip_address::v4({198, 51, 100, 7})};
  harness h(c);
  const ip_address local = ip_address::v4({127, 0, 0, 1});
  h.m.connected(h.now, {&local, 1});
  const bytes cer = h.written_one();
  EXPECT_EQ(harness::view(cer).find(avp_code::host_ip_address)->as_address().ip()->to_string(),
            "198.51.100.7");
}

TEST(peer_machine, cea_success_opens_and_records_the_peer) {
  harness h;
  h.open();
  EXPECT_EQ(h.m.state(), peer_state::open);
  EXPECT_TRUE(h.m.ready());
  EXPECT_EQ(h.m.watchdog(), watchdog_state::okay);
  EXPECT_EQ(h.m.peer().origin_host, "server.example.net");
  EXPECT_EQ(h.m.peer().origin_realm, "example.net");
  EXPECT_EQ(h.m.peer().product_name, "peer");
  EXPECT_EQ(h.m.peer().auth_application_ids, std::vector<std::uint32_t>{4});
  EXPECT_FALSE(h.m.handshake_error());
  std::vector<peer_state> path;
  for (const auto& e : h.take<state_changed>())
    path.push_back(e.to);
  EXPECT_EQ(path, (std::vector<peer_state>{peer_state::connecting, peer_state::cer_sent,
                                           peer_state::open}));
}

TEST(peer_machine, cea_error_codes_fail_the_handshake_with_details) {
  for (std::uint32_t rc : {result_code::unknown_peer, result_code::no_common_application,
                           result_code::unable_to_comply, result_code::election_lost}) {
    harness h;
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    h.feed(harness::cea_for(h.written_one(), rc));
    EXPECT_EQ(h.m.state(), peer_state::failed) << rc;
    ASSERT_TRUE(h.m.handshake_error()) << rc;
    EXPECT_EQ(h.m.handshake_error()->result_code, rc);
    EXPECT_EQ(h.m.handshake_error()->error_message, "go away");
    EXPECT_FALSE(h.m.handshake_error()->failed_avp.empty());
    EXPECT_EQ(h.m.close_reason(), error::handshake_failed);
    const auto closes = h.take<close_transport>();
    ASSERT_EQ(closes.size(), 1U);
    EXPECT_EQ(closes[0].reason, error::handshake_failed);
    EXPECT_EQ(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1s), error::not_open);
  }
}

TEST(peer_machine, cea_without_result_code_or_for_another_request_fails) {
  {
    harness h;
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    const bytes cer = h.written_one();
    message_header hd = harness::view(cer).header();
    hd.flags = 0;
    bytes cea;
    message_builder b(cea, hd);
    b.add_string(avp_code::origin_host, "x").add_string(avp_code::origin_realm, "y");
    b.finish();
    h.feed(cea);
    ASSERT_TRUE(h.m.handshake_error());
    EXPECT_EQ(h.m.handshake_error()->result_code, 0U);
  }
  {
    harness h;
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    bytes cea = harness::cea_for(h.written_one(), result_code::success);
    cea[15] ^= 1;  // another Hop-by-Hop id
    h.feed(cea);
    EXPECT_EQ(h.m.state(), peer_state::failed);
  }
  {
    harness h;  // a DWR before the CEA
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    h.written();
    h.feed(harness::request(command::device_watchdog, 5));
    EXPECT_EQ(h.m.state(), peer_state::failed);
  }
}

TEST(peer_machine, no_common_application_is_a_handshake_failure) {
  harness h;
  const ip_address local = ip_address::v4({127, 0, 0, 1});
  h.m.connected(h.now, {&local, 1});
  h.feed(harness::cea_for(h.written_one(), result_code::success, {16777251}));
  EXPECT_EQ(h.m.state(), peer_state::failed);
  ASSERT_TRUE(h.m.handshake_error());
  EXPECT_EQ(h.m.handshake_error()->result_code, result_code::no_common_application);
}

TEST(peer_machine, a_relay_peer_or_a_base_only_client_has_a_common_application) {
  {
    harness h;
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    h.feed(harness::cea_for(h.written_one(), result_code::success, {application::relay}));
    EXPECT_EQ(h.m.state(), peer_state::open);
  }
  {
    peer_config c = test_config();
    c.local.auth_application_ids.clear();
    harness h(c);
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    h.feed(harness::cea_for(h.written_one(), result_code::success, {16777251}));
    EXPECT_EQ(h.m.state(), peer_state::open);
  }
  {
    peer_config c = test_config();  // common application inside a Vendor-Specific-Application-Id
    c.local.auth_application_ids.clear();
    c.local.vendor_specific_application_ids = {{10415, 16777251, 0}};
    harness h(c);
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    h.feed(harness::cea_for(h.written_one(), result_code::success, {16777251}));
    EXPECT_EQ(h.m.state(), peer_state::open);
  }
}

TEST(peer_machine, no_cea_within_cer_timeout_fails_at_the_deadline) {
  harness h;
  const ip_address local = ip_address::v4({127, 0, 0, 1});
  h.m.connected(h.now, {&local, 1});
  h.written();
  EXPECT_EQ(h.m.next_deadline(), h.now + 5s);
  h.at(5s - 1ns);
  EXPECT_EQ(h.m.state(), peer_state::cer_sent);
  h.at(1ns);
  EXPECT_EQ(h.m.state(), peer_state::failed);
  EXPECT_EQ(h.m.close_reason(), error::handshake_failed);
  EXPECT_NE(h.m.handshake_error()->reason.find("cer_timeout"), std::string::npos);
}

TEST(peer_machine, eof_while_waiting_for_the_cea_fails_at_once) {
  harness h;
  const ip_address local = ip_address::v4({127, 0, 0, 1});
  h.m.connected(h.now, {&local, 1});
  h.m.connection_lost(h.now, std::make_error_code(std::errc::connection_reset));
  EXPECT_EQ(h.m.state(), peer_state::failed);
  EXPECT_EQ(h.m.close_reason(), error::handshake_failed);
  EXPECT_EQ(h.m.handshake_error()->result_code, 0U);
}

// ---------------------------------------------------------------------------------------------
// Watchdog (RFC 3539)

TEST(peer_machine, dwr_is_sent_after_tw_of_silence_within_the_jitter_bounds) {
  std::set<std::int64_t> tws;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    harness h(test_config(), seed);
    h.open();
    const steady_time opened = h.now;
    const auto when = h.m.next_deadline();
    ASSERT_TRUE(when);
    EXPECT_GE(*when - opened, 28s);
    EXPECT_LE(*when - opened, 32s);
    tws.insert((*when - opened).count());
    h.now = *when - 1ns;
    h.m.advance(h.now);
    EXPECT_TRUE(h.written().empty());
    h.now = *when;
    h.m.advance(h.now);
    const bytes dwr = h.written_one();
    EXPECT_EQ(harness::view(dwr).header().command_code, command::device_watchdog);
    EXPECT_TRUE(harness::view(dwr).header().is_request());
    EXPECT_EQ(h.m.state(), peer_state::dwr_sent);
    EXPECT_TRUE(h.m.ready());
  }
  EXPECT_GT(tws.size(), 30U);  // jittered, not one fixed value
}

TEST(peer_machine, any_received_message_postpones_the_dwr) {
  harness h;
  h.open();
  h.at(20s);
  h.feed(harness::request(command::device_watchdog, 99));  // the peer's own DWR
  h.written();
  h.at(27s);  // 47 s after open, 27 s after the last message: Tw >= 28 s not reached
  EXPECT_TRUE(h.written().empty());
  h.at(6s);  // 33 s of silence: Tw <= 32 s passed
  EXPECT_EQ(h.written().size(), 1U);
}

TEST(peer_machine, dwa_returns_to_open_and_only_one_dwr_is_outstanding) {
  harness h;
  h.open();
  h.at(32s);
  const bytes dwr = h.written_one();
  h.at(9s);  // within dwr_timeout: no second DWR even though Tw passed again? not yet
  EXPECT_TRUE(h.written().empty());
  h.feed(harness::answer_for(dwr, result_code::success));
  EXPECT_EQ(h.m.state(), peer_state::open);
  EXPECT_EQ(h.m.counters().dwa_received, 1U);
}

TEST(peer_machine, unanswered_dwrs_make_it_suspect_then_failed_at_max) {
  harness h;
  h.open();
  ASSERT_EQ(h.m.send(h.now, 7, harness::request(272, 1000), h.now + 1h), std::error_code{});
  h.written();
  for (unsigned i = 1; i <= 3; ++i) {
    const auto t = *h.m.next_deadline();
    h.now = t;
    h.m.advance(h.now);
    ASSERT_EQ(h.written().size(), 1U) << "DWR " << i;
    EXPECT_EQ(h.m.state(), peer_state::dwr_sent);
    EXPECT_EQ(*h.m.next_deadline(), h.now + 10s);
    h.at(10s);
    if (i < 3) {
      EXPECT_EQ(h.m.watchdog(), watchdog_state::suspect);
      EXPECT_EQ(h.m.state(), peer_state::open);
    }
  }
  EXPECT_EQ(h.m.state(), peer_state::failed);
  EXPECT_EQ(h.m.watchdog(), watchdog_state::down);
  EXPECT_EQ(h.m.close_reason(), error::watchdog_timeout);
  const auto failed = h.take<request_failed>();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].request, 7U);
  EXPECT_EQ(failed[0].error, error::connection_closed);
  EXPECT_EQ(h.m.counters().dwr_failures, 3U);
  EXPECT_EQ(h.take<close_transport>().size(), 1U);
}

TEST(peer_machine, after_an_unanswered_dwr_the_next_one_waits_tw_from_it) {
  harness h;
  h.open();
  h.now = *h.m.next_deadline();
  h.m.advance(h.now);
  ASSERT_EQ(h.written().size(), 1U);
  const steady_time first_dwr = h.now;
  h.at(10s);  // unanswered
  ASSERT_EQ(h.m.watchdog(), watchdog_state::suspect);
  EXPECT_TRUE(h.written().empty());
  const auto next = h.m.next_deadline();
  ASSERT_TRUE(next);
  EXPECT_GT(*next, h.now);
  EXPECT_GE(*next - first_dwr, 28s);
  EXPECT_LE(*next - first_dwr, 32s);
  h.now = *next;
  h.m.advance(h.now);
  EXPECT_EQ(h.written().size(), 1U);
}

TEST(peer_machine, with_dwr_timeout_above_tw_the_next_dwr_follows_the_failure_at_once) {
  peer_config c = test_config();
  c.dwr_interval = 5s;
  c.dwr_jitter = 0s;
  c.dwr_timeout = 8s;
  harness h(c);
  h.open();
  h.at(5s);
  ASSERT_EQ(h.written().size(), 1U);
  h.at(8s);  // unanswered; Tw after it has passed already: the next goes now
  EXPECT_EQ(h.written().size(), 1U);
  EXPECT_EQ(h.m.state(), peer_state::dwr_sent);
  EXPECT_EQ(*h.m.next_deadline(), h.now + 8s);
}

TEST(peer_machine, suspect_recovers_on_any_message) {
  harness h;
  h.open();
  h.now = *h.m.next_deadline();
  h.m.advance(h.now);
  h.written();
  h.at(10s);
  ASSERT_EQ(h.m.watchdog(), watchdog_state::suspect);
  h.feed(harness::request(command::device_watchdog, 3));
  EXPECT_EQ(h.m.watchdog(), watchdog_state::okay);
  // Failures were reset: three more unanswered DWRs are needed to fail.
  for (int i = 0; i < 2; ++i) {
    h.now = *h.m.next_deadline();
    h.m.advance(h.now);
    h.at(10s);
  }
  EXPECT_NE(h.m.state(), peer_state::failed);
}

TEST(peer_machine, peer_dwrs_are_answered_at_any_time_even_back_to_back) {
  harness h;
  h.open();
  h.now = *h.m.next_deadline();
  h.m.advance(h.now);  // our DWR outstanding too
  h.written();
  bytes three;
  for (std::uint32_t i = 0; i < 3; ++i) {
    const bytes r = harness::request(command::device_watchdog, 500 + i, 900 + i);
    three.insert(three.end(), r.begin(), r.end());
  }
  h.feed(three);
  const auto dwas = h.written();
  ASSERT_EQ(dwas.size(), 3U);
  for (std::uint32_t i = 0; i < 3; ++i) {
    const message_view v = harness::view(dwas[i]);
    EXPECT_FALSE(v.header().is_request());
    EXPECT_EQ(v.header().command_code, command::device_watchdog);
    EXPECT_EQ(v.header().hop_by_hop, 500 + i);
    EXPECT_EQ(v.header().end_to_end, 900 + i);
    EXPECT_EQ(u32(dwas[i], avp_code::result_code), 2001U);
    EXPECT_EQ(v.find(avp_code::origin_host)->as_string(), "client.example.com");
  }
  EXPECT_EQ(h.m.counters().dwr_received, 3U);
  EXPECT_EQ(h.m.state(), peer_state::dwr_sent);  // our own DWR is still outstanding
}

TEST(peer_machine, reopen_needs_three_dwas_before_requests_flow) {
  harness h;
  h.open(/*reopen=*/true);
  EXPECT_EQ(h.m.watchdog(), watchdog_state::reopen);
  EXPECT_FALSE(h.m.ready());
  EXPECT_EQ(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1s), error::not_open);
  for (int i = 0; i < 3; ++i) {
    const bytes dwr = h.written_one();
    EXPECT_EQ(harness::view(dwr).header().command_code, command::device_watchdog);
    EXPECT_FALSE(h.m.ready());
    h.feed(harness::answer_for(dwr, result_code::success));
  }
  EXPECT_TRUE(h.written().empty());
  EXPECT_TRUE(h.m.ready());
  EXPECT_EQ(h.m.watchdog(), watchdog_state::okay);
  EXPECT_EQ(h.m.state(), peer_state::open);
}

// ---------------------------------------------------------------------------------------------
// Requests and answers

TEST(peer_machine, assigns_hop_by_hop_and_restores_the_callers_in_the_answer) {
  harness h;
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 11, harness::request(272, 0xCAFE, 0x77), h.now + 5s));
  ASSERT_FALSE(h.m.send(h.now, 12, harness::request(272, 0xCAFE, 0), h.now + 5s));
  const auto sent = h.written();
  ASSERT_EQ(sent.size(), 2U);
  const auto h1 = harness::view(sent[0]).header();
  const auto h2 = harness::view(sent[1]).header();
  EXPECT_NE(h1.hop_by_hop, h2.hop_by_hop);
  EXPECT_EQ(h1.end_to_end, 0x77U);                   // the caller's End-to-End is kept
  EXPECT_EQ(h2.end_to_end >> 20, unix_now & 0xFFF);  // RFC 6733 section 3 layout
  EXPECT_EQ(h.m.pending_requests(), 2U);
  // Answers in reverse order, the second with the E bit: both delivered, to the right caller.
  bytes a2 = harness::answer_for(sent[1], result_code::unable_to_deliver);
  a2[4] |= cmd_flags::error;
  h.feed(a2);
  h.feed(harness::answer_for(sent[0], result_code::success));
  const auto answers = h.take<answer_received>();
  ASSERT_EQ(answers.size(), 2U);
  EXPECT_EQ(answers[0].request, 12U);
  EXPECT_EQ(harness::view(answers[0].message).header().hop_by_hop, 0xCAFEU);
  EXPECT_TRUE(harness::view(answers[0].message).header().is_error());
  EXPECT_EQ(u32(answers[0].message, avp_code::result_code), 3002U);
  EXPECT_EQ(answers[1].request, 11U);
  EXPECT_EQ(u32(answers[1].message, avp_code::result_code), 2001U);
  EXPECT_EQ(h.m.pending_requests(), 0U);
  EXPECT_EQ(h.m.counters().answers_received, 2U);
}

TEST(peer_machine, end_to_end_ids_increment) {
  harness h;
  h.open();
  std::vector<std::uint32_t> e2e;
  for (std::uint64_t i = 0; i < 5; ++i) {
    ASSERT_FALSE(h.m.send(h.now, i, harness::request(272, 1), h.now + 5s));
  }
  for (const auto& m : h.written())
    e2e.push_back(harness::view(m).header().end_to_end);
  for (std::size_t i = 1; i < e2e.size(); ++i)
    EXPECT_EQ(e2e[i], e2e[i - 1] + 1);
}

TEST(peer_machine, a_request_past_its_deadline_times_out_and_its_late_answer_is_unmatched) {
  harness h;
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 100ms));
  ASSERT_FALSE(h.m.send(h.now, 2, harness::request(272, 2), h.now + 200ms));
  const auto sent = h.written();
  EXPECT_EQ(h.m.next_deadline(), h.now + 100ms);
  h.at(100ms);
  auto failed = h.take<request_failed>();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].request, 1U);
  EXPECT_EQ(failed[0].error, error::timed_out);
  EXPECT_EQ(failed[0].error, condition::timeout);
  h.feed(harness::answer_for(sent[0], 2001));
  EXPECT_EQ(h.take<answer_received>().size(), 0U);
  const auto unmatched = h.take<unmatched_answer>();
  ASSERT_EQ(unmatched.size(), 1U);
  EXPECT_EQ(unmatched[0].hop_by_hop, harness::view(sent[0]).header().hop_by_hop);
  EXPECT_EQ(h.m.counters().unmatched_answers, 1U);
  EXPECT_EQ(h.m.counters().requests_timed_out, 1U);
  EXPECT_EQ(h.m.state(), peer_state::open);  // the connection stays up
}

// A request's context (given to send()) comes back with its outcome, whichever it is: its
// answer, its timeout, cancel(), the connection's loss, or fail_pending() in any state.
TEST(peer_machine, each_outcome_hands_back_the_requests_context) {
  harness h;
  h.open();
  int a = 0;
  int b = 0;
  int c = 0;
  int d = 0;
  ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 10s, &a));
  ASSERT_FALSE(h.m.send(h.now, 2, harness::request(272, 2), h.now + 1s, &b));
  ASSERT_FALSE(h.m.send(h.now, 3, harness::request(272, 3), h.now + 10s, &c));
  ASSERT_FALSE(h.m.send(h.now, 4, harness::request(272, 4), h.now + 10s, &d));
  const auto sent = h.written();
  ASSERT_EQ(sent.size(), 4U);
  h.feed(harness::answer_for(sent[0], 2001));
  const auto answers = h.take<answer_received>();
  ASSERT_EQ(answers.size(), 1U);
  EXPECT_EQ(answers[0].request, 1U);
  EXPECT_EQ(answers[0].context, &a);
  h.at(1s);  // request 2's deadline
  auto failed = h.take<request_failed>();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].context, &b);
  EXPECT_EQ(failed[0].error, error::timed_out);
  EXPECT_EQ(h.m.cancel(3), std::optional<void*>(&c));
  EXPECT_EQ(h.m.cancel(3), std::nullopt);
  h.m.connection_lost(h.now, std::make_error_code(std::errc::connection_reset));
  failed = h.take<request_failed>();
  ASSERT_EQ(failed.size(), 2U);
  EXPECT_EQ(failed[1].request, 4U);
  EXPECT_EQ(failed[1].context, &d);
  EXPECT_EQ(failed[1].error, error::connection_closed);

  harness o;  // fail_pending(): the requests end, the connection stays open
  o.open();
  int e = 0;
  ASSERT_FALSE(o.m.send(o.now, 9, harness::request(272, 9), o.now + 10s, &e));
  o.m.fail_pending(error::connection_closed);
  const auto ended = o.take<request_failed>();
  ASSERT_EQ(ended.size(), 1U);
  EXPECT_EQ(ended[0].request, 9U);
  EXPECT_EQ(ended[0].context, &e);
  EXPECT_EQ(o.m.pending_requests(), 0U);
  EXPECT_EQ(o.m.state(), peer_state::open);
}

TEST(peer_machine, cancel_forgets_the_request_and_counts_its_answer_as_unmatched) {
  harness h;
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 5, harness::request(272, 1), h.now + 1s));
  const bytes sent = h.written_one();
  EXPECT_TRUE(h.m.cancel(5));
  EXPECT_FALSE(h.m.cancel(5));
  h.at(2s);
  EXPECT_TRUE(h.take<request_failed>().empty());  // no outcome after cancel
  h.feed(harness::answer_for(sent, 2001));
  EXPECT_TRUE(h.take<answer_received>().empty());
  EXPECT_EQ(h.m.counters().unmatched_answers, 1U);
  EXPECT_EQ(h.m.counters().requests_cancelled, 1U);
}

TEST(peer_machine, a_duplicate_answer_is_unmatched) {
  harness h;
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 5, harness::request(272, 1), h.now + 1s));
  const bytes a = harness::answer_for(h.written_one(), 2001);
  h.feed(a);
  h.feed(a);
  EXPECT_EQ(h.take<answer_received>().size(), 1U);
  EXPECT_EQ(h.take<unmatched_answer>().size(), 1U);
}

TEST(peer_machine, an_answer_with_a_pending_hop_by_hop_id_but_not_its_request_is_ignored) {
  harness h;
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 5, harness::request(272, 1, 0x1234), h.now + 1s));
  const bytes sent = h.written_one();
  // Same Hop-by-Hop id, another Command-Code; then another End-to-End id.
  bytes other_command = harness::answer_for(sent, 2001);
  detail::store_u32(other_command.data() + 4,
                    (std::uint32_t{other_command[4]} << 24) | 275);  // flags kept, command 275
  bytes other_e2e = harness::answer_for(sent, 2001);
  detail::store_u32(other_e2e.data() + 16, 0x4321);
  h.feed(other_command);
  h.feed(other_e2e);
  EXPECT_TRUE(h.take<answer_received>().empty());
  const auto unmatched = h.take<unmatched_answer>();
  ASSERT_EQ(unmatched.size(), 2U);
  EXPECT_TRUE(unmatched[0].conflicting);
  EXPECT_EQ(unmatched[0].command_code, 275U);
  EXPECT_TRUE(unmatched[1].conflicting);
  EXPECT_EQ(h.m.counters().unmatched_answers, 2U);
  EXPECT_EQ(h.m.pending_requests(), 1U);  // still waiting for its own answer
  h.feed(harness::answer_for(sent, 2001));
  const auto answered = h.take<answer_received>();
  ASSERT_EQ(answered.size(), 1U);
  EXPECT_EQ(answered[0].request, 5U);
  EXPECT_EQ(harness::view(answered[0].message).header().end_to_end, 0x1234U);
}

TEST(peer_machine, hop_by_hop_ids_stay_unique_across_wrap_around) {
  harness h;
  h.open();
  h.m.set_next_ids(0xFFFFFFF0U, 1);
  std::set<std::uint32_t> pending;
  std::vector<bytes> sent;
  // 8 requests stay pending across the wrap.
  for (std::uint64_t i = 0; i < 8; ++i) {
    ASSERT_FALSE(h.m.send(h.now, i, harness::request(272, 1), h.now + 1h));
  }
  for (auto& m : h.written())
    pending.insert(harness::view(m).header().hop_by_hop);
  ASSERT_EQ(pending.size(), 8U);
  // Bring the counter back to the pending ids: they must be skipped, and 0 never used.
  h.m.set_next_ids(0xFFFFFFF0U, 1);
  std::set<std::uint32_t> later;
  for (std::uint64_t i = 100; i < 140; ++i) {
    ASSERT_FALSE(h.m.send(h.now, i, harness::request(272, 1), h.now + 1h));
  }
  for (auto& m : h.written()) {
    const auto id = harness::view(m).header().hop_by_hop;
    EXPECT_NE(id, 0U);
    EXPECT_FALSE(pending.contains(id)) << id;
    EXPECT_TRUE(later.insert(id).second) << id;
  }
  EXPECT_TRUE(later.contains(1U));  // wrapped
  EXPECT_EQ(h.m.pending_requests(), 48U);
}

TEST(peer_machine, send_rejects_when_not_open_and_bad_requests) {
  harness h;
  EXPECT_EQ(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1s), error::not_open);
  h.open();
  bytes answer = harness::request(272, 1);
  answer[4] &= static_cast<std::uint8_t>(~cmd_flags::request);
  EXPECT_EQ(h.m.send(h.now, 1, answer, h.now + 1s), error::invalid_request);
  bytes truncated = harness::request(272, 1);
  truncated.resize(30);
  EXPECT_EQ(h.m.send(h.now, 1, truncated, h.now + 1s), error::invalid_request);
  ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1s));
  EXPECT_EQ(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1s), error::invalid_request);
  EXPECT_EQ(h.written().size(), 1U);  // nothing written for rejected requests
}

TEST(peer_machine, connection_loss_fails_every_pending_request_at_once) {
  harness h;
  h.open();
  for (std::uint64_t i = 0; i < 10; ++i) {
    ASSERT_FALSE(h.m.send(h.now, i, harness::request(272, 1), h.now + 1s + i * 1ms));
  }
  h.m.connection_lost(h.now, std::make_error_code(std::errc::connection_reset));
  const auto failed = h.take<request_failed>();
  ASSERT_EQ(failed.size(), 10U);
  std::set<std::uint64_t> ids;
  for (const auto& f : failed) {
    EXPECT_EQ(f.error, error::connection_closed);
    ids.insert(f.request);
  }
  EXPECT_EQ(ids.size(), 10U);
  EXPECT_EQ(h.m.state(), peer_state::failed);
  EXPECT_EQ(h.m.close_reason(), std::errc::connection_reset);
  EXPECT_EQ(h.m.pending_requests(), 0U);
  EXPECT_EQ(h.m.next_deadline(), std::nullopt);
  h.at(2s);
  EXPECT_EQ(h.take<request_failed>().size(), 10U);  // nothing more
}

// ---------------------------------------------------------------------------------------------
// Peer-initiated messages

TEST(peer_machine, unknown_peer_requests_get_3001_with_the_e_bit) {
  harness h;
  h.open();
  h.feed(harness::request(command::re_auth, 0x55, 0x66, cmd_flags::proxiable));
  const bytes a = h.written_one();
  const message_view v = harness::view(a);
  EXPECT_FALSE(v.header().is_request());
  EXPECT_TRUE(v.header().is_error());
  EXPECT_TRUE(v.header().is_proxiable());
  EXPECT_EQ(v.header().hop_by_hop, 0x55U);
  EXPECT_EQ(v.header().end_to_end, 0x66U);
  EXPECT_EQ(v.header().command_code, command::re_auth);
  EXPECT_EQ(v.avps().begin()->code(), avp_code::session_id);  // Session-Id first
  EXPECT_EQ(u32(a, avp_code::result_code), result_code::command_unsupported);
  EXPECT_EQ(h.m.state(), peer_state::open);
  EXPECT_EQ(h.m.counters().peer_requests, 1U);
}

TEST(peer_machine, a_registered_handler_gets_peer_requests_and_answers_them) {
  peer_config c = test_config();
  c.handle_peer_requests = true;
  harness h(c);
  h.open();
  const bytes rar = harness::request(command::re_auth, 0x55, 0x66);
  h.feed(rar);
  EXPECT_TRUE(h.written().empty());
  const auto reqs = h.take<peer_request>();
  ASSERT_EQ(reqs.size(), 1U);
  EXPECT_EQ(reqs[0].message, rar);
  const bytes raa = harness::answer_for(rar, 2001);
  EXPECT_FALSE(h.m.send_answer(raa));
  EXPECT_EQ(h.written_one(), raa);
  EXPECT_EQ(h.m.send_answer(rar), error::invalid_request);
}

TEST(peer_machine, peer_dpr_is_answered_and_closes_cleanly) {
  harness h;
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 9, harness::request(272, 1), h.now + 1s));
  h.written();
  message_header hd;
  hd.flags = cmd_flags::request;
  hd.command_code = command::disconnect_peer;
  hd.hop_by_hop = 0x99;
  bytes dpr;
  message_builder b(dpr, hd);
  b.add_string(avp_code::origin_host, "server.example.net")
      .add_string(avp_code::origin_realm, "example.net")
      .add_integer32(avp_code::disconnect_cause, disconnect_cause::do_not_want_to_talk_to_you);
  b.finish();
  h.feed(dpr);
  const bytes dpa = h.written_one();
  EXPECT_EQ(harness::view(dpa).header().command_code, command::disconnect_peer);
  EXPECT_EQ(harness::view(dpa).header().hop_by_hop, 0x99U);
  EXPECT_EQ(u32(dpa, avp_code::result_code), 2001U);
  EXPECT_EQ(h.m.state(), peer_state::closed);
  EXPECT_EQ(h.m.peer_disconnect_cause(), disconnect_cause::do_not_want_to_talk_to_you);
  EXPECT_EQ(h.m.close_reason(), error::disconnected_by_peer);
  const auto failed = h.take<request_failed>();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].error, error::connection_closed);
  EXPECT_EQ(h.take<close_transport>().size(), 1U);
  h.m.connection_lost(h.now, std::make_error_code(std::errc::connection_reset));
  EXPECT_EQ(h.m.state(), peer_state::closed);  // the peer closing after DPA is fine
}

TEST(peer_machine, close_without_draining_sends_dpr_at_once_and_waits_for_owed_answers) {
  peer_config c = test_config();
  c.disconnect_cause = disconnect_cause::busy;
  c.drain_timeout = 0s;
  harness h(c);
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 10s));
  ASSERT_FALSE(h.m.send(h.now, 2, harness::request(272, 2), h.now + 10s));
  const auto sent = h.written();
  h.m.close(h.now, error::invalid_config);  // any error: what the still-pending get
  EXPECT_EQ(h.m.state(), peer_state::closing);
  const bytes dpr = h.written_one();
  EXPECT_EQ(harness::view(dpr).header().command_code, command::disconnect_peer);
  EXPECT_EQ(harness::view(dpr).find(avp_code::disconnect_cause)->as_integer32(),
            disconnect_cause::busy);
  EXPECT_EQ(h.m.next_deadline(), h.now + 2s);
  EXPECT_EQ(h.m.send(h.now, 3, harness::request(272, 3), h.now + 1s), error::not_open);
  h.feed(harness::answer_for(sent[0], 2001));
  EXPECT_EQ(h.take<answer_received>().size(), 1U);
  // The DPA comes before the answer to request 2 (freeDiameter does this): keep waiting.
  h.feed(harness::answer_for(dpr, 2001));
  EXPECT_EQ(h.m.state(), peer_state::closing);
  h.at(2s);  // request 2 is never answered
  EXPECT_EQ(h.m.state(), peer_state::closed);
  EXPECT_FALSE(h.m.close_reason());
  const auto failed = h.take<request_failed>();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].request, 2U);
  EXPECT_EQ(failed[0].error, error::invalid_config);
  EXPECT_EQ(h.take<close_transport>().size(), 1U);
}

TEST(peer_machine, answers_after_the_dpa_are_delivered_then_it_closes) {
  peer_config c = test_config();
  c.drain_timeout = 0s;
  harness h(c);
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 10s));
  const bytes req = h.written_one();
  h.m.close(h.now);
  const bytes dpr = h.written_one();
  h.feed(harness::answer_for(dpr, 2001));
  EXPECT_EQ(h.m.state(), peer_state::closing);
  h.feed(harness::answer_for(req, 2001));
  EXPECT_EQ(h.take<answer_received>().size(), 1U);
  EXPECT_EQ(h.m.state(), peer_state::closed);
  EXPECT_TRUE(h.take<request_failed>().empty());
}

TEST(peer_machine, close_drains_pending_answers_before_the_dpr) {
  harness h;  // drain_timeout 2 s
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 10s));
  ASSERT_FALSE(h.m.send(h.now, 2, harness::request(272, 2), h.now + 10s));
  const auto sent = h.written();
  h.m.close(h.now);
  EXPECT_EQ(h.m.state(), peer_state::closing);
  EXPECT_FALSE(h.m.ready());
  EXPECT_TRUE(h.written().empty());  // no DPR while answers are owed
  EXPECT_EQ(h.m.next_deadline(), h.now + 2s);
  EXPECT_EQ(h.m.send(h.now, 3, harness::request(272, 3), h.now + 1s), error::not_open);
  h.feed(harness::answer_for(sent[0], 2001));
  EXPECT_TRUE(h.written().empty());
  h.feed(harness::answer_for(sent[1], 2001));
  const bytes dpr = h.written_one();  // the last answer lets the DPR go
  EXPECT_EQ(harness::view(dpr).header().command_code, command::disconnect_peer);
  h.feed(harness::answer_for(dpr, 2001));
  EXPECT_EQ(h.m.state(), peer_state::closed);
  EXPECT_EQ(h.take<answer_received>().size(), 2U);
  EXPECT_TRUE(h.take<request_failed>().empty());
}

TEST(peer_machine, draining_ends_at_drain_timeout_or_when_the_last_request_is_cancelled) {
  {
    harness h;
    h.open();
    ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1h));
    h.written();
    h.m.close(h.now);
    h.at(2s - 1ns);
    EXPECT_TRUE(h.written().empty());
    h.at(1ns);
    const bytes dpr = h.written_one();
    EXPECT_EQ(harness::view(dpr).header().command_code, command::disconnect_peer);
    EXPECT_EQ(h.m.next_deadline(), h.now + 2s);  // now the DPA wait
    h.at(2s);
    EXPECT_EQ(h.m.state(), peer_state::closed);
    ASSERT_EQ(h.take<request_failed>().size(), 1U);
  }
  {
    harness h;
    h.open();
    ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1h));
    h.written();
    h.m.close(h.now);
    EXPECT_TRUE(h.m.cancel(1));
    EXPECT_EQ(harness::view(h.written_one()).header().command_code, command::disconnect_peer);
  }
}

TEST(peer_machine, close_without_dpa_ends_at_dpa_timeout_or_when_the_peer_closes) {
  {
    harness h;
    h.open();
    h.m.close(h.now);
    h.at(2s - 1ns);
    EXPECT_EQ(h.m.state(), peer_state::closing);
    h.at(1ns);
    EXPECT_EQ(h.m.state(), peer_state::closed);
  }
  {
    harness h;
    h.open();
    h.m.close(h.now);
    h.m.connection_lost(h.now, std::make_error_code(std::errc::connection_reset));
    EXPECT_EQ(h.m.state(), peer_state::closed);
  }
  {
    harness h;  // not open yet: closes at once, no DPR
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    h.m.connected(h.now, {&local, 1});
    h.written();
    h.m.close(h.now);
    EXPECT_EQ(h.m.state(), peer_state::closed);
    EXPECT_TRUE(h.written().empty());
  }
}

// ---------------------------------------------------------------------------------------------
// Bad input and life cycle

TEST(peer_machine, malformed_frames_fail_the_connection_and_its_requests) {
  for (int variant = 0; variant < 3; ++variant) {
    harness h;
    h.open();
    ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1s));
    const bytes sent = h.written_one();
    bytes bad = harness::answer_for(sent, 2001);
    std::error_code expected;
    if (variant == 0) {
      bad[0] = 2;
      expected = error::bad_version;
    } else if (variant == 1) {
      bad[1] = 0xFF;
      expected = error::message_too_long;
    } else {
      bad[20 + 7] = 0xFF;  // first AVP runs past the message
      expected = error::avp_overrun;
    }
    h.feed(bad);
    EXPECT_EQ(h.m.state(), peer_state::failed);
    EXPECT_EQ(h.m.close_reason(), expected);
    const auto failed = h.take<request_failed>();
    ASSERT_EQ(failed.size(), 1U);
    EXPECT_EQ(failed[0].error, error::connection_closed);
    EXPECT_TRUE(h.take<answer_received>().empty());
  }
}

TEST(peer_machine, bytes_split_anywhere_are_reassembled) {
  harness h;
  h.open();
  ASSERT_FALSE(h.m.send(h.now, 1, harness::request(272, 1), h.now + 1s));
  const bytes a = harness::answer_for(h.written_one(), 2001);
  for (const std::uint8_t b : a)
    h.m.receive(h.now, {&b, 1});
  EXPECT_EQ(h.take<answer_received>().size(), 1U);
}

TEST(peer_machine, reconnects_through_reconnecting_and_connecting) {
  harness h;
  h.open();
  h.m.connection_lost(h.now, std::make_error_code(std::errc::connection_reset));
  h.m.start_reconnecting(h.now);
  EXPECT_EQ(h.m.state(), peer_state::reconnecting);
  EXPECT_EQ(h.m.next_deadline(), std::nullopt);
  h.m.start_connecting(h.now);
  EXPECT_EQ(h.m.state(), peer_state::connecting);
  EXPECT_FALSE(h.m.close_reason());
  const ip_address local = ip_address::v4({127, 0, 0, 1});
  h.m.connected(h.now, {&local, 1});
  h.feed(harness::cea_for(h.written_one(), 2001));
  EXPECT_EQ(h.m.state(), peer_state::open);
}

TEST(peer_config, validate_names_the_bad_field) {
  const std::pair<std::function<void(peer_config&)>, const char*> cases[] = {
      {[](peer_config& c) { c.local.origin_host.clear(); }, "origin_host"},
      {[](peer_config& c) { c.local.origin_realm.clear(); }, "origin_realm"},
      {[](peer_config& c) { c.local.product_name.clear(); }, "product_name"},
      {[](peer_config& c) { c.cer_timeout = 0s; }, "cer_timeout"},
      {[](peer_config& c) { c.dwr_interval = -1s; }, "dwr_interval"},
      {[](peer_config& c) { c.dwr_jitter = 30s; }, "dwr_jitter"},
      {[](peer_config& c) { c.dwr_timeout = 0s; }, "dwr_timeout"},
      {[](peer_config& c) { c.max_dwr_failures = 0; }, "max_dwr_failures"},
      {[](peer_config& c) { c.dpa_timeout = 0s; }, "dpa_timeout"},
      {[](peer_config& c) { c.max_message_size = 10; }, "max_message_size"},
      {[](peer_config& c) {
         c.local.vendor_specific_application_ids = {{0, 1, 0}};
       },
       "vendor_specific_application_ids"},
      {[](peer_config& c) {
         c.local.vendor_specific_application_ids = {{10415, 1, 2}};
       },
       "vendor_specific_application_ids"},
  };
  std::string field;
  EXPECT_FALSE(test_config().validate(&field));
  EXPECT_TRUE(field.empty());
  for (const auto& [mutate, name] : cases) {
    peer_config c = test_config();
    mutate(c);
    EXPECT_EQ(c.validate(&field), error::invalid_config) << name;
    EXPECT_EQ(field, name);
  }
}

TEST(peer_state, names_match_the_seed) {
  EXPECT_EQ(to_string(peer_state::disconnected), "DISCONNECTED");
  EXPECT_EQ(to_string(peer_state::connecting), "CONNECTING");
  EXPECT_EQ(to_string(peer_state::cer_sent), "CER_SENT");
  EXPECT_EQ(to_string(peer_state::open), "OPEN");
  EXPECT_EQ(to_string(peer_state::dwr_sent), "DWR_SENT");
  EXPECT_EQ(to_string(peer_state::closing), "CLOSING");
  EXPECT_EQ(to_string(peer_state::failed), "FAILED");
  EXPECT_EQ(to_string(peer_state::reconnecting), "RECONNECTING");
  EXPECT_EQ(to_string(peer_state::closed), "CLOSED");
  EXPECT_TRUE(is_active(peer_state::open));
  EXPECT_TRUE(is_active(peer_state::dwr_sent));
  EXPECT_FALSE(is_active(peer_state::closing));
  EXPECT_EQ(to_string(watchdog_state::reopen), "REOPEN");
}

}  // namespace
}  // namespace diampool
