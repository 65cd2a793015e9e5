// address_client against embedded peers on loopback: every behaviour the seed and DESIGN.md
// promise, end to end with short real timeouts.
#include "diampool/address_client.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <filesystem>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "diampool/builder.hpp"
#include "diampool/embedded_peer.hpp"
#include "test_support.hpp"

namespace diampool {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
using clock = std::chrono::steady_clock;
using test::black_hole;
using test::eventually;
using test::make_request;
using test::refused_port;
using test::view;

pool_config test_config() {
  pool_config c = pool_config::defaults();
  c.origin_host = "client.example.com";
  c.origin_realm = "example.com";
  c.auth_app_ids = {4};
  c.dial_timeout = 2s;
  c.cer_timeout = 2s;
  c.send_timeout = 5s;
  c.reconnect_interval = 50ms;
  c.max_reconnect_delay = 400ms;
  c.reconnect_jitter = 0;
  c.dpa_timeout = 500ms;
  c.drain_timeout = 500ms;
  c.worker_threads = 2;
  return c;
}

// A failed establishment is retried for the requests whose deadline reaches the next attempt;
// with this schedule none does, so a request gets the failure of the first attempt at once.
pool_config no_retry_config() {
  pool_config c = test_config();
  c.reconnect_interval = 60s;
  c.max_reconnect_delay = 120s;
  return c;
}

std::uint32_t result_code_of(const bytes& answer) {
  const message_view v = view(answer);
  for (const avp& a : v.avps()) {
    if (a.code() == avp_code::result_code) {
      std::error_code ec;
      return a.as_unsigned32(ec);
    }
  }
  return 0;
}

embedded_peer_options peer_options() {
  embedded_peer_options o;
  o.auth_application_ids = {4};
  return o;
}

// Keeps every record, for tests of what is logged.
class recording_logger final : public logger {
 public:
  struct record {
    log_level level;
    std::string message;
    std::map<std::string, std::string> fields;
  };
  bool enabled(log_level) const noexcept override { return true; }
  void log(log_level level, std::string_view message, std::span<const log_field> fields) override {
    record r{level, std::string(message), {}};
    for (const auto& f : fields)
      r.fields[std::string(f.key)] = f.value;
    std::lock_guard lk(m_);
    records_.push_back(std::move(r));
  }
  std::optional<record> find(std::string_view message) const {
    std::lock_guard lk(m_);
    for (const auto& r : records_) {
      if (r.message == message) return r;
    }
    return std::nullopt;
  }

 private:
  mutable std::mutex m_;
  std::vector<record> records_;
};

class address_client_test : public ::testing::Test {
 protected:
  embedded_peer peer_{peer_options()};
  std::shared_ptr<logger> quiet_ = null_logger();

  std::unique_ptr<address_client> make(pool_config c = test_config()) {
    return std::make_unique<address_client>(std::move(c), quiet_);
  }
};

// ---- basics ----

TEST_F(address_client_test, sends_reuse_one_connection_per_address) {
  embedded_peer other(peer_options());
  auto client = make();
  std::error_code ec;
  const bytes a1 = client->send(peer_.address(), make_request(0x1111), ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(view(a1).header().hop_by_hop, 0x1111U);  // the caller's own id comes back
  EXPECT_EQ(result_code_of(a1), 2001U);
  const bytes a2 = client->send(peer_.address(), make_request(0x2222), ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(view(a2).header().hop_by_hop, 0x2222U);
  EXPECT_EQ(peer_.stats().connections_accepted, 1U);  // reused
  EXPECT_EQ(peer_.stats().cers, 1U);
  ASSERT_FALSE(client->send(other.address(), make_request(3), ec).empty());
  EXPECT_EQ(other.stats().connections_accepted, 1U);  // a new address, a new connection

  EXPECT_EQ(client->active_connections(), 2U);
  std::vector<std::string> expected{peer_.address(), other.address()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(client->list_connections(), expected);

  const auto info = client->connection(peer_.address());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, peer_state::open);
  EXPECT_EQ(info->peer.origin_host, "peer.example.net");
  EXPECT_EQ(info->stats.requests_sent, 2U);
  EXPECT_EQ(info->stats.answers_received, 2U);
  EXPECT_FALSE(client->connection("127.0.0.1:1"));
  const std::vector<connection_info> all = client->connections();
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[0].address, expected[0]);
  EXPECT_EQ(all[1].address, expected[1]);
  EXPECT_EQ(all[0].state, peer_state::open);

  const client_stats s = client->stats();
  EXPECT_EQ(s.total_requests, 3U);
  EXPECT_EQ(s.total_responses, 3U);
  EXPECT_EQ(s.total_errors, 0U);
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.pool.active_connections, 2U);
  EXPECT_EQ(s.pool.connections_created, 2U);
  EXPECT_EQ(s.pool.addresses, 2U);
  // CER + 2 requests to peer_, CER + 1 request to other (and perhaps DWRs: none at 30 s).
  EXPECT_EQ(s.pool.messages_sent, 5U);
  EXPECT_EQ(s.pool.messages_received, 5U);
  // Each side counts a write when it completes, so the two views agree once both have.
  EXPECT_TRUE(eventually([&] {
    const pool_stats p = client->stats().pool;
    return p.bytes_sent == peer_.stats().bytes_received + other.stats().bytes_received &&
           p.bytes_received == peer_.stats().bytes_sent + other.stats().bytes_sent;
  }));
}

TEST_F(address_client_test, latencies_are_recorded_per_address) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);  // establishes
  embedded_peer_faults f;
  f.answer_delay = 20ms;
  peer_.set_faults(f);
  for (int i = 0; i < 10; ++i) {
    client->send(peer_.address(), make_request(2), ec);
    ASSERT_FALSE(ec);
  }
  const auto info = client->connection(peer_.address());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->latency.count, 11U);
  // Ten of eleven answers took at least the 20 ms delay; the histogram says so (12.5 %).
  EXPECT_GE(info->latency.quantile(0.5), 20000U * 7 / 8);
  EXPECT_GE(info->latency.max, 20000U);
  EXPECT_LT(info->latency.min, 20000U);  // the first, undelayed
  EXPECT_EQ(client->stats().latency.count, 11U);
}

