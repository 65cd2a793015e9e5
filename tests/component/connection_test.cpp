#include "diampool/connection.hpp"

#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "diampool/builder.hpp"
#include "diampool/embedded_peer.hpp"
#include "diampool/frame_decoder.hpp"
#include "test_support.hpp"

namespace diampool {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
using clock = std::chrono::steady_clock;
using test::make_request;
using test::view;

connection_config test_config() {
  connection_config c;
  c.peer.local.origin_host = "client.example.com";
  c.peer.local.origin_realm = "example.com";
  c.peer.local.auth_application_ids = {4};
  c.peer.cer_timeout = 2s;
  c.dial_timeout = 2s;
  return c;
}

// An io_context with one thread, and an embedded peer.
class connection_test : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    conn_.reset();
    work_.reset();
    thread_.join();
  }
  std::shared_ptr<connection> make(connection_config c = test_config()) {
    conn_ = connection::create(io_.get_executor(), std::move(c));
    return conn_;
  }
  std::shared_ptr<connection> open(connection_config c = test_config()) {
    auto conn = make(std::move(c));
    EXPECT_FALSE(conn->connect(peer_.address(), clock::now() + 5s));
    return conn;
  }
  static steady_time in(std::chrono::nanoseconds d) { return clock::now() + d; }

  /// Makes the peer hold its answers, sends one request and returns once the peer has it: a
  /// request that stays pending until the test ends the connection.
  std::future<bytes> pending_request(connection& conn) {
    embedded_peer_faults f;
    f.answer_delay = std::chrono::seconds(30);
    peer_.set_faults(f);
    const auto before = peer_.stats().requests;
    auto fu = conn.async_send(make_request(1, "s"), in(60s), asio::use_future);
    EXPECT_TRUE(
        peer_.wait_for([&](const embedded_peer_stats& s) { return s.requests > before; }, 5s));
    return fu;
  }

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
  embedded_peer peer_;
  std::shared_ptr<connection> conn_;
};

TEST_F(connection_test, connects_and_exchanges_capabilities) {
  std::mutex m;
  bytes cer;
  embedded_peer_options o;
  o.on_message = [&](const message_view& v) {
    std::lock_guard lock(m);
    if (v.header().command_code == command::capabilities_exchange) {
      cer.assign(v.bytes().begin(), v.bytes().end());
    }
  };
  embedded_peer peer(o);
  auto conn = make();
  EXPECT_EQ(conn->state(), peer_state::disconnected);
  ASSERT_FALSE(conn->connect(peer.address(), in(5s)));
  EXPECT_EQ(conn->state(), peer_state::open);
  EXPECT_TRUE(conn->ready());
  EXPECT_EQ(peer.stats().cers, 1U);
  std::lock_guard lock(m);
  const auto v = view(cer);
  EXPECT_EQ(v.find(avp_code::origin_host)->as_string(), "client.example.com");
  EXPECT_EQ(v.find(avp_code::host_ip_address)->as_address().ip()->to_string(), "127.0.0.1");
  EXPECT_EQ(v.find(avp_code::auth_application_id)->as_unsigned32(), 4U);
  const capabilities p = conn->peer();
  EXPECT_EQ(p.origin_host, "peer.example.net");
  EXPECT_EQ(p.origin_realm, "example.net");
  EXPECT_EQ(p.product_name, "diampool-peer");
  ASSERT_EQ(p.host_ip_addresses.size(), 1U);
  EXPECT_EQ(p.host_ip_addresses[0].to_string(), "127.0.0.1");
  const auto s = conn->stats();
  EXPECT_EQ(s.state, peer_state::open);
  EXPECT_EQ(s.messages_sent, 1U);
  EXPECT_EQ(s.messages_received, 1U);
  EXPECT_GT(s.bytes_sent, 100U);
  EXPECT_EQ(s.reconnects, 0U);
}

TEST_F(connection_test, answers_come_back_matched_with_every_completion_token) {
  auto conn = open();
  // Callback.
  std::promise<std::pair<std::error_code, bytes>> p;
  conn->async_send(make_request(0x1111, "s;1"), in(5s), [&](std::error_code ec, bytes a) {
    p.set_value({ec, std::move(a)});
  });
  auto [ec, answer] = p.get_future().get();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(view(answer).header().hop_by_hop, 0x1111U);
  EXPECT_FALSE(view(answer).header().is_request());
  EXPECT_EQ(view(answer).find(avp_code::session_id)->as_string(), "s;1");
  EXPECT_EQ(view(answer).find(avp_code::result_code)->as_unsigned32(), 2001U);
  // use_future.
  auto f = conn->async_send(make_request(0x2222, "s;2"), in(5s), asio::use_future);
  EXPECT_EQ(view(f.get()).header().hop_by_hop, 0x2222U);
  // use_awaitable.
  std::promise<std::uint32_t> hbh;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        bytes a =
            co_await conn->async_send(make_request(0x3333, "s;3"), in(5s), asio::use_awaitable);
        hbh.set_value(view(a).header().hop_by_hop);
      },
      asio::detached);
  EXPECT_EQ(hbh.get_future().get(), 0x3333U);
  // Synchronous.
  std::error_code sec;
  const bytes sa = conn->send(make_request(0x4444, "s;4"), in(5s), sec);
  ASSERT_FALSE(sec);
  EXPECT_EQ(view(sa).header().hop_by_hop, 0x4444U);
  EXPECT_EQ(conn->stats().answers_received, 4U);
}

TEST_F(connection_test, a_thousand_pipelined_requests_each_get_their_own_answer) {
  auto conn = open();
  constexpr int n = 1000;
  std::vector<std::future<bytes>> futures;
  for (int i = 0; i < n; ++i) {
    futures.push_back(
        conn->async_send(make_request(static_cast<std::uint32_t>(i), "s;" + std::to_string(i)),
                         in(10s), asio::use_future));
  }
  for (int i = 0; i < n; ++i) {
    const bytes a = futures[i].get();
    EXPECT_EQ(view(a).header().hop_by_hop, static_cast<std::uint32_t>(i));
    EXPECT_EQ(view(a).find(avp_code::session_id)->as_string(), "s;" + std::to_string(i));
  }
  EXPECT_EQ(peer_.stats().requests, static_cast<std::uint64_t>(n));
  EXPECT_EQ(conn->stats().unmatched_answers, 0U);
}

