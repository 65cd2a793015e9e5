// Interop: diampool::address_client (the pool: one connection per address, shared by every
// thread) against freeDiameter 1.2.1 (Debian 12), over plain TCP.
//
// freediameter_connection_test.cpp proved one connection against freeDiameter; here the
// client does the connection management itself: one establishment shared by every caller,
// concurrent synchronous and asynchronous sends on one connection, Hop-by-Hop ids restored to
// each caller, close() under load, the idle timeout (DPR) and the reconnection that follows,
// and a refused establishment (CEA 5012, 3010) reported to its callers and recovered from.
//
// The binary only works inside tests/interop/freediameter/run.sh (one harness run, one
// freeDiameter, for the whole binary), which exports DIAMPOOL_FD_ADDRESS, DIAMPOOL_FD_HOST,
// DIAMPOOL_FD_REALM and DIAMPOOL_FD_PID. Without them every case FAILS (it does not skip).
//
// Rules every case follows:
//   - its own Origin-Host under *.example.com (run.sh's acl_wl allows those): freeDiameter
//     answers 5012 to a CER whose Origin-Host is still connected, or not yet cleaned up;
//   - its own address_client (null_logger(): quiet), closed at the end with DPR, so
//     freeDiameter never has to clean up an abrupt close that a later case could trip over;
//   - every wait is bounded: answers are waited for with a deadline, conditions with nothing
//     to wait on (counters of the client) are polled every 5 ms until a deadline
//     (`eventually`). A synchronous send or a close() that does not return in time is a hang:
//     the case reports it and ends the process (joining would block until CTest's TIMEOUT);
//   - freeDiameter is never stopped: every case needs it.
//
// What freeDiameter was seen to do with diampool's address_client (in addition to the facts
// of freediameter_connection_test.cpp); the cases print what they measure as [   FACT   ]
// lines:
//   - it answers every request of 8 threads x 250 synchronous sends, or of 2,000 asynchronous
//     sends launched together, on the one connection, each with the caller's Hop-by-Hop and
//     End-to-End ids restored and its Session-Id echoed: ~9,000-13,500 requests/s from the 8
//     threads, ~14,000-25,000/s with 2,000 in flight (2 CPUs). With 2,000 requests written at
//     once its TCP receive window fills (zero window, seen in a capture) and then drains;
//   - 200 threads on a new address: one CER, all 200 answered 50-70 ms after the release;
//   - close() with 32 threads sending: the requests in flight are answered, then DPR/DPA, and
//     every later send gets pool_closed. close() took 41-49 ms: once the senders stop, the
//     last answers (about 20) waited in freeDiameter for ~40 ms, until diampool's delayed ACK
//     (a capture shows them leaving right after that ACK, as Nagle's algorithm on
//     freeDiameter's socket would);
//   - idle timeout 300 ms: the idle closure came 300-305 ms after the last answer, and its
//     DPR/DPA took at most 5 ms; a CER with the same Origin-Host after that DPA was accepted
//     in every run;
//   - a CER with the same Origin-Host while the old connection's DPR is being processed
//     (freeDiameter in STATE_CLOSING) is dropped ("DROPPED 'Message discarded while cleaning
//     peer state machine queue.' 'Capabilities-Exchange-Request'") and the new connection
//     closed without a CEA: of the sends made in that window, 1 in 7 to 6 in 10 per run
//     (about 3 in 10 overall) failed with handshake_failed (see
//     send_during_the_idle_dpr_waits_for_it_and_is_answered);
//   - a CER with the Origin-Host of an OPEN connection gets 5012 with Error-Message "Invalid
//     state to receive a new connection attempt." (its log: "Rejecting new connection attempt
//     while our state machine is in state 'STATE_OPEN'"); an Origin-Host outside acl_wl gets
//     3010 with Error-Message "DIAMETER_UNKNOWN_PEER".
#include "diampool/address_client.hpp"

#include <gtest/gtest.h>
#include <sys/types.h>

#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/error.hpp"
#include "diampool/logger.hpp"
#include "diampool/message.hpp"
#include "diampool/pool_config.hpp"
#include "freediameter_support.hpp"