TEST_F(address_client_test, a_non_2001_result_is_an_answer_not_an_error) {
  embedded_peer_faults f;
  f.result_code = 5012;
  peer_.set_faults(f);
  auto client = make();
  std::error_code ec;
  const bytes a = client->send(peer_.address(), make_request(7), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(result_code_of(a), 5012U);
  EXPECT_EQ(client->stats().total_responses, 1U);
}

TEST_F(address_client_test, the_throwing_send_and_the_timeout_overload) {
  auto client = make();
  EXPECT_EQ(result_code_of(client->send(peer_.address(), make_request(1))), 2001U);
  std::error_code ec;
  EXPECT_FALSE(client->send(peer_.address(), make_request(2), 1s, ec).empty());
  EXPECT_FALSE(ec);
  try {
    client->send("no-port", make_request(3));
    FAIL() << "expected an exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), error::invalid_address);
  }
}

TEST_F(address_client_test, an_invalid_config_names_its_field) {
  pool_config c = test_config();
  c.send_buffer_size = 0;
  try {
    address_client client(c, quiet_);
    FAIL() << "expected an exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), error::invalid_config);
    EXPECT_NE(std::string(e.what()).find("send_buffer_size"), std::string::npos) << e.what();
  }
  c = test_config();
  c.origin_host.clear();
  EXPECT_THROW(address_client(c, quiet_), std::system_error);
}

TEST_F(address_client_test, invalid_addresses_and_requests_are_refused_before_any_dial) {
  auto client = make();
  std::error_code ec;
  for (const char* bad : {"host", "host:", ":3868", "[::1", "[::1]", "::1:3868", "127.0.0.1:70000",
                          "127.0.0.1:0", "", "[127.0.0.1]:3868"}) {
    client->send(bad, make_request(1), ec);
    EXPECT_EQ(ec, error::invalid_address) << bad;
    EXPECT_EQ(ec, std::errc::invalid_argument) << bad;
  }
  bytes answer_not_request = make_request(1);
  answer_not_request[4] &= 0x7f;  // R flag cleared
  client->send(peer_.address(), answer_not_request, ec);
  EXPECT_EQ(ec, error::invalid_request);
  client->send(peer_.address(), bytes{1, 2, 3}, ec);
  EXPECT_EQ(ec, error::invalid_request);
  EXPECT_EQ(peer_.stats().connections_accepted, 0U);
  EXPECT_EQ(client->stats().pool.addresses, 0U);
  EXPECT_EQ(client->stats().total_errors, 12U);
}

TEST_F(address_client_test, ipv6_literals_and_dns_names_work) {
  std::unique_ptr<embedded_peer> v6;
  try {
    embedded_peer_options o = peer_options();
    o.listen = "[::1]:0";
    v6 = std::make_unique<embedded_peer>(o);
  } catch (const std::system_error&) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  auto client = make();
  std::error_code ec;
  client->send("[::1]:" + std::to_string(v6->port()), make_request(1), ec);
  EXPECT_FALSE(ec) << ec.message();
  client->send("localhost:" + std::to_string(peer_.port()), make_request(2), ec);
  EXPECT_FALSE(ec) << ec.message();
}

// ---- single-flight establishment (DESIGN 1) ----

TEST_F(address_client_test, a_thousand_threads_on_a_new_address_make_one_connection) {
  auto client = make();
  constexpr int threads = 1000;
  std::latch start(threads);
  std::atomic<int> answered{0};
  std::vector<std::thread> ts;
  ts.reserve(threads);
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      const bytes req = make_request(static_cast<std::uint32_t>(i));
      start.arrive_and_wait();
      std::error_code ec;
      const bytes a = client->send(peer_.address(), req, ec);
      if (!ec && view(a).header().hop_by_hop == static_cast<std::uint32_t>(i)) ++answered;
    });
  }
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(answered.load(), threads);
  EXPECT_EQ(peer_.stats().connections_accepted, 1U);
  EXPECT_EQ(peer_.stats().cers, 1U);
  EXPECT_EQ(client->stats().pool.connections_created, 1U);
  EXPECT_EQ(client->stats().pool.reconnect_attempts, 0U);
}

TEST_F(address_client_test, waiters_on_a_failed_establishment_get_its_own_failure) {
  embedded_peer_faults f;
  f.cea_result_code = 5010;  // DIAMETER_NO_COMMON_APPLICATION
  peer_.set_faults(f);
  pool_config c = test_config();
  c.reconnect_interval = 60s;  // threads that come late fail fast with the same error
  c.max_reconnect_delay = 120s;
  auto client = make(c);
  constexpr int threads = 100;
  std::latch start(threads);
  std::vector<std::error_code> errors(threads);
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      start.arrive_and_wait();
      client->send(peer_.address(), make_request(1), errors[i]);
    });
  }
  for (auto& t : ts)
    t.join();
  for (const auto& ec : errors)
    EXPECT_EQ(ec, error::handshake_failed) << ec.message();
  EXPECT_EQ(peer_.stats().cers, 1U);  // one establishment for all of them
  const auto info = client->connection(peer_.address());
  ASSERT_TRUE(info);
  ASSERT_TRUE(info->stats.handshake);
  EXPECT_EQ(info->stats.handshake->result_code, 5010U);
  EXPECT_EQ(info->last_error, error::handshake_failed);
  EXPECT_EQ(client->stats().pool.failed_establishments, 1U);
}