// Every descriptor registered with an epoll instance of this process, with its event mask
// (/proc/self/fdinfo of each eventpoll descriptor: "tfd: FD events: MASK data: ...").
std::vector<std::pair<int, unsigned>> epoll_registrations() {
  std::vector<std::pair<int, unsigned>> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec).string() != "anon_inode:[eventpoll]") {
      continue;
    }
    std::ifstream in("/proc/self/fdinfo/" + e.path().filename().string());
    std::string word;
    while (in >> word) {
      if (word != "tfd:") continue;
      int fd = -1;
      std::string label;
      unsigned events = 0;
      in >> fd >> label >> std::hex >> events >> std::dec;
      if (label == "events:") out.emplace_back(fd, events);
    }
  }
  return out;
}

// asio registers a socket for EPOLLOUT to learn that its connect ended, and keeps it: every
// ACK would then wake the reactor for nothing. An open connection watches input only.
TEST_F(connection_test, an_open_connection_does_not_watch_for_writability) {
  auto conn = open();
  ASSERT_TRUE(conn->ready());
  EXPECT_FALSE(conn->async_send(make_request(1, "s"), in(5s), asio::use_future).get().empty());
  const auto registered = epoll_registrations();
  ASSERT_FALSE(registered.empty());  // the io_context's and the peer's
  for (const auto& [fd, events] : registered) {
    EXPECT_EQ(events & EPOLLOUT, 0U) << "descriptor " << fd << " events " << std::hex << events;
  }
  // Still a working connection: requests and answers flow.
  EXPECT_FALSE(conn->async_send(make_request(2, "s"), in(5s), asio::use_future).get().empty());
}

TEST_F(connection_test, a_request_past_its_deadline_times_out_and_the_connection_stays_up) {
  auto conn = open();
  embedded_peer_faults f;
  f.answer_delay = 300ms;
  peer_.set_faults(f);
  const auto start = clock::now();
  std::error_code ec;
  conn->send(make_request(1, "s;late"), start + 50ms, ec);
  const auto took = clock::now() - start;
  EXPECT_EQ(ec, error::timed_out);
  EXPECT_EQ(ec, condition::timeout);
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 2s);  // bounded by its own deadline, not by anything longer
  // The late answer arrives before the next one (same delay, same connection).
  const bytes a = conn->send(make_request(2, "s;next"), in(5s), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(view(a).header().hop_by_hop, 2U);
  EXPECT_EQ(conn->stats().unmatched_answers, 1U);
  EXPECT_EQ(conn->stats().requests_timed_out, 1U);
  EXPECT_TRUE(conn->ready());
}

TEST_F(connection_test, asio_cancellation_removes_the_request) {
  auto conn = open();
  embedded_peer_faults f;
  f.answer_delay = 200ms;
  peer_.set_faults(f);
  asio::cancellation_signal signal;
  std::promise<std::error_code> p;
  conn->async_send(make_request(1, "s;c"), in(5s),
                   asio::bind_cancellation_slot(
                       signal.slot(), [&](std::error_code ec, bytes) { p.set_value(ec); }));
  asio::post(io_, [&] { signal.emit(asio::cancellation_type::terminal); });
  const auto ec = p.get_future().get();
  EXPECT_EQ(ec, error::cancelled);
  EXPECT_EQ(ec, condition::cancelled);
  std::error_code ec2;
  conn->send(make_request(2, "s;d"), in(5s), ec2);
  ASSERT_FALSE(ec2);
  EXPECT_EQ(conn->stats().unmatched_answers, 1U);
  EXPECT_EQ(conn->stats().requests_cancelled, 1U);
  EXPECT_TRUE(conn->ready());
}

TEST_F(connection_test, a_stop_token_cancels_a_synchronous_send) {
  auto conn = open();
  embedded_peer_faults f;
  f.answer_delay = 2s;
  peer_.set_faults(f);
  std::stop_source stop;
  std::error_code ec;
  std::thread canceller([&] {
    // Cancel once the request is on the wire (the peer has received it).
    peer_.wait_for([](const embedded_peer_stats& s) { return s.requests == 1; }, 5s);
    stop.request_stop();
  });
  const auto start = clock::now();
  conn->send(make_request(1, "s;stop"), in(10s), ec, stop.get_token());
  canceller.join();
  EXPECT_EQ(ec, error::cancelled);
  EXPECT_LT(clock::now() - start, 2s);
}

TEST_F(connection_test, refused_connection_fails_fast_with_a_connection_error) {
  const test::refused_port port;  // bound, not listening, held
  const std::string& refused = port.address();
  auto conn = make();
  const auto ec = conn->connect(refused, in(5s));
  EXPECT_EQ(ec, std::errc::connection_refused);
  EXPECT_EQ(ec, condition::connection_failed);
  EXPECT_EQ(conn->state(), peer_state::failed);
  EXPECT_EQ(conn->stats().last_error, ec);
}

TEST_F(connection_test, a_dial_that_hangs_ends_at_dial_timeout) {
  const test::black_hole hole;
  const std::string& addr = hole.address();
  connection_config c = test_config();
  c.dial_timeout = 300ms;
  auto conn = make(c);
  const auto start = clock::now();
  const auto ec = conn->connect(addr, in(10s));
  const auto took = clock::now() - start;
  // Either the SYN is dropped (timeout) or the kernel accepted it into the backlog anyway, in
  // which case the CEA never comes and the handshake times out: both are bounded.
  EXPECT_TRUE(ec == error::connection_timeout || ec == error::handshake_failed) << ec.message();
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
}

TEST_F(connection_test, the_callers_deadline_bounds_the_handshake) {
  embedded_peer_faults f;
  f.answer_cer = false;
  peer_.set_faults(f);
  connection_config c = test_config();
  c.peer.cer_timeout = 10s;
  auto conn = make(c);
  const auto start = clock::now();
  const auto ec = conn->connect(peer_.address(), start + 150ms);
  EXPECT_EQ(ec, error::timed_out);
  EXPECT_GE(clock::now() - start, 150ms);
  EXPECT_LT(clock::now() - start, 3s);
}

TEST_F(connection_test, no_cea_is_a_handshake_failure_at_cer_timeout) {
  embedded_peer_faults f;
  f.answer_cer = false;
  peer_.set_faults(f);
  connection_config c = test_config();
  c.peer.cer_timeout = 200ms;
  auto conn = make(c);
  EXPECT_EQ(conn->connect(peer_.address(), in(10s)), error::handshake_failed);
  const auto s = conn->stats();
  ASSERT_TRUE(s.handshake);
  EXPECT_EQ(s.handshake->result_code, 0U);
  EXPECT_EQ(s.state, peer_state::failed);
}