namespace diampool {
namespace {

using namespace std::chrono_literals;
using namespace interop;
using std::chrono::milliseconds;

// A wait that did not end: the blocked thread cannot be joined or abandoned safely, so the
// process ends here with the reason (CTest shows it) instead of at CTest's TIMEOUT.
[[noreturn]] void hang(const std::string& what) {
  std::fprintf(stderr, "HANG: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Joins `threads` once `finished` counts all of them, waiting at most `timeout` for that.
void join_all(std::vector<std::thread>& threads, const std::atomic<unsigned>& finished,
              std::chrono::nanoseconds timeout, const std::string& what) {
  if (!eventually([&] { return finished.load() == threads.size(); }, timeout)) {
    hang(what + ": " + std::to_string(threads.size() - finished.load()) + " of " +
         std::to_string(threads.size()) + " threads still blocked in send after " +
         std::to_string(std::chrono::duration_cast<milliseconds>(timeout).count()) + " ms");
  }
  for (auto& t : threads)
    t.join();
}

// Failures seen by many threads, the first few of which are reported.
class failure_log {
 public:
  void add(std::string f) {
    std::lock_guard lock(m_);
    ++count_;
    if (first_.size() < 10) first_.push_back(std::move(f));
  }
  std::size_t count() const {
    std::lock_guard lock(m_);
    return count_;
  }
  void report() const {
    std::lock_guard lock(m_);
    for (const auto& f : first_)
      ADD_FAILURE() << f;
  }

 private:
  mutable std::mutex m_;
  std::size_t count_ = 0;
  std::vector<std::string> first_;
};

// ---- the fixture -------------------------------------------------------------------------------

class freediameter_address_client : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing;
    auto e = read_env(missing);
    ASSERT_TRUE(e) << missing
                   << " is not set: run this binary through tests/interop/freediameter/run.sh"
                      " (ctest -R freediameter does)";
    env_ = *e;
  }

  // Short timeouts and a fast, jitter-free retry schedule (50 ms, x1.5, at most 400 ms).
  pool_config config_for(const std::string& origin_host) const {
    pool_config c = pool_config::defaults();
    c.origin_host = origin_host;
    c.origin_realm = "example.com";
    c.auth_app_ids = {unserved_application};
    c.dial_timeout = 3s;
    c.cer_timeout = 3s;
    c.send_timeout = 10s;
    c.reconnect_interval = 50ms;
    c.max_reconnect_delay = 400ms;
    c.reconnect_jitter = 0;
    c.dpa_timeout = 2s;
    c.drain_timeout = 2s;
    c.worker_threads = 2;
    return c;
  }

  static std::unique_ptr<address_client> make(pool_config c) {
    return std::make_unique<address_client>(std::move(c), null_logger());
  }

  // client.close() on a thread of its own, bounded by must_happen plus the configured drain
  // and DPA waits; returns how long it took.
  static milliseconds close(address_client& client) {
    const auto bound = must_happen + client.config().drain_timeout + client.config().dpa_timeout;
    std::promise<void> done;
    auto f = done.get_future();
    const auto start = clock::now();
    std::thread t([&] {
      client.close();
      done.set_value();
    });
    if (f.wait_for(bound) != std::future_status::ready) {
      hang("address_client::close() did not return within " +
           std::to_string(std::chrono::duration_cast<milliseconds>(bound).count()) + " ms");
    }
    const auto took = std::chrono::duration_cast<milliseconds>(clock::now() - start);
    t.join();
    return took;
  }

  // One synchronous request of the unserved application from `me`; expects its 3002 answer.
  void expect_answered(address_client& client, const std::string& me, std::uint32_t hop_by_hop,
                       std::chrono::nanoseconds timeout = must_happen) {
    const std::string session = me + ";1;" + std::to_string(hop_by_hop);
    std::error_code ec;
    const bytes a = client.send(env_.address, make_request(me, env_.realm, hop_by_hop, 77, session),
                                timeout, ec);
    ASSERT_FALSE(ec) << me << ": " << ec.message();
    EXPECT_TRUE(is_3002_answer_to(a, hop_by_hop, 77, session));
  }

  fd_env env_;
};

// 1. 8 threads x 250 synchronous sends through one address: every request gets its own 3002
// answer (the caller's Hop-by-Hop and End-to-End ids, its Session-Id), all on one
// connection established once (one CER). close() sends DPR on it and gets the DPA.
TEST_F(freediameter_address_client, concurrent_load_through_one_address_uses_one_connection) {
  const std::string me = "ac-load.example.com";
  auto client = make(config_for(me));
  constexpr unsigned threads = 8;
  constexpr std::uint32_t per_thread = 250;
  constexpr std::uint64_t total = threads * per_thread;
  std::atomic<std::uint64_t> good{0};
  std::atomic<unsigned> finished{0};
  failure_log failures;
  std::vector<std::thread> workers;
  const auto start = clock::now();
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        const std::uint32_t hbh = ((t + 1) << 16) | i;
        const std::uint32_t e2e = 0x5000000 + t * 1000 + i;
        const std::string sid = me + ";" + std::to_string(t) + ";" + std::to_string(i);
        std::error_code ec;
        const bytes a = client->send(env_.address, make_request(me, env_.realm, hbh, e2e, sid), ec);
        if (ec) {
          failures.add("thread " + std::to_string(t) + " request " + std::to_string(i) + ": " +
                       ec.message());
        } else if (auto r = is_3002_answer_to(a, hbh, e2e, sid); !r) {
          failures.add("thread " + std::to_string(t) + " request " + std::to_string(i) + ": " +
                       r.message());
        } else {
          ++good;
        }
      }
      ++finished;
    });
  }
  join_all(workers, finished, 30s, "8 x 250 sends");
  const auto took = ms_since(start);
  note("8 threads x 250 synchronous sends through one address: " + std::to_string(took) + " ms (" +
       std::to_string(took > 0 ? 1000 * total / took : 0) + " requests/s)");
  failures.report();
  EXPECT_EQ(good.load(), total);

  auto s = client->stats();
  EXPECT_EQ(s.total_requests, total);
  EXPECT_EQ(s.total_responses, total);
  EXPECT_EQ(s.total_errors, 0U);
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.pool.connections_created, 1U);
  EXPECT_EQ(s.pool.failed_establishments, 0U);
  EXPECT_EQ(s.pool.reconnect_attempts, 0U);
  EXPECT_EQ(s.pool.connections_closed, 0U);
  EXPECT_EQ(s.pool.active_connections, 1U);
  EXPECT_EQ(s.pool.addresses, 1U);
  EXPECT_EQ(s.pool.unmatched_answers, 0U);
  EXPECT_EQ(client->list_connections(), std::vector<std::string>{env_.address});

  const auto info = client->connection(env_.address);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, peer_state::open);
  EXPECT_EQ(info->peer.origin_host, env_.host);
  EXPECT_EQ(info->peer.origin_realm, env_.realm);
  EXPECT_EQ(info->consecutive_failures, 0U);
  EXPECT_FALSE(info->last_error) << info->last_error.message();
  EXPECT_EQ(info->stats.requests_sent, total);
  EXPECT_EQ(info->stats.answers_received, total);
  EXPECT_EQ(info->stats.reconnects, 0U);
  EXPECT_EQ(info->stats.pending, 0U);
  // One CER, the requests and our own DWRs (none expected at a 30 s Tw); freeDiameter's DWRs
  // (none expected with traffic flowing) are answered.
  EXPECT_EQ(info->stats.messages_sent, 1 + total + info->stats.dwr_sent + info->stats.dwr_received);
  note("connection after the load: " + std::to_string(info->stats.messages_sent) + " sent, " +
       std::to_string(info->stats.messages_received) + " received, " +
       std::to_string(info->stats.dwr_received) + " DWRs from freeDiameter");

  const auto before = s.pool;
  const auto closing = close(*client);
  note("close() of the loaded client (DPR/DPA): " + std::to_string(closing.count()) + " ms");
  EXPECT_LT(closing, 1500ms) << "the DPA did not end the wait (dpa_timeout is 2 s)";
  EXPECT_TRUE(client->closed());
  s = client->stats();
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.pool.connections_closed, 1U);
  EXPECT_EQ(s.pool.connections_created, 1U);
  EXPECT_EQ(s.pool.active_connections, 0U);
  EXPECT_EQ(s.pool.messages_sent, before.messages_sent + 1);          // the DPR
  EXPECT_EQ(s.pool.messages_received, before.messages_received + 1);  // the DPA
  std::error_code ec;
  client->send(env_.address, make_request(me, env_.realm, 1, 1, me + ";after"), ec);
  EXPECT_EQ(ec, error::pool_closed);
}