TEST_F(address_client_test, a_transient_refusal_is_retried_within_the_deadline) {
  // The first CER is refused (5012, as a peer still cleaning up an earlier connection from the
  // same Origin-Host answers); the next one is accepted.
  embedded_peer* self = nullptr;
  embedded_peer_options o = peer_options();
  o.faults.cea_result_code = 5012;
  o.on_message = [&](const message_view& m) {
    if (m.header().command_code == command::capabilities_exchange) self->set_faults({});
  };
  embedded_peer peer(o);
  self = &peer;
  auto client = make();  // next attempt 50 ms after a failure, well within the deadline
  std::error_code ec;
  const bytes a = client->send(peer.address(), make_request(9), 2s, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(view(a).header().hop_by_hop, 9U);
  const client_stats s = client->stats();
  EXPECT_EQ(s.pool.failed_establishments, 1U);
  EXPECT_EQ(s.pool.connections_created, 1U);
  EXPECT_EQ(peer.stats().cers, 2U);
}

TEST_F(address_client_test, a_permanent_refusal_is_not_retried_for_the_waiting_request) {
  embedded_peer_faults f;
  f.cea_result_code = 3010;  // DIAMETER_UNKNOWN_PEER: trying again soon will not help
  peer_.set_faults(f);
  auto client = make();  // next attempt 50 ms after a failure, well within the deadline
  std::error_code ec;
  client->send(peer_.address(), make_request(1), 5s, ec);
  EXPECT_EQ(ec, error::handshake_failed);
  EXPECT_EQ(peer_.stats().cers, 1U);
  EXPECT_EQ(client->stats().pool.failed_establishments, 1U);
}

TEST_F(address_client_test, a_refused_address_fails_every_waiter_with_the_refusal) {
  pool_config c = test_config();
  c.reconnect_interval = 60s;  // requests that come after the failure fail fast with it
  c.max_reconnect_delay = 120s;
  auto client = make(c);
  const refused_port refused;
  const std::string& addr = refused.address();
  std::vector<std::future<bytes>> fs;
  for (int i = 0; i < 20; ++i)
    fs.push_back(client->async_send(addr, make_request(1), asio::use_future));
  for (auto& f : fs) {
    try {
      f.get();
      ADD_FAILURE() << "answered?";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::connection_refused) << e.code().message();
      EXPECT_EQ(e.code(), condition::connection_failed);
    }
  }
  EXPECT_EQ(client->stats().pool.failed_establishments, 1U);
}

// Each CEA error code the seed's handshake can meet: the establishment fails with
// handshake_failed, and the code is kept for the caller and the log.
class cea_error_test : public address_client_test,
                       public ::testing::WithParamInterface<std::uint32_t> {};

TEST_P(cea_error_test, fails_the_establishment_with_the_code) {
  embedded_peer_faults f;
  f.cea_result_code = GetParam();
  peer_.set_faults(f);
  auto records = std::make_shared<recording_logger>();
  quiet_ = records;
  auto client = make(no_retry_config());
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  EXPECT_EQ(ec, error::handshake_failed);
  EXPECT_EQ(ec, condition::connection_failed);
  const auto info = client->connection(peer_.address());
  ASSERT_TRUE(info && info->stats.handshake);
  EXPECT_EQ(info->stats.handshake->result_code, GetParam());
  const auto rec = records->find("establishment failed");
  ASSERT_TRUE(rec) << "no log record";
  EXPECT_EQ(rec->fields.at("result_code"), std::to_string(GetParam()));
  EXPECT_EQ(rec->fields.at("address"), peer_.address());
}

INSTANTIATE_TEST_SUITE_P(codes, cea_error_test, ::testing::Values(3010U, 4003U, 5010U, 5012U));

TEST_F(address_client_test, no_cea_within_cer_timeout_fails_the_handshake) {
  embedded_peer_faults f;
  f.answer_cer = false;
  peer_.set_faults(f);
  pool_config c = no_retry_config();
  c.cer_timeout = 100ms;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), 5s, ec);
  EXPECT_EQ(ec, error::handshake_failed) << ec.message();
  EXPECT_EQ(client->connection(peer_.address())->stats.handshake->result_code, 0U);
}

TEST_F(address_client_test, a_dial_that_hangs_fails_at_dial_timeout) {
  black_hole hole;
  pool_config c = no_retry_config();
  c.dial_timeout = 100ms;
  c.cer_timeout = 300ms;
  auto client = make(c);
  const auto start = clock::now();
  std::error_code ec;
  client->send(hole.address(), make_request(1), 5s, ec);
  // The SYN dropped: the dial times out. (Or the kernel completed it into the full queue
  // anyway, and then no CEA comes: the handshake times out.) Both well before the deadline.
  EXPECT_TRUE(ec == error::connection_timeout || ec == error::handshake_failed) << ec.message();
  EXPECT_LT(clock::now() - start, 3s);
}

// ---- deadlines (DESIGN 2) ----

TEST_F(address_client_test, a_short_send_to_a_black_hole_returns_at_its_deadline) {
  black_hole hole;
  pool_config c = test_config();
  c.dial_timeout = 10s;
  c.cer_timeout = 10s;
  auto client = make(c);
  const auto start = clock::now();
  std::error_code ec;
  client->send(hole.address(), make_request(1), 100ms, ec);
  const auto took = clock::now() - start;
  EXPECT_EQ(ec, error::timed_out) << ec.message();
  EXPECT_EQ(ec, condition::timeout);
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 2s);  // not dial_timeout (10 s) later
  EXPECT_EQ(client->stats().total_timeouts, 1U);
}

TEST_F(address_client_test, a_short_send_to_a_peer_that_never_answers_cer_returns_at_its_deadline) {
  embedded_peer_faults f;
  f.answer_cer = false;
  peer_.set_faults(f);
  pool_config c = test_config();
  c.cer_timeout = 10s;
  auto client = make(c);
  const auto start = clock::now();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), 100ms, ec);
  EXPECT_EQ(ec, error::timed_out) << ec.message();
  EXPECT_LT(clock::now() - start, 2s);
}