TEST_F(connection_test, cea_error_codes_are_handshake_failures_with_the_code) {
  for (std::uint32_t rc : {3010U, 5010U, 5012U, 4003U}) {
    embedded_peer_faults f;
    f.cea_result_code = rc;
    peer_.set_faults(f);
    auto conn = make();
    EXPECT_EQ(conn->connect(peer_.address(), in(5s)), error::handshake_failed) << rc;
    const auto s = conn->stats();
    ASSERT_TRUE(s.handshake) << rc;
    EXPECT_EQ(s.handshake->result_code, rc);
    EXPECT_FALSE(s.handshake->error_message.empty());
  }
}

TEST_F(connection_test, connection_loss_fails_every_pending_request_at_once) {
  auto conn = open();
  embedded_peer_faults f;
  f.answer_delay = 5s;
  peer_.set_faults(f);
  std::vector<std::future<bytes>> futures;
  for (int i = 0; i < 20; ++i) {
    futures.push_back(conn->async_send(make_request(static_cast<std::uint32_t>(i), "s"), in(30s),
                                       asio::use_future));
  }
  ASSERT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.requests == 20; }, 5s));
  peer_.close_all();
  for (auto& fu : futures) {
    try {
      fu.get();
      ADD_FAILURE() << "answered after the connection was closed";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), error::connection_closed);
    }
  }
  EXPECT_EQ(conn->state(), peer_state::failed);
  std::error_code ec;
  conn->send(make_request(1, "s"), in(1s), ec);
  EXPECT_EQ(ec, error::not_open);
}

TEST_F(connection_test, peer_dpr_is_answered_and_closes_cleanly) {
  auto conn = open();
  peer_.send_dpr(disconnect_cause::do_not_want_to_talk_to_you);
  ASSERT_TRUE(
      peer_.wait_for([](const embedded_peer_stats& s) { return s.dpas_received == 1; }, 5s));
  ASSERT_TRUE(
      peer_.wait_for([](const embedded_peer_stats& s) { return s.connections_open == 0; }, 5s));
  // The connection saw the DPR before the peer saw the DPA.
  const auto s = conn->stats();
  EXPECT_EQ(s.peer_disconnect_cause, disconnect_cause::do_not_want_to_talk_to_you);
  EXPECT_EQ(s.state, peer_state::closed);
  EXPECT_EQ(s.last_error, error::disconnected_by_peer);
}

TEST_F(connection_test, peer_watchdogs_are_answered_and_ours_are_sent) {
  connection_config c = test_config();
  c.peer.dwr_interval = 100ms;
  c.peer.dwr_jitter = 10ms;
  auto conn = open(c);
  peer_.send_dwr();
  ASSERT_TRUE(
      peer_.wait_for([](const embedded_peer_stats& s) { return s.dwas_received == 1; }, 5s));
  ASSERT_TRUE(peer_.wait_for([](const embedded_peer_stats& s) { return s.dwrs >= 2; }, 5s));
  EXPECT_TRUE(conn->ready());
  EXPECT_GE(conn->stats().dwr_sent, 2U);
}

TEST_F(connection_test, an_unanswered_watchdog_fails_the_connection) {
  embedded_peer_faults f;
  f.answer_dwr = false;
  f.answer_delay = 10s;  // the request below is never answered either
  peer_.set_faults(f);
  connection_config c = test_config();
  c.peer.dwr_interval = 100ms;
  c.peer.dwr_jitter = 10ms;
  c.peer.dwr_timeout = 100ms;
  c.peer.max_dwr_failures = 2;
  auto conn = open(c);
  std::error_code ec;
  conn->send(make_request(1, "s"), in(30s), ec);  // returns when the watchdog gives up
  EXPECT_EQ(ec, error::connection_closed);
  EXPECT_EQ(conn->state(), peer_state::failed);
  EXPECT_EQ(conn->stats().last_error, error::watchdog_timeout);
  EXPECT_GE(peer_.stats().dwrs, 2U);
}

TEST_F(connection_test, peer_requests_get_3001_or_go_to_the_handler) {
  {
    auto conn = open();
    peer_.send_request(258, 4);
    ASSERT_TRUE(
        peer_.wait_for([](const embedded_peer_stats& s) { return s.answers_received == 1; }, 5s));
    EXPECT_TRUE(conn->ready());
  }
  connection_config c = test_config();
  std::atomic<int> calls{0};
  c.request_handler = [&](const message_view& req) {
    ++calls;
    message_header h = req.header();
    h.flags = 0;
    bytes out;
    message_builder b(out, h);
    b.add_unsigned32(avp_code::result_code, 2001)
        .add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com");
    b.finish();
    return out;
  };
  embedded_peer peer2;
  auto conn = make(c);
  ASSERT_FALSE(conn->connect(peer2.address(), in(5s)));
  peer2.send_request(258, 4);
  ASSERT_TRUE(
      peer2.wait_for([](const embedded_peer_stats& s) { return s.answers_received == 1; }, 5s));
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(connection_test, close_sends_dpr_and_later_sends_fail) {
  auto conn = open();
  conn->close();
  EXPECT_EQ(conn->state(), peer_state::closed);
  EXPECT_FALSE(conn->stats().last_error);  // a clean close is not an error
  EXPECT_EQ(peer_.stats().dprs, 1U);
  EXPECT_EQ(peer_.stats().dpas_sent, 1U);
  std::error_code ec;
  conn->send(make_request(1, "s"), in(1s), ec);
  EXPECT_EQ(ec, error::not_open);
  conn->close();  // twice is harmless
}

TEST_F(connection_test, close_fails_pending_requests_with_the_given_error_after_the_dpa_wait) {
  auto conn = open();
  auto fu = pending_request(*conn);
  conn->close(error::invalid_config);
  try {
    fu.get();
    ADD_FAILURE() << "answered";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), error::invalid_config);
  }
}