// 2. Single flight against a real server: 200 threads released at once on an address the
// client has never used make one TCP connection and one CER; every request is answered.
TEST_F(freediameter_address_client, two_hundred_threads_on_a_new_address_make_one_connection) {
  const std::string me = "ac-single-flight.example.com";
  auto client = make(config_for(me));
  EXPECT_FALSE(client->connection(env_.address));
  constexpr unsigned threads = 200;
  std::latch go(threads + 1);
  std::atomic<std::uint64_t> good{0};
  std::atomic<unsigned> finished{0};
  failure_log failures;
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::uint32_t hbh = 0x20000 + t;
      const std::uint32_t e2e = 0x6100000 + t;
      const std::string sid = me + ";2;" + std::to_string(t);
      const bytes req = make_request(me, env_.realm, hbh, e2e, sid);
      go.arrive_and_wait();
      std::error_code ec;
      const bytes a = client->send(env_.address, req, ec);
      if (ec) {
        failures.add("thread " + std::to_string(t) + ": " + ec.message());
      } else if (auto r = is_3002_answer_to(a, hbh, e2e, sid); !r) {
        failures.add("thread " + std::to_string(t) + ": " + r.message());
      } else {
        ++good;
      }
      ++finished;
    });
  }
  go.arrive_and_wait();
  const auto start = clock::now();
  join_all(workers, finished, 20s, "200 threads on a new address");
  note("200 threads released at once on a new address: all answered " +
       std::to_string(ms_since(start)) + " ms after the release");
  failures.report();
  EXPECT_EQ(good.load(), threads);
  const auto s = client->stats();
  EXPECT_EQ(s.total_responses, threads);
  EXPECT_EQ(s.total_errors, 0U);
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.pool.connections_created, 1U);
  EXPECT_EQ(s.pool.failed_establishments, 0U);
  EXPECT_EQ(s.pool.reconnect_attempts, 0U);
  EXPECT_EQ(s.pool.addresses, 1U);
  const auto info = client->connection(env_.address);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, peer_state::open);
  EXPECT_EQ(info->stats.requests_sent, threads);
  EXPECT_EQ(info->stats.reconnects, 0U);
  // Everything this client ever sent went over that one connection: one CER and the requests.
  EXPECT_EQ(s.pool.messages_sent, 1 + threads + info->stats.dwr_sent + info->stats.dwr_received);
  close(*client);
  EXPECT_EQ(client->stats().pool.connections_closed, 1U);
}