TEST_F(address_client_test, a_slow_answer_times_out_and_is_counted_unmatched_when_it_comes) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);  // open
  embedded_peer_faults f;
  f.answer_delay = 300ms;
  peer_.set_faults(f);
  client->send(peer_.address(), make_request(2), 50ms, ec);
  EXPECT_EQ(ec, error::timed_out);
  EXPECT_TRUE(eventually([&] { return client->stats().pool.unmatched_answers == 1; }));
  EXPECT_EQ(client->active_connections(), 1U);  // the connection stays up
}

// ---- cancellation ----

TEST_F(address_client_test, a_stop_token_cancels_a_pending_request_and_the_connection_stays) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  ASSERT_FALSE(ec);
  embedded_peer_faults f;
  f.answer_delay = 300ms;
  peer_.set_faults(f);
  std::stop_source stop;
  std::thread canceller([&] {
    peer_.wait_for([](const embedded_peer_stats& s) { return s.requests == 2; }, 5000ms);
    stop.request_stop();
  });
  const auto start = clock::now();
  client->send(peer_.address(), make_request(2), clock::now() + 5s, ec, stop.get_token());
  canceller.join();
  EXPECT_EQ(ec, error::cancelled);
  EXPECT_EQ(ec, condition::cancelled);
  EXPECT_LT(clock::now() - start, 250ms + 1s);
  EXPECT_TRUE(eventually([&] { return client->stats().pool.unmatched_answers == 1; }));
  peer_.set_faults({});
  client->send(peer_.address(), make_request(3), ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(peer_.stats().connections_accepted, 1U);
  EXPECT_EQ(client->stats().total_cancelled, 1U);
}

TEST_F(address_client_test, a_stop_requested_before_the_call_sends_nothing) {
  auto client = make();
  std::stop_source stop;
  stop.request_stop();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), clock::now() + 1s, ec, stop.get_token());
  EXPECT_EQ(ec, error::cancelled);
  EXPECT_EQ(peer_.stats().requests, 0U);
}

TEST_F(address_client_test, asio_cancellation_of_a_request_waiting_for_its_connection) {
  embedded_peer_faults f;
  f.answer_cer = false;
  peer_.set_faults(f);
  auto client = make();
  asio::cancellation_signal signal;
  std::promise<std::error_code> done;
  asio::post(client->get_executor(), [&] {
    client->async_send(peer_.address(), make_request(1),
                       asio::bind_cancellation_slot(
                           signal.slot(), [&](std::error_code ec, bytes) { done.set_value(ec); }));
  });
  ASSERT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.cers == 1; }, 5000ms));
  // Emitted on the executor the operation was started on.
  asio::post(client->get_executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
  auto fu = done.get_future();
  ASSERT_EQ(fu.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(fu.get(), error::cancelled);
}

TEST_F(address_client_test, asio_cancellation_of_a_request_on_its_connection) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  embedded_peer_faults f;
  f.answer_delay = 500ms;
  peer_.set_faults(f);
  asio::cancellation_signal signal;
  std::promise<std::error_code> done;
  asio::post(client->get_executor(), [&] {
    client->async_send(peer_.address(), make_request(2),
                       asio::bind_cancellation_slot(
                           signal.slot(), [&](std::error_code e, bytes) { done.set_value(e); }));
  });
  ASSERT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.requests == 2; }, 5000ms));
  asio::post(client->get_executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
  auto fu = done.get_future();
  ASSERT_EQ(fu.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(fu.get(), error::cancelled);
  EXPECT_TRUE(eventually([&] { return client->stats().pool.unmatched_answers == 1; }));
  EXPECT_EQ(client->active_connections(), 1U);
}

// ---- asynchronous forms ----

TEST_F(address_client_test, async_send_with_callbacks_futures_and_coroutines) {
  auto client = make();
  std::promise<bytes> p;
  client->async_send(peer_.address(), make_request(11), [&](std::error_code ec, bytes a) {
    EXPECT_FALSE(ec);
    p.set_value(std::move(a));
  });
  EXPECT_EQ(view(p.get_future().get()).header().hop_by_hop, 11U);

  auto f =
      client->async_send(peer_.address(), make_request(12), clock::now() + 2s, asio::use_future);
  EXPECT_EQ(view(f.get()).header().hop_by_hop, 12U);

  asio::io_context io;
  std::uint32_t got = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        bytes a =
            co_await client->async_send(peer_.address(), make_request(13), asio::use_awaitable);
        got = view(a).header().hop_by_hop;
      },
      asio::detached);
  io.run();
  EXPECT_EQ(got, 13U);
}

TEST_F(address_client_test, send_and_forget_sends_and_counts_the_answer) {
  auto client = make();
  EXPECT_FALSE(client->send_and_forget(peer_.address(), make_request(1)));
  EXPECT_EQ(client->send_and_forget("nope", make_request(1)), error::invalid_address);
  EXPECT_TRUE(eventually([&] { return client->stats().total_responses == 1; }));
  EXPECT_EQ(peer_.stats().requests, 1U);
}

TEST_F(address_client_test, runs_on_an_executor_the_application_owns) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  {
    address_client client(test_config(), quiet_, io.get_executor());
    std::error_code ec;
    client.send(peer_.address(), make_request(1), ec);
    EXPECT_FALSE(ec);
    client.close();
    EXPECT_EQ(peer_.stats().dprs, 1U);
  }
  work.reset();
  t.join();
}

// ---- reconnection and backoff (DESIGN 9, 7) ----