TEST_F(connection_test, reconnects_after_failure_with_reopen) {
  auto conn = open();
  peer_.close_all();
  std::error_code ec;
  // Wait for the connection to notice: a request fails (or is refused) once it has.
  for (int i = 0; i < 100 && conn->state() != peer_state::failed; ++i) {
    conn->send(make_request(1, "s"), in(100ms), ec);
  }
  ASSERT_EQ(conn->state(), peer_state::failed);
  ASSERT_FALSE(conn->connect(peer_.address(), in(5s)));
  EXPECT_TRUE(conn->ready());
  EXPECT_EQ(conn->stats().reconnects, 1U);
  EXPECT_EQ(peer_.stats().dwrs, 3U);  // RFC 3539 REOPEN: three DWAs before traffic
  const bytes a = conn->send(make_request(7, "s"), in(5s), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(view(a).header().hop_by_hop, 7U);
}

TEST_F(connection_test, garbage_from_the_peer_fails_the_connection_and_its_requests) {
  auto conn = open();
  auto fu = pending_request(*conn);
  peer_.write_raw({2, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  try {
    fu.get();
    ADD_FAILURE() << "answered";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), error::connection_closed);
  }
  EXPECT_EQ(conn->state(), peer_state::failed);
  EXPECT_EQ(conn->stats().last_error, error::bad_version);
}

// The most a socket pair can hold before writes stall: the sender's and the receiver's
// largest TCP buffers.
std::size_t kernel_buffer_capacity() {
  auto third = [](const char* path) {
    std::ifstream in(path);
    std::size_t a = 0, b = 0, c = 0;
    in >> a >> b >> c;
    return c;
  };
  return third("/proc/sys/net/ipv4/tcp_wmem") + third("/proc/sys/net/ipv4/tcp_rmem");
}

TEST_F(connection_test, a_peer_that_stops_reading_bounds_the_queue_and_fails_the_write) {
  connection_config c = test_config();
  c.send_buffer_size = 4;
  c.max_backlog = 8;
  c.write_timeout = 300ms;
  c.peer.max_message_size = 1024 * 1024;
  auto conn = open(c);
  embedded_peer_faults f;
  f.stop_reading = true;
  peer_.set_faults(f);
  const bytes big = make_request(1, std::string(512 * 1024, 'x'));
  // More than the kernel can hold, plus what the connection may keep, plus 40.
  const std::size_t absorbed = kernel_buffer_capacity() / big.size() + 2;
  const std::size_t total = absorbed + c.send_buffer_size + c.max_backlog + 40;
  std::vector<std::future<bytes>> futures;
  for (std::size_t i = 0; i < total; ++i) {
    futures.push_back(conn->async_send(big, in(20s), asio::use_future));
  }
  std::size_t queue_full = 0;
  std::size_t closed = 0;
  std::size_t not_open = 0;  // issued after the write had already timed out (slow builds)
  std::size_t answered = 0;  // read by the peer before it stopped reading
  for (auto& fu : futures) {
    try {
      fu.get();
      ++answered;
    } catch (const std::system_error& e) {
      if (e.code() == error::send_queue_full) {
        ++queue_full;
      } else if (e.code() == error::connection_closed) {
        ++closed;
      } else if (e.code() == error::not_open) {
        ++not_open;
      } else {
        ADD_FAILURE() << e.code().message();
      }
    }
  }
  EXPECT_EQ(queue_full + closed + not_open + answered, total);  // one outcome each, none hung
  EXPECT_LE(answered, 2U);
  // Beyond what the kernel holds, at most send_buffer_size wait to be written and max_backlog
  // wait for room; everything else is refused at once.
  EXPECT_GE(queue_full + not_open, 40U);
  EXPECT_GT(closed, 0U);  // the stalled write failed the connection, and its requests
  EXPECT_EQ(conn->state(), peer_state::failed);
  EXPECT_EQ(conn->stats().last_error, std::errc::timed_out);
}

// A peer run step by step on a blocking socket, for tests about how bytes are written: the
// test decides when it reads and that it answers a whole batch with one write.
class batch_peer : public test::loopback_socket {
 public:
  batch_peer() { EXPECT_EQ(::listen(fd_, 1), 0); }
  ~batch_peer() {
    if (conn_ >= 0) ::close(conn_);
  }

  // Accepts the client and answers its CER with a CEA 2001.
  void accept_and_answer_cer() {
    if (conn_ >= 0) ::close(conn_);
    conn_ = ::accept(fd_, nullptr, nullptr);
    decoder_.reset();
    have_.clear();
    pos_ = 0;
    ASSERT_GE(conn_, 0);
    const std::vector<bytes> cer = read_messages(1);
    ASSERT_EQ(cer.size(), 1U);
    const message_view v = view(cer[0]);
    message_header h = v.header();
    h.flags = 0;
    bytes cea;
    message_builder b(cea, h);
    b.add_unsigned32(avp_code::result_code, 2001)
        .add_string(avp_code::origin_host, "batch.example.net")
        .add_string(avp_code::origin_realm, "example.net")
        .add_address(avp_code::host_ip_address, *ip_address::parse("127.0.0.1"))
        .add_unsigned32(avp_code::vendor_id, 0)
        .add_string(avp_code::product_name, "batch_peer")
        .add_unsigned32(avp_code::auth_application_id, 4);
    b.finish();
    write_all(cea);
  }

  // Connects `conn` to this peer, the CER answered on another thread.
  void connect(connection& conn) {
    std::thread accept([&] { accept_and_answer_cer(); });
    const std::error_code ec =
        conn.connect(address(), std::chrono::steady_clock::now() + std::chrono::seconds(5));
    accept.join();
    ASSERT_FALSE(ec) << ec.message();
  }

  // A DPR from this peer: Hop-by-Hop id 0x5150, End-to-End id 0x5151.
  static bytes dpr(std::int32_t cause) {
    message_header h;
    h.flags = cmd_flags::request;
    h.command_code = command::disconnect_peer;
    h.hop_by_hop = 0x5150;
    h.end_to_end = 0x5151;
    bytes out;
    message_builder b(out, h);
    b.add_string(avp_code::origin_host, "batch.example.net")
        .add_string(avp_code::origin_realm, "example.net")
        .add_integer32(avp_code::disconnect_cause, cause);
    b.finish();
    return out;
  }

  // Reads until `n` messages are complete (a test failure and fewer on EOF or error).
  std::vector<bytes> read_messages(std::size_t n) {
    std::vector<bytes> out;
    while (out.size() < n) {
      if (pos_ == have_.size()) {
        have_.resize(64 * 1024);
        const ssize_t r = ::read(conn_, have_.data(), have_.size());
        if (r <= 0) {
          ADD_FAILURE() << "peer read ended after " << out.size() << " of " << n;
          return out;
        }
        have_.resize(static_cast<std::size_t>(r));
        pos_ = 0;
      }
      std::error_code ec;
      const auto rest = std::span<const std::uint8_t>(have_).subspan(pos_);
      const decode_result d = decoder_.put(rest, ec);
      pos_ += d.consumed;
      if (d.status == decode_status::error) {
        ADD_FAILURE() << ec.message();
        return out;
      }
      if (d.status == decode_status::message) {
        const auto b = decoder_.message().bytes();
        out.emplace_back(b.begin(), b.end());
      }
    }
    return out;
  }

  // Answers every request 2001, all the answers in one write.
  void answer_in_one_write(const std::vector<bytes>& requests) {
    bytes all;
    for (const bytes& r : requests) {
      const message_view v = view(r);
      message_header h = v.header();
      h.flags &= static_cast<std::uint8_t>(~cmd_flags::request);
      bytes a;
      message_builder b(a, h);
      if (auto sid = v.find(avp_code::session_id)) b.add_avp(*sid);
      b.add_unsigned32(avp_code::result_code, 2001)
          .add_string(avp_code::origin_host, "batch.example.net")
          .add_string(avp_code::origin_realm, "example.net");
      b.finish();
      all.insert(all.end(), a.begin(), a.end());
    }
    write_all(all);
  }

  // Reads until the client closes; returns the messages that are not requests (answers).
  std::vector<bytes> answers_until_eof() {
    std::vector<bytes> out;
    frame_decoder d(4 * 1024 * 1024);
    std::span<const std::uint8_t> rest = std::span<const std::uint8_t>(have_).subspan(pos_);
    bytes buf(256 * 1024);
    for (;;) {
      while (!rest.empty()) {
        std::error_code ec;
        const decode_result r = d.put(rest, ec);
        if (r.status == decode_status::error) {
          ADD_FAILURE() << ec.message();
          return out;
        }
        rest = rest.subspan(r.consumed);
        if (r.status == decode_status::message && !d.message().header().is_request()) {
          out.emplace_back(d.message().bytes().begin(), d.message().bytes().end());
        }
      }
      const ssize_t n = ::read(conn_, buf.data(), buf.size());
      if (n <= 0) {
        end_errno_ = n == 0 ? 0 : errno;
        return out;
      }
      rest = std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n));
    }
  }

  // How the last answers_until_eof() ended: 0 for the client's FIN, else the read's errno
  // (ECONNRESET: the client reset the connection).
  int end_errno() const { return end_errno_; }

  // Writes `b`, whether or not the client still reads; false once the connection is gone.
  bool write_ignoring_errors(const bytes& b) {
    std::size_t done = 0;
    while (done < b.size()) {
      const ssize_t n = ::send(conn_, b.data() + done, b.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }

  // The end of the peer's side (after a DPA, as RFC 6733 5.4 has the DPR's sender do).
  void close() {
    ::close(conn_);
    conn_ = -1;
  }

  void write_all(const bytes& b) {
    ASSERT_EQ(::write(conn_, b.data(), b.size()), static_cast<ssize_t>(b.size()));
  }

  // Bytes written and not yet acknowledged by the client's kernel (0: they are in its
  // receive queue).
  int unacked() const {
    int n = -1;
    EXPECT_EQ(::ioctl(conn_, SIOCOUTQ, &n), 0);
    return n;
  }

 private:
  int conn_ = -1;
  frame_decoder decoder_;
  bytes have_;
  std::size_t pos_ = 0;
  int end_errno_ = -1;
};

// Two rounds of n requests against a batch_peer, which answers each round in one write:
// round 1 sent by callers (posted to the strand from one handler on the I/O thread, so all
// are queued before the first runs), round 2 by the completions of round 1. Returns the
// socket writes of each round.
std::pair<std::uint64_t, std::uint64_t> writes_per_round(
    asio::io_context& io, const std::function<std::shared_ptr<connection>()>& make, std::size_t n) {
  batch_peer peer;
  auto conn = make();
  std::promise<void> round1_read;  // the peer has every request of round 1 ...
  std::promise<void> go;           // ... and answers them once the test has counted
  std::thread peer_thread([&] {
    peer.accept_and_answer_cer();
    for (int round = 0; round < 2; ++round) {
      const std::vector<bytes> requests = peer.read_messages(n);
      if (round == 0) {
        round1_read.set_value();
        go.get_future().wait();
      }
      ASSERT_EQ(requests.size(), n);
      peer.answer_in_one_write(requests);
    }
  });
  EXPECT_FALSE(conn->connect(peer.address(), clock::now() + 5s));
  const connection_stats opened = conn->stats();

  std::mutex m;
  std::size_t answered = 0;
  std::promise<void> all_done;
  std::function<void(std::uint32_t)> send = [&](std::uint32_t hbh) {
    conn->async_send(make_request(hbh, "s;" + std::to_string(hbh)), clock::now() + 5s,
                     [&, hbh](std::error_code ec, bytes a) {
                       EXPECT_FALSE(ec) << ec.message();
                       if (!ec) {
                         EXPECT_EQ(view(a).header().hop_by_hop, hbh);
                       }
                       std::lock_guard lock(m);
                       ++answered;
                       if (hbh < n) {
                         send(static_cast<std::uint32_t>(hbh + n));  // from the completion
                       } else if (answered == 2 * n) {
                         all_done.set_value();
                       }
                     });
  };
  asio::post(io, [&] {
    for (std::uint32_t i = 0; i < n; ++i)
      send(i);
  });
  const bool read = round1_read.get_future().wait_for(10s) == std::future_status::ready;
  EXPECT_TRUE(read);
  const connection_stats first = conn->stats();  // round 1 written, nothing answered yet
  go.set_value();
  auto done = all_done.get_future();
  const bool finished = done.wait_for(10s) == std::future_status::ready;
  EXPECT_TRUE(finished);
  if (!finished) conn->abort(error::connection_closed);  // the peer thread then ends
  peer_thread.join();
  if (!finished) return {0, 0};

  // The socket counters move when a write starts; the message counters are published at the
  // end of a turn, so only the final ones are compared (the peer read exactly n per round).
  const connection_stats last = conn->stats();
  EXPECT_EQ(last.messages_sent - opened.messages_sent, 2 * n);
  EXPECT_EQ(last.answers_received, 2 * n);
  EXPECT_EQ(last.unmatched_answers, 0U);
  return {first.socket_writes - opened.socket_writes, last.socket_writes - first.socket_writes};
}

// Requests queued on the connection together go out in one write, whether they come from
// callers (posted to the strand) or from the completions of answers read together (collected
// on the strand): not the first alone and the rest after it. The 16 answers of a round come
// in one write of 1.9 KB, more than the idle read buffer: they are read in one turn (a read,
// and the rest at once), not as two halves.
TEST_F(connection_test, requests_that_come_together_leave_in_one_write) {
  const auto [round1, round2] = writes_per_round(
      io_, [this] { return make(); }, 16);
  EXPECT_EQ(round1, 1U);
  EXPECT_EQ(round2, 1U);
}

// A turn that handles many answers writes the first 64 requests its completions send while
// it handles the rest (the peer works on them meanwhile), and the rest once that write is
// done: two writes for 128, not one at the end of the turn.
TEST_F(connection_test, a_long_turn_writes_its_first_requests_early) {
  connection_config c = test_config();
  c.send_buffer_size = 1000;  // no backlog: all 128 may wait to be written
  const auto [round1, round2] = writes_per_round(
      io_, [&] { return make(c); }, 128);
  EXPECT_EQ(round1, 1U);  // posted by callers: no completions to overlap with
  EXPECT_EQ(round2, 2U);
}

// Two connections on one I/O thread, `n` requests in flight on each. Both peers answer while
// the thread is held, so that one reactor round brings both connections' answers; each
// completion sends the next request and notes the socket writes of both connections so far.
// Returns those notes, the writes before the round and the writes once all is answered.
struct round_writes {
  std::vector<std::uint64_t> seen;
  std::uint64_t before = 0;
  std::uint64_t after = 0;
};

round_writes writes_in_one_round(asio::io_context& io, std::size_t n) {
  batch_peer peer_a;
  batch_peer peer_b;
  auto a = connection::create(io.get_executor(), test_config());
  auto b = connection::create(io.get_executor(), test_config());
  std::thread accept([&] {
    peer_a.accept_and_answer_cer();
    peer_b.accept_and_answer_cer();
  });
  EXPECT_FALSE(a->connect(peer_a.address(), clock::now() + 5s));
  EXPECT_FALSE(b->connect(peer_b.address(), clock::now() + 5s));
  accept.join();
  const auto writes = [&] { return a->stats().socket_writes + b->stats().socket_writes; };

  round_writes r;
  std::mutex m;
  std::promise<void> done;
  std::size_t answered = 0;
  const auto send = [&](connection& c, std::uint32_t hbh) {
    c.async_send(make_request(hbh, "s"), clock::now() + 5s, [&, hbh](std::error_code ec, bytes) {
      EXPECT_FALSE(ec) << ec.message();
      std::lock_guard lock(m);
      r.seen.push_back(writes());
      c.async_send(make_request(hbh + 100, "s"), clock::now() + 5s, [&](std::error_code e, bytes) {
        EXPECT_FALSE(e) << e.message();
        std::lock_guard l(m);
        if (++answered == 2 * n) done.set_value();
      });
    });
  };
  for (std::uint32_t i = 0; i < n; ++i) {
    send(*a, i + 1);
    send(*b, i + 1);
  }
  const std::vector<bytes> first_a = peer_a.read_messages(n);
  const std::vector<bytes> first_b = peer_b.read_messages(n);
  r.before = writes();

  std::promise<void> held;
  std::promise<void> release;
  asio::post(io, [&] {
    held.set_value();
    release.get_future().wait();
  });
  held.get_future().wait();
  peer_a.answer_in_one_write(first_a);
  peer_b.answer_in_one_write(first_b);
  EXPECT_TRUE(test::eventually([&] { return peer_a.unacked() == 0 && peer_b.unacked() == 0; }));
  release.set_value();

  peer_a.answer_in_one_write(peer_a.read_messages(n));
  peer_b.answer_in_one_write(peer_b.read_messages(n));
  EXPECT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  r.after = writes();
  a->abort(error::connection_closed);
  b->abort(error::connection_closed);
  return r;
}

// Answers that arrive on several connections of one thread at once are all handled before the
// requests their completions send are written: the writes of a round go out together, and the
// peer is woken once for them rather than once per connection. Every completion sees the
// socket writes where they were before the round; then one write per connection.
TEST_F(connection_test, answers_read_together_are_all_handled_before_any_write) {
  const round_writes r = writes_in_one_round(io_, 2);
  EXPECT_EQ(r.seen, std::vector<std::uint64_t>(4, r.before));
  EXPECT_EQ(r.after, r.before + 2);
}

// A lone request is written at once, not at the end of the round (latency): the second
// connection's completion sees the first connection's write.
TEST_F(connection_test, a_lone_request_is_written_at_once) {
  const round_writes r = writes_in_one_round(io_, 1);
  EXPECT_EQ(r.seen, (std::vector<std::uint64_t>{r.before, r.before + 1}));
  EXPECT_EQ(r.after, r.before + 2);
}

// RFC 6733 5.4: a DPR is answered with a DPA. When the DPA waits behind a write still under
// way and the owner reconnects at once (as a pool does), the new dial waits for the old
// socket's last output (within its linger) instead of dropping it.
TEST_F(connection_test, a_reconnect_right_after_a_peer_dpr_still_delivers_the_dpa) {
  connection_config c = test_config();
  c.peer.max_message_size = 1024 * 1024;
  c.write_timeout = 10s;
  c.peer.dpa_timeout = 5s;  // the linger: min(write_timeout, dpa_timeout)
  batch_peer peer;
  auto conn = make(c);
  ASSERT_NO_FATAL_FAILURE(peer.connect(*conn));
  // The peer does not read: 16 MiB of requests keep the client's write under way.
  const bytes big = make_request(1, std::string(512 * 1024, 'x'));
  std::vector<std::future<bytes>> futures;
  for (int i = 0; i < 32; ++i)
    futures.push_back(conn->async_send(big, in(20s), asio::use_future));
  ASSERT_TRUE(test::eventually([&] { return conn->stats().socket_writes >= 2; }));
  peer.write_all(batch_peer::dpr(disconnect_cause::rebooting));
  ASSERT_TRUE(test::eventually([&] { return conn->state() == peer_state::closed; }));
  auto reconnected = conn->async_connect(peer.address(), in(10s), asio::use_future);
  // The peer now reads the rest, to the end of the old connection, then takes the new one.
  const std::vector<bytes> answers = peer.answers_until_eof();
  ASSERT_EQ(answers.size(), 1U) << "no DPA before the old connection closed";
  EXPECT_EQ(view(answers[0]).header().command_code, command::disconnect_peer);
  EXPECT_EQ(view(answers[0]).header().hop_by_hop, 0x5150U);
  EXPECT_EQ(view(answers[0]).find(avp_code::result_code)->as_unsigned32(), 2001U);
  peer.accept_and_answer_cer();
  EXPECT_NO_THROW(reconnected.get());
  EXPECT_EQ(conn->state(), peer_state::open);
  for (auto& f : futures) {
    EXPECT_THROW(f.get(), std::system_error);  // failed by the DPR: connection_closed
  }
}

// RFC 6733 5.4 over TCP: the DPA to a peer's DPR is followed by a FIN, and what the peer sent
// meanwhile is read and dropped until the peer closes. Closing with that input unread would
// reset the connection, and a peer that meets the reset on a write before it has read the
// DPA loses it (the embedded peer does: it closes on a failed write).
TEST_F(connection_test, the_dpa_to_a_peer_dpr_is_followed_by_a_fin_not_a_reset) {
  connection_config c = test_config();
  c.write_timeout = 10s;
  c.peer.dpa_timeout = 10s;  // the linger: min(write_timeout, dpa_timeout)
  batch_peer peer;
  auto conn = make(c);
  ASSERT_NO_FATAL_FAILURE(peer.connect(*conn));
  // The DPR, then 1 MiB of answers to nothing (as a peer still answering when it decides
  // to disconnect): the client reads the DPR and leaves the rest in its socket.
  bytes stream = batch_peer::dpr(disconnect_cause::busy);
  bytes late = make_request(0xdead, std::string(1000, 'x'));
  late[4] = 0;  // the flags: an answer
  while (stream.size() < 1024 * 1024)
    stream.insert(stream.end(), late.begin(), late.end());
  bool all_written = false;
  std::thread writer([&] { all_written = peer.write_ignoring_errors(stream); });
  const std::vector<bytes> answers = peer.answers_until_eof();
  writer.join();
  ASSERT_EQ(answers.size(), 1U) << "no DPA";
  EXPECT_EQ(view(answers[0]).header().command_code, command::disconnect_peer);
  EXPECT_EQ(view(answers[0]).header().hop_by_hop, 0x5150U);
  EXPECT_EQ(peer.end_errno(), 0) << std::strerror(peer.end_errno());  // the client's FIN
  // No reset: the client took all of it, and still takes what the peer writes after the FIN.
  EXPECT_TRUE(all_written) << "the client reset the connection";
  EXPECT_TRUE(peer.write_ignoring_errors(late)) << "the client reset the connection";
  EXPECT_EQ(conn->state(), peer_state::closed);
  // The peer closes; the client closes its socket then, not at the end of its linger: a new
  // connection (which waits for the old socket's close) is made at once.
  peer.close();
  const auto start = clock::now();
  auto reconnected = conn->async_connect(peer.address(), in(20s), asio::use_future);
  peer.accept_and_answer_cer();
  EXPECT_NO_THROW(reconnected.get());
  EXPECT_LT(clock::now() - start, 5s);  // the linger is 10 s
}

// The wait for the peer's end of stream after the DPA is bounded by the linger: a peer that
// keeps its side open (and even writes on) still gets the socket closed.
TEST_F(connection_test, a_peer_that_keeps_its_side_open_after_the_dpa_is_closed_after_the_linger) {
  connection_config c = test_config();
  c.write_timeout = 10s;
  c.peer.dpa_timeout = 200ms;  // the linger: min(write_timeout, dpa_timeout)
  batch_peer peer;
  auto conn = make(c);
  ASSERT_NO_FATAL_FAILURE(peer.connect(*conn));
  peer.write_all(batch_peer::dpr(disconnect_cause::busy));
  const std::vector<bytes> answers = peer.answers_until_eof();  // the DPA, then the FIN
  ASSERT_EQ(answers.size(), 1U) << "no DPA";
  EXPECT_EQ(peer.end_errno(), 0) << std::strerror(peer.end_errno());
  // While the client drains, the peer's writes are taken; once its socket is closed they fail.
  bytes late = make_request(0xdead, "late");
  late[4] = 0;  // the flags: an answer
  EXPECT_TRUE(test::eventually([&] { return !peer.write_ignoring_errors(late); }, 5000ms))
      << "the client still held the socket 5 s after a 200 ms linger";
}

// Completions run inside a connection event and see its clock reading (the pool takes its
// timestamps from it); other code sees none.
TEST_F(connection_test, completions_see_the_time_of_their_connection_event) {
  auto conn = open();
  EXPECT_EQ(detail::event_time(), steady_time{});
  const steady_time before = clock::now();
  std::promise<std::pair<steady_time, steady_time>> seen;
  conn->async_send(make_request(1, "s"), in(5s), [&](std::error_code ec, bytes) {
    EXPECT_FALSE(ec) << ec.message();
    seen.set_value({detail::event_time(), clock::now()});
  });
  const auto [event, inside] = seen.get_future().get();
  EXPECT_GE(event, before);  // read after the request was sent...
  EXPECT_LE(event, inside);  // ... and before its completion ran
  std::promise<steady_time> outside;
  asio::post(io_, [&] { outside.set_value(detail::event_time()); });
  EXPECT_EQ(outside.get_future().get(), steady_time{});  // a plain handler on the I/O thread
}

TEST_F(connection_test, ipv6_literals_and_dns_names_work) {
  std::unique_ptr<embedded_peer> v6;
  try {
    embedded_peer_options o;
    o.listen = "[::1]:0";
    v6 = std::make_unique<embedded_peer>(o);
  } catch (const std::system_error&) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  auto conn = make();
  ASSERT_FALSE(conn->connect("[::1]:" + std::to_string(v6->port()), in(5s)));
  auto conn2 = connection::create(io_.get_executor(), test_config());
  ASSERT_FALSE(conn2->connect("localhost:" + std::to_string(peer_.port()), in(5s)))
      << "localhost must resolve";
  conn2->close();
}

TEST_F(connection_test, malformed_addresses_are_rejected_before_any_dial) {
  auto conn = make();
  for (const char* bad : {"host", "host:", ":3868", "[::1", "[::1]", "[::1]3868", "::1:3868",
                          "127.0.0.1:70000", "127.0.0.1:0", "127.0.0.1:x", "[127.0.0.1]:3868"}) {
    EXPECT_EQ(conn->connect(bad, in(1s)), std::errc::invalid_argument) << bad;
  }
  EXPECT_EQ(peer_.stats().connections_accepted, 0U);
}

TEST_F(connection_test, destroying_a_connection_fails_its_pending_requests) {
  auto conn = open();
  auto fu = pending_request(*conn);
  conn.reset();
  conn_.reset();
  try {
    fu.get();
    ADD_FAILURE() << "answered";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), error::connection_closed);
  }
  EXPECT_TRUE(
      peer_.wait_for([](const embedded_peer_stats& s) { return s.connections_open == 0; }, 5s));
}