// 3. The asynchronous API: 2000 async_send in flight together (1500 with a callback, 500 with
// asio::use_future), launched from one thread before any is waited for: all answered, each
// with its own ids and Session-Id, on one connection.
TEST_F(freediameter_address_client, two_thousand_async_sends_in_flight_are_all_matched) {
  const std::string me = "ac-async.example.com";
  auto client = make(config_for(me));
  constexpr std::uint32_t callbacks = 1500;
  constexpr std::uint32_t futures = 500;
  constexpr std::uint32_t total = callbacks + futures;
  auto hbh = [](std::uint32_t i) { return 0x300000 + i; };
  auto e2e = [](std::uint32_t i) { return 0x6300000 + i; };
  auto sid = [&](std::uint32_t i) { return me + ";3;" + std::to_string(i); };
  struct shared {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::optional<std::error_code>> outcome;
    std::uint32_t completed = 0;
    std::uint32_t twice = 0;
    failure_log failures;  // here: a callback may outlive the case's locals if it fails
  };
  auto st = std::make_shared<shared>();
  st->outcome.resize(callbacks);
  std::vector<std::future<bytes>> pending;
  pending.reserve(futures);
  const auto start = clock::now();
  for (std::uint32_t i = 0; i < total; ++i) {
    bytes req = make_request(me, env_.realm, hbh(i), e2e(i), sid(i));
    if (i % 4 == 3) {  // every fourth: a future
      pending.push_back(client->async_send(env_.address, std::move(req), asio::use_future));
      continue;
    }
    const std::uint32_t slot = i - i / 4;
    client->async_send(
        env_.address, std::move(req),
        [st, i, slot, h = hbh(i), e = e2e(i), s = sid(i)](std::error_code ec, bytes a) {
          if (ec) {
            st->failures.add("callback " + std::to_string(i) + ": " + ec.message());
          } else if (auto r = is_3002_answer_to(a, h, e, s); !r) {
            st->failures.add("callback " + std::to_string(i) + ": " + r.message());
          }
          std::lock_guard lock(st->m);
          if (st->outcome[slot]) {
            ++st->twice;
          } else {
            st->outcome[slot] = ec;
            ++st->completed;
          }
          st->cv.notify_all();
        });
  }
  const auto launched = client->stats();
  note("2000 async_send launched in " + std::to_string(ms_since(start)) + " ms; " +
       std::to_string(launched.in_flight) + " in flight right after");
  const auto deadline = start + 30s;
  {
    std::unique_lock lock(st->m);
    ASSERT_TRUE(st->cv.wait_until(lock, deadline, [&] { return st->completed == callbacks; }))
        << st->completed << " of " << callbacks << " callbacks completed";
  }
  std::uint32_t future_good = 0;
  for (std::uint32_t k = 0; k < futures; ++k) {
    const std::uint32_t i = 4 * k + 3;
    auto& f = pending[k];
    ASSERT_EQ(f.wait_until(deadline), std::future_status::ready) << "future " << i;
    try {
      const bytes a = f.get();
      const auto r = is_3002_answer_to(a, hbh(i), e2e(i), sid(i));
      EXPECT_TRUE(r) << "future " << i;
      if (r) ++future_good;
    } catch (const std::system_error& e) {
      ADD_FAILURE() << "future " << i << ": " << e.code().message();
    }
  }
  const auto took = ms_since(start);
  note("2000 async_send (1500 callbacks, 500 futures) all completed in " + std::to_string(took) +
       " ms (" + std::to_string(took > 0 ? 1000 * total / took : 0) + " requests/s)");
  st->failures.report();
  EXPECT_EQ(st->failures.count(), 0U);
  EXPECT_EQ(future_good, futures);
  {
    std::lock_guard lock(st->m);
    EXPECT_EQ(st->twice, 0U) << "callbacks run more than once";
  }
  const auto s = client->stats();
  EXPECT_EQ(s.total_requests, total);
  EXPECT_EQ(s.total_responses, total);
  EXPECT_EQ(s.total_errors, 0U);
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.pool.connections_created, 1U);
  EXPECT_EQ(s.pool.failed_establishments, 0U);
  EXPECT_EQ(s.pool.unmatched_answers, 0U);
  const auto info = client->connection(env_.address);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->stats.requests_sent, total);
  EXPECT_EQ(info->stats.answers_received, total);
  close(*client);
  EXPECT_EQ(client->stats().pool.connections_closed, 1U);
}