TEST_F(address_client_test, a_broken_connection_is_reestablished_in_the_background) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  ASSERT_FALSE(ec);
  peer_.close_all();
  ASSERT_TRUE(peer_.wait_for(
      [](const embedded_peer_stats& s) { return s.connections_accepted == 2; }, 5000ms));
  // Reconnected without any send: RFC 3539 REOPEN, then open again.
  EXPECT_TRUE(eventually([&] { return client->stats().pool.connections_created == 2; }));
  EXPECT_EQ(client->active_connections(), 1U);
  const client_stats s = client->stats();
  EXPECT_EQ(s.pool.connections_closed, 1U);
  EXPECT_EQ(s.pool.reconnect_attempts, 1U);
  EXPECT_EQ(s.pool.connections_created, 2U);
  EXPECT_EQ(client->connection(peer_.address())->stats.reconnects, 1U);
  client->send(peer_.address(), make_request(2), ec);
  EXPECT_FALSE(ec);
}

TEST_F(address_client_test, without_reconnect_the_next_send_reestablishes) {
  pool_config c = test_config();
  c.reconnect_enabled = false;
  c.reconnect_interval = 10ms;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  peer_.close_all();
  EXPECT_TRUE(eventually([&] { return client->active_connections() == 0; }));
  const auto info = client->connection(peer_.address());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, peer_state::failed);  // not reconnecting by itself
  EXPECT_EQ(peer_.stats().connections_accepted, 1U);
  // The send waits for the backoff delay (10 ms, within its deadline) and the new connection.
  client->send(peer_.address(), make_request(2), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(peer_.stats().connections_accepted, 2U);
}

TEST_F(address_client_test, a_down_address_is_not_redialled_on_every_send) {
  embedded_peer_faults f;
  f.cea_result_code = 3010;  // DIAMETER_UNKNOWN_PEER: every dial is accepted, then refused
  peer_.set_faults(f);
  pool_config c = test_config();
  c.reconnect_interval = 60s;  // far beyond every deadline below
  c.max_reconnect_delay = 120s;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  EXPECT_EQ(ec, error::handshake_failed);
  for (int i = 0; i < 200; ++i) {
    const auto start = clock::now();
    client->send(peer_.address(), make_request(1), 1s, ec);
    EXPECT_EQ(ec, error::handshake_failed);  // the reason the address is down, at once
    EXPECT_LT(clock::now() - start, 500ms);
  }
  EXPECT_EQ(peer_.stats().connections_accepted, 1U);
  EXPECT_EQ(client->stats().pool.failed_establishments, 1U);
  const auto info = client->connection(peer_.address());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->consecutive_failures, 1U);
  ASSERT_TRUE(info->next_attempt);
  EXPECT_GT(*info->next_attempt, clock::now() + 50s);
}

TEST_F(address_client_test, backoff_grows_between_failed_establishments) {
  const refused_port refused;
  const std::string& addr = refused.address();
  pool_config c = test_config();
  c.reconnect_interval = 100ms;
  c.reconnect_backoff = 2.0;
  c.max_reconnect_delay = 400ms;
  auto client = make(c);
  std::error_code ec;
  std::vector<std::chrono::nanoseconds> delays;  // from each failure to the next attempt
  for (int i = 0; i < 5; ++i) {
    // A deadline 60 ms past the next attempt: the send waits for that attempt, which is
    // refused, and the one after it (at least 100 ms later) is too late for it.
    const auto before = client->connection(addr);
    const steady_time next = before && before->next_attempt ? *before->next_attempt : clock::now();
    client->send(addr, make_request(1), std::max(next, clock::now()) + 60ms, ec);
    const auto failed_at = clock::now();
    EXPECT_EQ(ec, std::errc::connection_refused) << i << ": " << ec.message();
    const auto info = client->connection(addr);
    ASSERT_TRUE(info && info->next_attempt) << i;
    delays.push_back(*info->next_attempt - failed_at);
  }
  const client_stats s = client->stats();
  EXPECT_EQ(s.pool.failed_establishments, 5U);
  EXPECT_EQ(s.pool.reconnect_attempts, 4U);
  EXPECT_EQ(client->connection(addr)->consecutive_failures, 5U);
  // 100, 200, 400, 400, 400 ms (no jitter): the capped exponential schedule, give or take the
  // few milliseconds between the failure and the send's return.
  const std::chrono::milliseconds expected[] = {100ms, 200ms, 400ms, 400ms, 400ms};
  for (std::size_t i = 0; i < delays.size(); ++i) {
    EXPECT_LE(delays[i], expected[i]) << i;
    EXPECT_GE(delays[i], expected[i] - 50ms) << i;
  }
}

TEST_F(address_client_test, do_not_want_to_talk_to_you_holds_the_address_back_for_the_cap) {
  pool_config c = test_config();
  c.max_reconnect_delay = 30s;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  ASSERT_FALSE(ec);
  peer_.send_dpr(disconnect_cause::do_not_want_to_talk_to_you);
  // The connection's state changes first; the pool notes the loss on its own strand.
  std::optional<connection_info> info;
  ASSERT_TRUE(eventually([&] {
    info = client->connection(peer_.address());
    return client->active_connections() == 0 && info && info->next_attempt;
  }));
  EXPECT_GT(*info->next_attempt, clock::now() + 25s);
  EXPECT_EQ(info->last_error, error::disconnected_by_peer);
  client->send(peer_.address(), make_request(2), 1s, ec);
  EXPECT_EQ(ec, error::disconnected_by_peer);  // fails fast: no attempt before the cap
  EXPECT_TRUE(
      peer_.wait_for([](const embedded_peer_stats& s) { return s.dpas_received == 1; }, 5000ms));
  EXPECT_EQ(peer_.stats().connections_accepted, 1U);
}

TEST_F(address_client_test, a_rebooting_peer_is_redialled_after_the_initial_delay) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  peer_.send_dpr(disconnect_cause::rebooting);
  ASSERT_TRUE(peer_.wait_for(
      [](const embedded_peer_stats& s) { return s.connections_accepted == 2; }, 5000ms));
  EXPECT_TRUE(eventually([&] { return client->active_connections() == 1; }));
}