TEST_F(connection_test, dropped_answers_time_out_and_duplicates_are_unmatched) {
  auto conn = open();
  embedded_peer_faults f;
  f.drop_every_nth_answer = 2;       // requests 2, 4, ... get no answer
  f.duplicate_every_nth_answer = 3;  // answers 3, 6, ... come twice
  peer_.set_faults(f);
  std::vector<std::future<bytes>> futures;
  for (std::uint32_t i = 1; i <= 6; ++i) {
    futures.push_back(
        conn->async_send(make_request(i, "s;" + std::to_string(i)), in(300ms), asio::use_future));
  }
  int answered = 0;
  int timed_out = 0;
  for (std::uint32_t i = 1; i <= 6; ++i) {
    try {
      const bytes a = futures[i - 1].get();
      EXPECT_EQ(view(a).header().hop_by_hop, i);  // never another request's answer
      ++answered;
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), error::timed_out) << i;
      EXPECT_EQ(i % 2, 0U) << i;
      ++timed_out;
    }
  }
  EXPECT_EQ(answered, 3);  // 1, 3, 5
  EXPECT_EQ(timed_out, 3);
  // Answer 3 came twice (6 was dropped): the copy is unmatched, and nothing else is.
  EXPECT_EQ(conn->stats().unmatched_answers, 1U);
  EXPECT_TRUE(conn->ready());
}