// 4. close() while 32 threads send synchronously in a loop: every send gets exactly one
// outcome, its answer or pool_closed (each thread stops at its first pool_closed); no send
// hangs; close() returns promptly (it waits for the answers owed, then DPR/DPA). freeDiameter
// is still healthy afterwards: a new client with another Origin-Host gets an answer.
TEST_F(freediameter_address_client, close_while_32_threads_send_gives_each_send_one_outcome) {
  const std::string me = "ac-close-load.example.com";
  auto client = make(config_for(me));
  constexpr unsigned threads = 32;
  constexpr std::uint32_t max_per_thread = 50000;  // a bound, never reached
  std::atomic<std::uint64_t> answered{0};
  std::atomic<std::uint64_t> answered_during_close{0};
  std::atomic<unsigned> closed_before_return{0};  // pool_closed for sends begun before close()
  std::atomic<unsigned> closed_after_return{0};   // returned: refused
  std::atomic<bool> close_started{false};
  std::atomic<bool> close_returned{false};
  std::atomic<unsigned> finished{0};
  std::vector<unsigned> pool_closed_count(threads, 0);
  failure_log failures;
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < max_per_thread; ++i) {
        const std::uint32_t hbh = ((t + 1) << 20) | i;
        const std::uint32_t e2e = 0x6400000 + t;
        const std::string sid = me + ";" + std::to_string(t) + ";" + std::to_string(i);
        const bool begun_after_return = close_returned.load();
        std::error_code ec;
        const bytes a = client->send(env_.address, make_request(me, env_.realm, hbh, e2e, sid), ec);
        if (!ec) {
          if (auto r = is_3002_answer_to(a, hbh, e2e, sid); !r) {
            failures.add("thread " + std::to_string(t) + ": " + r.message());
          }
          ++answered;
          if (close_started.load()) ++answered_during_close;
          continue;
        }
        if (ec == error::pool_closed) {
          ++pool_closed_count[t];
          ++(begun_after_return ? closed_after_return : closed_before_return);
        } else {
          failures.add("thread " + std::to_string(t) + " request " + std::to_string(i) + ": " +
                       ec.message() + " (expected an answer or pool_closed)");
        }
        break;
      }
      ++finished;
    });
  }
  ASSERT_TRUE(eventually([&] { return answered.load() >= 2000; }, 20s))
      << "only " << answered.load() << " answers before close()";
  const auto answered_before = answered.load();
  close_started = true;
  const auto took = close(*client);
  close_returned = true;
  join_all(workers, finished, must_happen, "sends after close()");
  note("close() with 32 threads sending (" + std::to_string(answered_before) +
       " answered before it): took " + std::to_string(took.count()) + " ms; " +
       std::to_string(answered_during_close.load()) + " answers during it; pool_closed for " +
       std::to_string(closed_before_return.load()) + " sends begun before it returned and " +
       std::to_string(closed_after_return.load()) + " after");
  EXPECT_LT(took, 3s);
  failures.report();
  for (unsigned t = 0; t < threads; ++t)
    EXPECT_EQ(pool_closed_count[t], 1U) << "thread " << t;
  const auto s = client->stats();
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.total_requests, answered.load() + threads);
  EXPECT_EQ(s.total_responses, answered.load());
  EXPECT_EQ(s.total_errors, threads);
  EXPECT_EQ(s.total_timeouts, 0U);
  EXPECT_EQ(s.pool.connections_created, 1U);
  EXPECT_EQ(s.pool.connections_closed, 1U);
  EXPECT_EQ(s.pool.unmatched_answers, 0U);
  // A send on the closed client is refused at once.
  const auto refused_at = clock::now();
  std::error_code ec;
  client->send(env_.address, make_request(me, env_.realm, 1, 1, me + ";after"), ec);
  EXPECT_EQ(ec, error::pool_closed);
  EXPECT_LT(clock::now() - refused_at, 500ms);

  // freeDiameter still serves: a new client with another Origin-Host.
  const std::string next = "ac-after-close.example.com";
  auto other = make(config_for(next));
  expect_answered(*other, next, 41);
  expect_answered(*other, next, 42);
  EXPECT_EQ(other->stats().pool.connections_created, 1U);
  close(*other);
}