TEST_F(address_client_test, pending_requests_fail_at_once_when_the_connection_is_lost) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  embedded_peer_faults f;
  f.answer_delay = 5s;
  peer_.set_faults(f);
  std::vector<std::future<bytes>> fs;
  for (int i = 0; i < 10; ++i) {
    fs.push_back(client->async_send(peer_.address(), make_request(10 + i), asio::use_future));
  }
  ASSERT_TRUE(
      peer_.wait_for([](const embedded_peer_stats& s) { return s.requests == 11; }, 5000ms));
  const auto start = clock::now();
  peer_.close_all();
  for (auto& fu : fs) {
    try {
      fu.get();
      ADD_FAILURE() << "answered?";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), error::connection_closed) << e.code().message();
    }
  }
  EXPECT_LT(clock::now() - start, 2s);
}

TEST_F(address_client_test, malformed_input_closes_the_connection_and_the_address_recovers) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  embedded_peer_faults f;
  f.answer_delay = 5s;
  peer_.set_faults(f);
  auto pending = client->async_send(peer_.address(), make_request(2), asio::use_future);
  ASSERT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.requests == 2; }, 5000ms));
  // A header claiming 16 MiB: the connection is closed, nothing that size is allocated.
  peer_.write_raw({0x01, 0xff, 0xff, 0xfc, 0x80, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1});
  try {
    pending.get();
    ADD_FAILURE() << "answered?";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), error::connection_closed) << e.code().message();
  }
  EXPECT_TRUE(eventually([&] {
    const auto info = client->connection(peer_.address());
    return info && info->last_error == condition::malformed_message;
  }));
  peer_.set_faults({});
  EXPECT_TRUE(eventually([&] { return client->active_connections() == 1; }));
  client->send(peer_.address(), make_request(3), ec);
  EXPECT_FALSE(ec) << ec.message();
}

// ---- watchdog, peer requests ----

TEST_F(address_client_test, an_unanswered_watchdog_fails_the_connection_and_it_comes_back) {
  pool_config c = test_config();
  c.dwr_interval = 100ms;
  c.dwr_jitter = 10ms;
  c.dwr_timeout = 100ms;
  c.max_dwr_failures = 2;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  embedded_peer_faults f;
  f.answer_dwr = false;
  peer_.set_faults(f);
  ASSERT_TRUE(eventually([&] { return client->stats().pool.connections_closed == 1; }));
  EXPECT_EQ(client->connection(peer_.address())->last_error, error::watchdog_timeout);
  peer_.set_faults({});
  EXPECT_TRUE(eventually([&] { return client->active_connections() == 1; }));
  EXPECT_GE(peer_.stats().dwrs, 2U);
}

TEST_F(address_client_test, requests_from_the_peer_reach_the_handler_with_their_address) {
  pool_config c = test_config();
  std::mutex m;
  std::string seen_address;
  c.request_handler = [&](std::string_view address, const message_view& req) {
    {
      std::lock_guard lk(m);
      seen_address = address;
    }
    bytes out;
    message_header h = req.header();
    h.flags = static_cast<std::uint8_t>(h.flags & ~cmd_flags::request);
    message_builder b(out, h);
    b.add_unsigned32(avp_code::result_code, 2001)
        .add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com");
    b.finish();
    return out;
  };
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  peer_.send_request(258, 4);  // RAR
  ASSERT_TRUE(
      peer_.wait_for([](const embedded_peer_stats& s) { return s.answers_received == 1; }, 5000ms));
  std::lock_guard lk(m);
  EXPECT_EQ(seen_address, peer_.address());
}

// ---- lifecycle: idle timeout, max lifetime, health check (DESIGN 10) ----

TEST_F(address_client_test, an_idle_connection_is_closed_and_watchdogs_do_not_count) {
  pool_config c = test_config();
  c.idle_timeout = 300ms;
  c.dwr_interval = 50ms;  // watchdog traffic throughout: it must not keep the connection
  c.dwr_jitter = 5ms;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  ASSERT_FALSE(ec);
  ASSERT_TRUE(eventually([&] { return client->stats().pool.idle_closures == 1; }));
  EXPECT_GE(peer_.stats().dwrs, 2U);
  EXPECT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.dprs == 1; }, 5000ms));
  EXPECT_TRUE(eventually([&] { return client->stats().pool.connections_closed == 1; }));
  EXPECT_EQ(client->active_connections(), 0U);
  // The next send opens a new connection.
  client->send(peer_.address(), make_request(2), ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(peer_.stats().connections_accepted, 2U);
}