TEST_F(connection_test, an_oversized_length_from_the_peer_fails_the_connection) {
  auto conn = open();
  auto fu = pending_request(*conn);
  peer_.write_raw({1, 0xFF, 0xFF, 0xFC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_THROW(fu.get(), std::system_error);
  EXPECT_EQ(conn->state(), peer_state::failed);
  EXPECT_EQ(conn->stats().last_error, error::message_too_long);
}

TEST_F(connection_test, a_peer_closing_after_n_messages_fails_what_is_pending) {
  embedded_peer_faults f;
  f.close_after_messages = 3;  // CER, request 1, then request 2 closes it
  peer_.set_faults(f);
  auto conn = open();
  std::error_code ec;
  conn->send(make_request(1, "s"), in(5s), ec);
  EXPECT_FALSE(ec);
  conn->send(make_request(2, "s"), in(5s), ec);
  EXPECT_EQ(ec, error::connection_closed);
  EXPECT_EQ(conn->state(), peer_state::failed);
}

TEST_F(connection_test, reports_every_state_change_with_the_reason) {
  std::mutex m;
  std::vector<std::string> changes;
  std::vector<std::error_code> reasons;
  connection_config c = test_config();
  c.on_state_change = [&](peer_state from, peer_state to, std::error_code reason) {
    std::lock_guard lock(m);
    changes.push_back(std::string(to_string(from)) + ">" + std::string(to_string(to)));
    reasons.push_back(reason);
  };
  auto conn = open(c);
  peer_.close_all();  // the connection fails: the owner learns it without polling
  std::error_code ec;
  for (int i = 0; i < 200 && conn->state() != peer_state::failed; ++i) {
    conn->send(make_request(1, "s"), in(50ms), ec);
  }
  ASSERT_EQ(conn->state(), peer_state::failed);
  ASSERT_FALSE(conn->connect(peer_.address(), in(5s)));
  conn->close();
  std::lock_guard lock(m);
  const std::vector<std::string> expected = {
      "DISCONNECTED>CONNECTING", "CONNECTING>CER_SENT", "CER_SENT>OPEN", "OPEN>FAILED",
      "FAILED>CONNECTING",       "CONNECTING>CER_SENT",
      // then REOPEN: its DWRs move it between OPEN and DWR_SENT
  };
  ASSERT_GE(changes.size(), expected.size());
  EXPECT_EQ(std::vector<std::string>(changes.begin(), changes.begin() + 6), expected);
  // EOF or a reset, depending on whether a request was written after the peer closed.
  EXPECT_EQ(reasons[3], condition::connection_failed) << reasons[3].message();
  for (std::size_t k = 0; k < changes.size(); ++k) {
    if (k != 3) {
      EXPECT_FALSE(reasons[k]) << changes[k];  // only failures carry a reason
    }
  }
  EXPECT_EQ(changes.back(), "CLOSING>CLOSED");
}

// Records what the connection logs.
class recording_logger final : public logger {
 public:
  bool enabled(log_level l) const noexcept override { return l >= log_level::debug; }
  void log(log_level l, std::string_view msg, std::span<const log_field> fields) override {
    std::lock_guard lock(m_);
    std::string line = std::string(to_string(l)) + " " + std::string(msg);
    for (const auto& f : fields)
      line += " " + std::string(f.key) + "=" + f.value;
    lines_.push_back(line);
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(m_);
    return lines_;
  }

 private:
  mutable std::mutex m_;
  std::vector<std::string> lines_;
};

TEST_F(connection_test, logs_structured_records_with_the_address_and_state) {
  auto log = std::make_shared<recording_logger>();
  conn_ = connection::create(io_.get_executor(), test_config(), log);
  ASSERT_FALSE(conn_->connect(peer_.address(), in(5s)));
  conn_->close();
  const auto lines = log->lines();
  auto has = [&](const std::string& needle) {
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(has("info connection open address=" + peer_.address() + " state=OPEN"));
  EXPECT_TRUE(has("peer=peer.example.net"));
  EXPECT_TRUE(has("debug state changed"));
  EXPECT_TRUE(has("from=CER_SENT to=OPEN"));
  EXPECT_TRUE(has("info closing transport"));
}

}  // namespace
}  // namespace diampool