// 5. Idle timeout (300 ms) against freeDiameter: after one answered request and no traffic,
// the connection is closed with DPR (freeDiameter's DPA ends it); the next send, once that
// close has finished, reconnects (a second establishment with the same Origin-Host) and is
// answered. Had freeDiameter still held the old connection, it would have refused that CER
// (5012, or no CEA at all: see the next case) and the request waiting for the establishment
// would have failed with handshake_failed; such failures are counted and the request sent
// again (for at most 3 s), and what happened is printed.
TEST_F(freediameter_address_client, idle_connection_is_closed_with_dpr_and_reconnects) {
  const std::string me = "ac-idle.example.com";
  pool_config c = config_for(me);
  c.idle_timeout = 300ms;
  c.send_timeout = 3s;
  auto client = make(c);
  expect_answered(*client, me, 51);
  const auto answered_at = clock::now();
  auto s = client->stats();
  EXPECT_EQ(s.pool.connections_created, 1U);
  ASSERT_TRUE(eventually([&] { return client->stats().pool.idle_closures == 1; }, must_happen))
      << "no idle closure within 5 s";
  const auto idle_after = ms_since(answered_at);
  const auto idle_at = clock::now();
  ASSERT_TRUE(eventually([&] { return client->stats().pool.connections_closed == 1; }, must_happen))
      << "the idle connection did not finish closing within 5 s";
  note("idle timeout 300 ms: idle closure " + std::to_string(idle_after) +
       " ms after the answer; the DPR close finished " + std::to_string(ms_since(idle_at)) +
       " ms later");
  EXPECT_GE(idle_after, 290);
  s = client->stats();
  EXPECT_EQ(s.pool.idle_closures, 1U);
  EXPECT_EQ(s.pool.connections_closed, 1U);
  EXPECT_EQ(s.pool.active_connections, 0U);
  // CER, the request, the DPR; CEA, the answer, the DPA (no watchdog within 300 ms).
  EXPECT_EQ(s.pool.messages_sent, 3U);
  EXPECT_EQ(s.pool.messages_received, 3U);
  auto info = client->connection(env_.address);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, peer_state::disconnected);
  EXPECT_EQ(info->draining, 0U);
  EXPECT_TRUE(client->list_connections().empty());

  // The next send, at once: a new establishment with the same Origin-Host.
  const auto reconnect_start = clock::now();
  unsigned refused = 0;
  std::vector<std::string> seen;
  std::error_code ec;
  for (std::uint32_t attempt = 0;; ++attempt) {
    const std::uint32_t hbh = 52 + attempt;
    const std::string sid = me + ";5;" + std::to_string(hbh);
    const bytes a = client->send(env_.address, make_request(me, env_.realm, hbh, 5, sid), 3s, ec);
    if (!ec) {
      EXPECT_TRUE(is_3002_answer_to(a, hbh, 5, sid));
      seen.push_back("answered");
      break;
    }
    info = client->connection(env_.address);
    const std::uint32_t rc =
        info && info->stats.handshake ? info->stats.handshake->result_code : 0xFFFFFFFF;
    seen.push_back(ec.message() + " " + std::to_string(rc));
    ASSERT_EQ(ec, error::handshake_failed) << ec.message();
    // CEA 5012, or the CER dropped and the connection closed before any CEA (Result-Code 0).
    ASSERT_TRUE(rc == result_code::unable_to_comply || rc == 0) << "not a transient refusal";
    ++refused;
    ASSERT_LT(clock::now() - reconnect_start, 3s) << "still refused after 3 s";
  }
  std::string outcomes;
  for (const auto& o : seen)
    outcomes += (outcomes.empty() ? "" : "; ") + o;
  note("send right after the idle closure (" + std::to_string(ms_since(reconnect_start)) +
       " ms): " + outcomes);
  s = client->stats();
  EXPECT_EQ(s.pool.connections_created, 2U);
  EXPECT_EQ(s.pool.failed_establishments, refused);
  EXPECT_EQ(s.pool.reconnect_attempts, 1U + refused);
  EXPECT_EQ(s.pool.idle_closures, 1U);
  EXPECT_EQ(s.pool.active_connections, 1U);
  info = client->connection(env_.address);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, peer_state::open);
  EXPECT_EQ(info->peer.origin_host, env_.host);
  close(*client);
  s = client->stats();
  EXPECT_EQ(s.pool.connections_closed, 2U);
  EXPECT_EQ(s.in_flight, 0U);
}