TEST_F(address_client_test, a_request_waiting_for_its_answer_keeps_the_connection_from_idling) {
  pool_config c = test_config();
  c.idle_timeout = 100ms;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  embedded_peer_faults f;
  f.answer_delay = 400ms;
  peer_.set_faults(f);
  const bytes a = client->send(peer_.address(), make_request(2), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(view(a).header().hop_by_hop, 2U);
  EXPECT_EQ(peer_.stats().dprs, 0U);
  // Idle from now on: closed after the timeout.
  EXPECT_TRUE(eventually([&] { return client->stats().pool.idle_closures == 1; }));
}

TEST_F(address_client_test, a_lost_connection_is_logged_with_its_address_and_reason) {
  auto records = std::make_shared<recording_logger>();
  quiet_ = records;
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  peer_.close_all();
  ASSERT_TRUE(eventually([&] { return records->find("connection lost").has_value(); }));
  const auto r = records->find("connection lost");
  EXPECT_EQ(r->level, log_level::warn);
  EXPECT_EQ(r->fields.at("address"), peer_.address());
  EXPECT_EQ(r->fields.at("error"), std::error_code(error::connection_closed).message());
  EXPECT_EQ(r->fields.at("reconnect"), "true");
}

TEST_F(address_client_test, application_traffic_keeps_a_connection_from_idling) {
  pool_config c = test_config();
  c.idle_timeout = 400ms;
  auto client = make(c);
  std::error_code ec;
  const auto end = clock::now() + 1200ms;
  while (clock::now() < end) {  // a request every 50 ms (pacing, not synchronisation)
    client->send(peer_.address(), make_request(1), ec);
    ASSERT_FALSE(ec);
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(client->stats().pool.idle_closures, 0U);
  EXPECT_EQ(peer_.stats().connections_accepted, 1U);
}

TEST_F(address_client_test, max_lifetime_replaces_connections_without_losing_a_request) {
  pool_config c = test_config();
  c.max_conn_lifetime = 200ms;
  auto client = make(c);
  constexpr int threads = 8;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> failed{0};
  std::mutex m;
  std::set<std::string> errors;
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      std::uint32_t n = 0;
      while (!stop.load()) {
        const std::uint32_t hbh = static_cast<std::uint32_t>(i) << 24 | n++;
        std::error_code ec;
        const bytes a = client->send(peer_.address(), make_request(hbh), ec);
        if (!ec && view(a).header().hop_by_hop == hbh) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard lk(m);
          errors.insert(ec.message());
        }
      }
    });
  }
  // Until three replacements have happened.
  const bool replaced =
      eventually([&] { return client->stats().pool.lifetime_expirations >= 3; }, 10000ms);
  stop = true;
  for (auto& t : ts)
    t.join();
  EXPECT_TRUE(replaced);
  EXPECT_EQ(failed.load(), 0U) << *errors.begin();
  EXPECT_GT(ok.load(), 0U);
  EXPECT_GE(peer_.stats().connections_accepted, 4U);
  // The replaced connections were closed gracefully (DPR), after their answers.
  EXPECT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.dprs >= 3; }, 5000ms));
  EXPECT_EQ(client->active_connections(), 1U);
}

TEST_F(address_client_test, a_peer_refusing_a_second_connection_is_replaced_break_before_make) {
  // Like freeDiameter, this peer answers 5012 to a CER from an Origin-Host it is still
  // connected to: the first CER after traffic started (the replacement's) is refused.
  embedded_peer* self = nullptr;
  std::atomic<int> cers{0};
  std::atomic<bool> armed{false};
  embedded_peer_options o = peer_options();
  o.on_message = [&](const message_view& m) {
    if (m.header().command_code == command::capabilities_exchange && m.header().is_request()) {
      if (++cers == 2) self->set_faults({});  // the CER after the refused one is accepted
    } else if (m.header().is_request() && m.header().command_code == 272 && !armed.exchange(true)) {
      embedded_peer_faults f;
      f.cea_result_code = 5012;
      self->set_faults(f);
    }
  };
  embedded_peer peer(o);
  self = &peer;
  pool_config c = test_config();
  c.max_conn_lifetime = 200ms;
  auto client = make(c);
  std::error_code ec;
  client->send(peer.address(), make_request(1), ec);
  ASSERT_FALSE(ec);
  // Requests keep coming through the replacement; none fails.
  std::size_t failures = 0;
  const auto end = clock::now() + 5s;
  while (client->stats().pool.lifetime_expirations == 0 && clock::now() < end) {
    client->send(peer.address(), make_request(2), ec);
    if (ec) ++failures;
  }
  ASSERT_TRUE(eventually([&] { return client->stats().pool.connections_created == 2; }));
  client->send(peer.address(), make_request(3), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(failures, 0U);
  // The first, the refused replacement, the new one (and later replacements, accepted).
  EXPECT_GE(cers.load(), 3);
  EXPECT_GE(peer.stats().dprs, 1U);  // the old connection closed gracefully
  const client_stats s = client->stats();
  EXPECT_GE(s.pool.lifetime_expirations, 1U);
  EXPECT_EQ(s.pool.failed_establishments, 1U);
  EXPECT_EQ(s.total_errors, 0U);
}

TEST_F(address_client_test, the_health_check_runs_and_forgets_idle_addresses) {
  pool_config c = test_config();
  c.health_check_interval = 50ms;
  c.idle_timeout = 100ms;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  ASSERT_FALSE(ec);
  EXPECT_TRUE(eventually([&] { return client->stats().pool.idle_closures == 1; }));
  EXPECT_TRUE(eventually([&] { return !client->connection(peer_.address()); }));
  EXPECT_GE(client->stats().pool.health_checks, 1U);
  EXPECT_EQ(client->stats().pool.addresses, 0U);
  // Forgotten, not broken: the address works again, and the counters kept its traffic.
  client->send(peer_.address(), make_request(2), ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(client->stats().pool.messages_sent, peer_.stats().messages_received);
}

// ---- backpressure (DESIGN 11) ----

TEST_F(address_client_test, a_peer_that_stops_reading_gets_bounded_queues_and_deadlines_hold) {
  pool_config c = test_config();
  c.send_buffer_size = 4;
  c.max_backlog = 16;
  c.write_timeout = 10s;
  c.max_message_size = 1024 * 1024;
  auto client = make(c);
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  embedded_peer_faults f;
  f.stop_reading = true;
  peer_.set_faults(f);
  const bytes big = make_request(2, std::string(256 * 1024, 'x'));
  std::vector<std::future<bytes>> fs;
  for (int i = 0; i < 200; ++i) {
    fs.push_back(client->async_send(peer_.address(), big, clock::now() + 500ms, asio::use_future));
  }
  std::size_t full = 0;
  std::size_t timed_out = 0;
  std::size_t other = 0;
  for (auto& fu : fs) {
    if (fu.wait_for(3s) != std::future_status::ready) {
      ADD_FAILURE() << "an outcome past the deadline";
      continue;
    }
    try {
      fu.get();
      ++other;
    } catch (const std::system_error& e) {
      if (e.code() == error::send_queue_full) {
        ++full;
      } else if (e.code() == error::timed_out) {
        ++timed_out;
      } else {
        ++other;
      }
    }
  }
  EXPECT_GT(full, 100U);  // beyond 4 queued + 16 waiting: refused at once
  EXPECT_EQ(full + timed_out + other, fs.size());
  EXPECT_EQ(client->stats().in_flight, 0U);
}

// ---- close (DESIGN 8) ----

TEST_F(address_client_test, close_sends_dpr_and_fails_pending_requests_with_pool_closed) {
  auto client = make();
  std::error_code ec;
  client->send(peer_.address(), make_request(1), ec);
  embedded_peer_faults f;
  f.answer_delay = 10s;
  peer_.set_faults(f);
  auto pending = client->async_send(peer_.address(), make_request(2), asio::use_future);
  ASSERT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.requests == 2; }, 5000ms));
  const auto start = clock::now();
  client->close();
  EXPECT_LT(clock::now() - start, 3s);  // bounded by drain_timeout + dpa_timeout
  EXPECT_EQ(peer_.stats().dprs, 1U);
  try {
    pending.get();
    ADD_FAILURE() << "answered?";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), error::pool_closed) << e.code().message();
  }
  client->send(peer_.address(), make_request(3), ec);
  EXPECT_EQ(ec, error::pool_closed);
  EXPECT_EQ(client->send_and_forget(peer_.address(), make_request(3)), error::pool_closed);
  client->close();  // twice: harmless
  EXPECT_TRUE(client->closed());
  EXPECT_EQ(client->stats().in_flight, 0U);
  EXPECT_EQ(client->active_connections(), 0U);
}

TEST_F(address_client_test, close_while_a_hundred_threads_send) {
  embedded_peer other(peer_options());
  auto client = make();
  std::atomic<std::uint64_t> answered{0};
  std::atomic<std::uint64_t> closed{0};
  std::atomic<std::uint64_t> unexpected{0};
  std::latch started(100);
  std::vector<std::thread> ts;
  for (int i = 0; i < 100; ++i) {
    ts.emplace_back([&, i] {
      const std::string& addr = i % 2 ? peer_.address() : other.address();
      bool first = true;
      for (;;) {
        std::error_code ec;
        client->send(addr, make_request(static_cast<std::uint32_t>(i)), ec);
        if (first) {
          started.count_down();
          first = false;
        }
        if (!ec) {
          ++answered;
        } else if (ec == error::pool_closed) {
          ++closed;
          return;
        } else {
          ++unexpected;
          return;
        }
      }
    });
  }
  started.wait();
  client->close();
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(closed.load(), 100U);
  EXPECT_EQ(unexpected.load(), 0U);
  EXPECT_GT(answered.load(), 0U);
  const client_stats s = client->stats();
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.total_requests, s.total_responses + s.total_errors);
}

TEST_F(address_client_test, the_destructor_closes_and_releases_every_thread) {
  {
    auto client = make();
    std::error_code ec;
    client->send(peer_.address(), make_request(1), ec);
  }
  EXPECT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.dprs == 1; }, 5000ms));
}

std::size_t entries_in(const char* dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir))
    ++n;
  return n;
}

TEST_F(address_client_test, close_releases_every_thread_and_socket) {
  embedded_peer other(peer_options());
  const refused_port refused;
  const std::size_t fds = entries_in("/proc/self/fd");
  const std::size_t threads = entries_in("/proc/self/task");
  {
    pool_config c = test_config();
    c.worker_threads = 4;
    auto client = make(c);
    std::error_code ec;
    client->send(peer_.address(), make_request(1), ec);
    client->send(other.address(), make_request(2), ec);
    client->send(refused.address(), make_request(3), 100ms, ec);
    EXPECT_GT(entries_in("/proc/self/task"), threads);
    client->close();
    EXPECT_EQ(entries_in("/proc/self/task"), threads);  // joined
    // The peers live in this process too: their side of each connection closes on their own
    // thread once they see the client's close, so wait for that before counting descriptors.
    const auto all_closed = [](const embedded_peer_stats& s) { return s.connections_open == 0; };
    ASSERT_TRUE(peer_.wait_for(all_closed, 5s));
    ASSERT_TRUE(other.wait_for(all_closed, 5s));
    EXPECT_EQ(entries_in("/proc/self/fd"), fds);  // the client's sockets, timers, epoll: closed
  }
  EXPECT_EQ(entries_in("/proc/self/fd"), fds);
}

// ---- many threads, many addresses (run under TSan in CI) ----

TEST_F(address_client_test, many_threads_and_addresses_each_get_their_own_answers) {
  std::vector<std::unique_ptr<embedded_peer>> peers;
  for (int i = 0; i < 4; ++i)
    peers.push_back(std::make_unique<embedded_peer>(peer_options()));
  auto client = make();
  constexpr int threads = 16;
  constexpr int per_thread = 200;
  std::atomic<int> mismatched{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const auto& p = peers[static_cast<std::size_t>((t + i) % 4)];
        const std::uint32_t hbh = static_cast<std::uint32_t>(t << 16 | i);
        const std::string session = "s;" + std::to_string(hbh);
        std::error_code ec;
        const bytes a = client->send(p->address(), make_request(hbh, session), ec);
        if (ec) {
          ++failed;
          continue;
        }
        const message_view v = view(a);
        bool session_ok = false;
        for (const avp& x : v.avps()) {
          if (x.code() == avp_code::session_id) session_ok = x.as_string() == session;
        }
        if (v.header().hop_by_hop != hbh || !session_ok) ++mismatched;
      }
    });
  }
  // Inspection concurrently with the traffic.
  std::atomic<bool> done{false};
  std::thread inspector([&] {
    while (!done) {
      (void)client->stats();
      (void)client->list_connections();
      for (const auto& p : peers)
        (void)client->connection(p->address());
    }
  });
  for (auto& t : ts)
    t.join();
  done = true;
  inspector.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(mismatched.load(), 0);
  for (const auto& p : peers)
    EXPECT_EQ(p->stats().connections_accepted, 1U);
  EXPECT_EQ(client->stats().total_responses, std::uint64_t{threads} * per_thread);
}

}  // namespace
}  // namespace diampool