// 5b. A send while the idle connection's DPR is under way (the address already shows no
// connection, the old one is still draining). freeDiameter drops a CER from an Origin-Host
// it still holds in STATE_CLOSING ("Message discarded while cleaning peer state machine
// queue") and closes without a CEA, so the client must not dial before the old connection is
// gone: the request waits for the close to finish, then for a new connection, and is
// answered. (Before the client waited, about 3 such sends in 10 failed with
// handshake_failed.)
TEST_F(freediameter_address_client, send_during_the_idle_dpr_waits_for_it_and_is_answered) {
  const std::string me = "ac-idle-race.example.com";
  pool_config c = config_for(me);
  c.idle_timeout = 200ms;
  c.send_timeout = 3s;
  auto client = make(c);
  constexpr std::uint32_t rounds = 10;
  unsigned in_window = 0;
  for (std::uint32_t k = 0; k < rounds; ++k) {
    expect_answered(*client, me, 0x5000 + k);
    // Waits (spinning: the window lasts about a millisecond) until the idle close has taken
    // the connection away and is still under way; or until it is over (window missed).
    const auto closed_before = client->stats().pool.connections_closed;
    const auto spin_until = clock::now() + must_happen;
    bool window = false;
    for (;;) {
      const auto info = client->connection(env_.address);
      if (info && info->state == peer_state::disconnected && info->draining > 0) {
        window = true;
        break;
      }
      if (client->stats().pool.connections_closed > closed_before) break;
      ASSERT_LT(clock::now(), spin_until) << "no idle closure within 5 s";
      std::this_thread::yield();
    }
    if (window) ++in_window;
    const std::uint32_t hbh = 0x5100 + k;
    const std::string sid = me + ";5b;" + std::to_string(k);
    std::error_code ec;
    const bytes a = client->send(env_.address, make_request(me, env_.realm, hbh, 5, sid), 3s, ec);
    ASSERT_FALSE(ec) << "a send during the idle DPR: " << ec.message();
    EXPECT_TRUE(is_3002_answer_to(a, hbh, 5, sid));
  }
  note(std::to_string(rounds) + " sends right after an idle closure, " + std::to_string(in_window) +
       " of them while its DPR was under way: all answered");
  const auto s = client->stats();
  // freeDiameter may still refuse the new connection for a moment after the DPA (the client
  // waits for its own side of the close only): such refusals are retried within the deadline.
  note("refused establishments retried: " + std::to_string(s.pool.failed_establishments));
  EXPECT_EQ(s.pool.idle_closures, rounds);
  EXPECT_EQ(s.total_errors, 0U);
  EXPECT_EQ(s.in_flight, 0U);
  close(*client);
}

// 6. An Origin-Host already connected (another client holds it): freeDiameter's CEA 5012
// fails the establishment and the request waiting for it gets handshake_failed, with the
// Result-Code and Error-Message in connection(address). A request that cannot outlive the
// backoff delay fails at once with that reason, without a new dial. Once the other client has
// closed (DPR), a send that can wait for the next attempt is answered.
TEST_F(freediameter_address_client, origin_host_already_connected_gets_5012_then_recovers) {
  const std::string me = "ac-dup.example.com";
  auto first = make(config_for(me));
  expect_answered(*first, me, 61);
  pool_config c = config_for(me);
  c.reconnect_interval = 500ms;  // room for the fail-fast check below
  c.max_reconnect_delay = 500ms;
  auto second = make(c);
  std::error_code ec;
  // 300 ms: shorter than the backoff delay, so the request is not kept for the next attempt.
  second->send(env_.address, make_request(me, env_.realm, 62, 6, me + ";62"), 300ms, ec);
  const auto refused_at = clock::now();
  ASSERT_EQ(ec, error::handshake_failed) << ec.message();
  auto info = second->connection(env_.address);
  ASSERT_TRUE(info);
  ASSERT_TRUE(info->stats.handshake);
  EXPECT_EQ(info->stats.handshake->result_code, result_code::unable_to_comply);
  note("address_client, CER with an Origin-Host already connected: Result-Code " +
       std::to_string(info->stats.handshake->result_code) + ", Error-Message \"" +
       info->stats.handshake->error_message + "\"");
  EXPECT_EQ(info->consecutive_failures, 1U);
  EXPECT_EQ(info->last_error, error::handshake_failed);
  // The address never opened and nothing waits for it: no reconnection is due, so FAILED,
  // already when the failed send returns (the state is published before its waiters wake).
  EXPECT_EQ(info->state, peer_state::failed) << to_string(info->state);
  EXPECT_TRUE(info->next_attempt);
  auto s = second->stats();
  EXPECT_EQ(s.pool.failed_establishments, 1U);
  EXPECT_EQ(s.pool.connections_created, 0U);
  EXPECT_EQ(s.total_errors, 1U);

  // 50 ms to spare before the next attempt (500 ms): fails at once with the reason, no dial.
  // (Waiting instead would end in timed_out at its deadline.)
  const auto quick_at = clock::now();
  second->send(env_.address, make_request(me, env_.realm, 63, 6, me + ";63"), 50ms, ec);
  if (quick_at < refused_at + 250ms) {  // else the next attempt may be due by its deadline
    EXPECT_EQ(ec, error::handshake_failed) << ec.message();
    EXPECT_EQ(second->stats().pool.failed_establishments, 1U) << "dialled before the backoff";
  }
  // The first client still serves.
  expect_answered(*first, me, 64);

  close(*first);
  // Now a send that can wait for the next attempt (at most 500 ms away) is answered: the
  // client retries within its deadline while freeDiameter may still refuse for a moment.
  const auto recover_at = clock::now();
  const auto failed_before = second->stats().pool.failed_establishments;
  const std::string sid = me + ";6;65";
  const bytes a = second->send(env_.address, make_request(me, env_.realm, 65, 6, sid), 3s, ec);
  ASSERT_FALSE(ec) << "still refused 3 s after the first client left: " << ec.message();
  EXPECT_TRUE(is_3002_answer_to(a, 65, 6, sid));
  s = second->stats();
  note("the refused client's send after the other one closed: answered in " +
       std::to_string(ms_since(recover_at)) + " ms, after " +
       std::to_string(s.pool.failed_establishments - failed_before) + " more refusal(s)");
  EXPECT_EQ(s.pool.connections_created, 1U);
  info = second->connection(env_.address);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, peer_state::open);
  EXPECT_EQ(info->consecutive_failures, 0U);
  close(*second);
}

// 7. An Origin-Host acl_wl does not allow: CEA 3010 -> handshake_failed for the request,
// with the code in connection(address).
TEST_F(freediameter_address_client, unknown_origin_host_gets_3010) {
  pool_config c = config_for("ac-other.example.org");
  c.origin_realm = "example.org";
  auto client = make(c);
  std::error_code ec;
  client->send(env_.address,
               make_request("ac-other.example.org", env_.realm, 71, 7, "ac-other.example.org;71"),
               3s, ec);
  EXPECT_EQ(ec, error::handshake_failed) << ec.message();
  const auto info = client->connection(env_.address);
  ASSERT_TRUE(info);
  ASSERT_TRUE(info->stats.handshake);
  EXPECT_EQ(info->stats.handshake->result_code, result_code::unknown_peer);
  note("address_client, unknown Origin-Host: Result-Code " +
       std::to_string(info->stats.handshake->result_code) + ", Error-Message \"" +
       info->stats.handshake->error_message + "\"");
  const auto s = client->stats();
  EXPECT_EQ(s.pool.failed_establishments, 1U);
  EXPECT_EQ(s.pool.connections_created, 0U);
  EXPECT_EQ(s.in_flight, 0U);
  close(*client);
}

}  // namespace
}  // namespace diampool
