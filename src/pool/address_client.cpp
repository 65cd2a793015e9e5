#include "diampool/address_client.hpp"

#include <algorithm>
#include <asio/bind_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/system_executor.hpp>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "diampool/address.hpp"
#include "diampool/address_policy.hpp"
#include "diampool/codes.hpp"
#include "diampool/detail/address_hash.hpp"
#include "diampool/histogram.hpp"
#include "diampool/message.hpp"
#include "diampool/spdlog_logger.hpp"

namespace diampool {

using clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

struct pool_entry;

namespace {
// The client whose worker thread this is, if any (close() must not wait on its own thread).
thread_local const void* this_thread_pool = nullptr;

}  // namespace

namespace detail {

// Where a cancellable request is, so that a cancellation finds it: waiting in an address's
// queue, or sent on a connection. Guarded by `m`; placement and cancellation both lock it.
struct request_cancel {
  std::mutex m;
  bool cancelled = false;
  bool done = false;
  std::weak_ptr<pool_entry> entry;
  std::uint64_t waiter_id = 0;
  std::weak_ptr<connection> conn;
  std::uint64_t conn_id = 0;
};

}  // namespace detail

using detail::pool_request;
using request_ptr = std::unique_ptr<pool_request>;

// A connection of an address, with the serial number its events carry.
struct conn_slot {
  std::shared_ptr<connection> c;
  std::uint64_t serial = 0;
  explicit operator bool() const noexcept { return static_cast<bool>(c); }
};

// ---------------------------------------------------------------------------------------------

struct address_client::impl : std::enable_shared_from_this<address_client::impl> {
  // `io`: the client's own io_context, or null to run on `e`.
  impl(pool_config c, std::shared_ptr<logger> lg, executor_type e,
       std::unique_ptr<asio::io_context> io)
      : own_io(std::move(io)),
        cfg(std::move(c)),
        conn_cfg(cfg.connection()),
        backoff(cfg.backoff()),
        log(std::move(lg)),
        ex(own_io ? executor_type(own_io->get_executor()) : std::move(e)),
        health_strand(asio::make_strand(ex)),
        health_timer(std::in_place, *health_strand) {}

  // The client's own io_context, when it was not given an executor. First member: whatever
  // lives on it (strands, timers) is destroyed before it.
  std::unique_ptr<asio::io_context> own_io;

  pool_config cfg;
  connection_config conn_cfg;
  backoff_policy backoff;
  std::shared_ptr<logger> log;
  executor_type ex;

  mutable std::shared_mutex map_m;
  std::unordered_map<std::string, std::shared_ptr<pool_entry>, detail::address_hash,
                     std::equal_to<>>
      entries;           // under map_m
  bool closing = false;  // under map_m
  std::atomic<bool> closing_flag{false};
  std::atomic<std::uint64_t> next_serial{1};

  // Both reset by close() before own_io: they belong to its services.
  std::optional<asio::strand<executor_type>> health_strand;
  std::optional<asio::steady_timer> health_timer;

  // The client's own threads, when it was not given an executor.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::shared_ptr<impl> keep_alive;  // only when destroyed from one of its own threads
  // Senders hold it shared while they start a request; close() sets `dead` under it.
  std::shared_mutex life_m;
  bool dead = false;

  std::mutex close_m;
  std::condition_variable close_cv;
  bool close_finished = false;  // under close_m

  // client counters
  // next_request - 1: the requests taken so far (each gets its id from it).
  std::atomic<std::uint64_t> responses{0}, errors{0}, timeouts{0}, cancels{0}, in_flight{0},
      next_request{1};
  // pool counters
  std::atomic<std::uint64_t> created{0}, failed{0}, reconnects{0}, closed_conns{0}, idle{0},
      lifetimes{0}, health_checks{0};
  // Counters of connections no longer held by any address (under retired_m).
  mutable std::mutex retired_m;
  pool_stats retired;
  histogram_snapshot retired_latency;  // of the addresses forgotten

  void log_event(log_level level, std::string_view msg, std::initializer_list<log_field> f) {
    if (log->enabled(level)) log->log(level, msg, {f.begin(), f.size()});
  }

  void finish(request_ptr r, std::error_code ec, std::vector<std::uint8_t> answer = {});
  void fail_now(request_ptr r, std::error_code ec);
  void route(std::string_view address, request_ptr r);
  void remove_entry(const std::string& address, const pool_entry* e);
  void absorb(const connection_stats& s) {  // caller holds retired_m
    retired.messages_sent += s.messages_sent;
    retired.messages_received += s.messages_received;
    retired.bytes_sent += s.bytes_sent;
    retired.bytes_received += s.bytes_received;
    retired.unmatched_answers += s.unmatched_answers;
  }
  void schedule_health();
  void run_health_check();
  void shutdown_and_wait(bool wait);
};

// ---------------------------------------------------------------------------------------------
// One address: its connection, its queue of requests waiting for a connection, its retry
// schedule. All its decisions run on its strand; the fields under `m` are also read by
// senders (the fast path) and by stats().

struct pool_entry : std::enable_shared_from_this<pool_entry> {
  using phase = address_phase;

  pool_entry(std::shared_ptr<address_client::impl> p, std::string a, std::uint64_t seed)
      : pool(std::move(p)),
        address(std::move(a)),
        strand(asio::make_strand(pool->ex)),
        timer(strand),
        last_activity(clock::now().time_since_epoch().count()),
        retry(pool->backoff, seed) {}

  std::shared_ptr<address_client::impl> pool;
  const std::string address;
  asio::strand<address_client::executor_type> strand;
  asio::steady_timer timer;

  // ---- under m ----
  mutable std::mutex m;
  conn_slot current;
  conn_slot replacement;
  std::vector<conn_slot> draining;
  struct published_t {
    phase ph = phase::idle;
    unsigned failures = 0;
    std::optional<steady_time> next_attempt;
    std::error_code last_error;
    bool reconnecting = false;
  } published;

  std::atomic<clock::rep> last_activity;  // application traffic only
  latency_histogram latency;              // request to answer, microseconds

  // ---- strand only ----
  phase ph = phase::idle;
  retry_schedule retry;
  bool attempted = false;
  bool ever_open = false;
  bool retired = false;
  steady_time opened_at{};
  steady_time replace_not_before{};
  std::uint64_t rebuild_after = 0;  // serial of the connection whose close starts a new one
  bool refuses_parallel = false;    // the peer refused a second connection (max lifetime)
  std::error_code last_error;
  std::list<request_ptr> waiters;  // a list: nothing held while empty, the usual case
  steady_time timer_at = steady_time::max();
  std::uint64_t timer_seq = 0;
  std::function<void()> on_shutdown;
  std::size_t shutdown_pending = 0;

  const pool_config& cfg() const { return pool->cfg; }

  void touch(steady_time now = clock::now()) noexcept {
    last_activity.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  }
  steady_time last_active() const noexcept {
    return steady_time(clock::duration(last_activity.load(std::memory_order_relaxed)));
  }

  template <typename F>
  auto on_strand(F&& f) {
    return asio::bind_executor(strand, std::forward<F>(f));
  }

  void log_event(log_level level, std::string_view msg, std::initializer_list<log_field> extra) {
    if (!pool->log->enabled(level)) return;
    std::vector<log_field> fields{{"address", address}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    pool->log->log(level, msg, fields);
  }

  std::shared_ptr<connection> ready_connection() const {
    std::lock_guard lk(m);
    if (current && current.c->ready()) return current.c;
    return nullptr;
  }

  void publish() {
    std::lock_guard lk(m);
    published.ph = ph;
    published.failures = retry.failures();
    published.next_attempt = ph == phase::down ? std::optional(retry.next_attempt()) : std::nullopt;
    published.last_error = last_error;
    published.reconnecting = wants_reconnect();
  }

  // ---- requests (any thread) ----

  void submit(request_ptr r) {
    touch(r->started);  // the send's own clock reading
    if (auto c = ready_connection()) {
      send_on(c, std::move(r));
      return;
    }
    asio::post(strand, [self = shared_from_this(), r = std::move(r)]() mutable {
      self->enqueue(std::move(r));
    });
  }

  void send_on(const std::shared_ptr<connection>& c, request_ptr r) {
    if (r->cancel) {
      std::unique_lock lk(r->cancel->m);
      if (r->cancel->cancelled) {
        lk.unlock();
        pool->fail_now(std::move(r), error::cancelled);
        return;
      }
    }
    const std::uint64_t id = c->new_request_id();
    std::vector<std::uint8_t> bytes = std::move(r->bytes);
    const steady_time deadline = r->deadline;
    std::shared_ptr<detail::request_cancel> cs = r->cancel;
    r->via = shared_from_this();  // the request is the connection's operation: back here
    if (!cs) {
      c->send_with(std::move(r), id, std::move(bytes), deadline);
      return;
    }
    std::unique_lock lk(cs->m);
    if (cs->cancelled) {
      lk.unlock();
      // Cancelled since the check above: completed from the strand (never inside the
      // caller's send).
      r->via.reset();
      asio::post(strand, [self = shared_from_this(), r = std::move(r)]() mutable {
        self->on_result(std::move(r), error::cancelled, {});
      });
      return;
    }
    cs->conn = c;
    cs->conn_id = id;
    cs->entry.reset();
    // Sent while holding the lock: a cancellation that sees `conn` is posted after the send.
    c->send_with(std::move(r), id, std::move(bytes), deadline);
  }

  // The outcome of a request sent on a connection (runs on that connection's thread).
  void on_result(request_ptr r, std::error_code ec, std::vector<std::uint8_t> answer) {
    if (ec == error::not_open && !answer.empty()) {
      // Never written (the connection stopped being open first): it goes back to the queue.
      r->bytes = std::move(answer);
      if (r->cancel) {
        std::lock_guard lk(r->cancel->m);
        r->cancel->conn.reset();
      }
      asio::post(strand, [self = shared_from_this(), r = std::move(r)]() mutable {
        self->enqueue(std::move(r));
      });
      return;
    }
    if (!ec) {
      // The answer's read, for both uses (no clock read of our own).
      const steady_time now = detail::event_time_or_now();
      touch(now);
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - r->started);
      latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(us.count(), 0)));
    }
    pool->finish(std::move(r), ec, std::move(answer));
  }

  // ---- strand ----

  void enqueue(request_ptr r) {
    if (retired) {
      pool->route(address, std::move(r));
      return;
    }
    if (ph == phase::closed) {
      pool->finish(std::move(r), error::pool_closed);
      return;
    }
    if (r->cancel) {
      std::unique_lock lk(r->cancel->m);
      if (r->cancel->cancelled) {
        lk.unlock();
        pool->finish(std::move(r), error::cancelled);
        return;
      }
      r->cancel->entry = weak_from_this();
      r->cancel->waiter_id = r->id;
    }
    const steady_time now = clock::now();
    if (r->deadline <= now) {
      pool->finish(std::move(r), error::timed_out);
      return;
    }
    if (ph == phase::open) {
      if (auto c = ready_connection()) {
        send_on(c, std::move(r));
        return;
      }
    }
    if (waiters.size() >= cfg().max_backlog) {
      pool->finish(std::move(r), error::send_queue_full);
      return;
    }
    switch (admit(snapshot(false), now, r->deadline)) {
      case admission::establish:
        waiters.push_back(std::move(r));
        establish(now);
        break;
      case admission::wait:
        waiters.push_back(std::move(r));
        break;
      case admission::fail_fast:
        pool->finish(std::move(r), last_error);  // it cannot be up in time: the reason
        break;
      case admission::refuse:
        pool->finish(std::move(r), error::pool_closed);
        break;
    }
    rearm(now);
  }

  void cancel_waiter(std::uint64_t id) {
    auto it = std::find_if(waiters.begin(), waiters.end(),
                           [id](const request_ptr& w) { return w->id == id; });
    if (it == waiters.end()) return;  // moved on: the cancellation follows it there
    request_ptr r = std::move(*it);
    waiters.erase(it);
    pool->finish(std::move(r), error::cancelled);
    rearm(clock::now());
  }

  void fail_waiters(std::error_code ec) {
    auto ws = std::move(waiters);
    waiters.clear();
    for (auto& w : ws)
      pool->finish(std::move(w), ec);
  }

  void flush_waiters(const std::shared_ptr<connection>& c, steady_time now) {
    auto ws = std::move(waiters);
    waiters.clear();
    for (auto& w : ws) {
      if (w->deadline <= now) {
        pool->finish(std::move(w), error::timed_out);
      } else {
        send_on(c, std::move(w));
      }
    }
  }

  conn_slot new_connection() {
    connection_config cc = pool->conn_cfg;
    if (cfg().request_handler) {
      cc.request_handler = [h = cfg().request_handler, a = address](const message_view& req) {
        return h(a, req);
      };
    }
    const std::uint64_t serial = pool->next_serial.fetch_add(1, std::memory_order_relaxed);
    cc.on_state_change = [w = weak_from_this(), serial](peer_state from, peer_state to,
                                                        std::error_code reason) {
      if (auto e = w.lock()) {
        asio::post(e->strand,
                   [e, serial, from, to, reason] { e->on_state_change(serial, from, to, reason); });
      }
    };
    return {connection::create(pool->ex, std::move(cc), pool->log), serial};
  }

  steady_time establish_deadline(steady_time now) const {
    const auto& c = cfg();
    return now + c.dial_timeout + c.cer_timeout + (c.reopen_dwas + 1) * c.dwr_timeout;
  }

  void establish(steady_time now) {
    if (attempted) pool->reconnects.fetch_add(1, std::memory_order_relaxed);
    attempted = true;
    ph = phase::establishing;
    if (replacement) {  // a replacement is already being established: it will serve
      publish();
      return;
    }
    conn_slot c;
    {
      std::lock_guard lk(m);
      if (!current) current = new_connection();
      c = current;
    }
    log_event(log_level::debug, "establishing",
              {{"attempt", std::to_string(retry.failures() + 1)}});
    c.c->async_connect(address, establish_deadline(now),
                       on_strand([self = shared_from_this(), serial = c.serial](
                                     std::error_code ec) { self->on_established(serial, ec); }));
    publish();
  }

  void on_established(std::uint64_t serial, std::error_code ec) {
    if (ph == phase::closed || serial != current.serial) return;
    const steady_time now = clock::now();
    if (!ec) {
      opened(now);
    } else {
      establishment_failed(now, ec, current.c);
    }
    publish();
    rearm(now);
  }

  void opened(steady_time now) {
    ph = phase::open;
    retry.succeeded();
    ever_open = true;
    opened_at = now;
    last_error = {};
    pool->created.fetch_add(1, std::memory_order_relaxed);
    const capabilities peer = current.c->peer();
    log_event(log_level::debug, "connection established",
              {{"peer", peer.origin_host}, {"realm", peer.origin_realm}});
    publish();
    flush_waiters(current.c, now);
  }

  void establishment_failed(steady_time now, std::error_code ec,
                            const std::shared_ptr<connection>& c) {
    pool->failed.fetch_add(1, std::memory_order_relaxed);
    last_error = ec;
    ph = phase::down;
    const steady_time next = retry.failed(now);
    const connection_stats st = c->stats();
    if (log_enabled(log_level::warn)) {
      std::vector<log_field> f{
          {"address", address},
          {"error", ec.message()},
          {"failures", std::to_string(retry.failures())},
          {"retry_in_ms",
           std::to_string(
               std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count())}};
      if (st.handshake) {
        f.push_back({"result_code", std::to_string(st.handshake->result_code)});
        if (!st.handshake->error_message.empty()) {
          f.push_back({"error_message", st.handshake->error_message});
        }
      }
      pool->log->log(log_level::warn, "establishment failed", f);
    }
    // Waiters whose deadline reaches the next attempt wait for it (a peer may refuse for a
    // moment, e.g. while it still cleans up an earlier connection from us); the others get
    // this establishment's own failure, after publication (without them) so that what they
    // see in connection() already says so.
    const address_snapshot a = snapshot(false);
    const bool transient = worth_retrying(ec, st);
    std::vector<request_ptr> failing;
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (transient && can_wait(a, (*it)->deadline)) {
        ++it;
      } else {
        failing.push_back(std::move(*it));
        it = waiters.erase(it);
      }
    }
    publish();
    for (auto& w : failing) {
      pool->finish(std::move(w), ec);
    }
  }

  bool log_enabled(log_level l) const { return pool->log->enabled(l); }

  // Whether an establishment that failed this way may succeed at the next attempt: dial
  // failures, a peer that closed before its CEA, and the CEA codes of a passing refusal
  // (4xxx transient failures, 3004 TOO_BUSY, 5012 UNABLE_TO_COMPLY, which freeDiameter sends
  // while it still holds an earlier connection from the same Origin-Host). An unknown peer
  // (3010), no common application (5010) and other permanent refusals are not retried for the
  // requests waiting: they get the refusal at once.
  static bool worth_retrying(std::error_code ec, const connection_stats& st) {
    if (ec != error::handshake_failed || !st.handshake) return true;
    const std::uint32_t rc = st.handshake->result_code;
    return rc == 0 || (rc >= 4000 && rc < 5000) || rc == result_code::too_busy ||
           rc == result_code::unable_to_comply;
  }

  void on_state_change(std::uint64_t serial, peer_state /*from*/, peer_state to,
                       std::error_code reason) {
    if (to != peer_state::failed && to != peer_state::closed) return;
    if (ph == phase::open && serial == current.serial) lost(reason);
  }

  // The open connection failed or was closed by the peer.
  void lost(std::error_code reason) {
    const steady_time now = clock::now();
    pool->closed_conns.fetch_add(1, std::memory_order_relaxed);
    last_error = reason ? reason : std::error_code(error::connection_closed);
    ph = phase::down;
    const connection_stats st = current.c->stats();
    const bool go_away = reason == error::disconnected_by_peer && st.peer_disconnect_cause &&
                         *st.peer_disconnect_cause == disconnect_cause::do_not_want_to_talk_to_you;
    const steady_time next = go_away ? retry.hold_back(now) : retry.failed(now);
    log_event(log_level::warn, "connection lost",
              {{"error", last_error.message()},
               {"reconnect", cfg().reconnect_enabled ? "true" : "false"},
               {"retry_in_ms",
                std::to_string(
                    std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count())}});
    publish();
    rearm(now);
  }

  // Closes `slot` gracefully after it has been taken out of `current`.
  void drain(conn_slot slot) {
    {
      std::lock_guard lk(m);
      draining.push_back(slot);
    }
    slot.c->async_close(
        on_strand([self = shared_from_this(), serial = slot.serial] { self->drained(serial); }));
  }

  bool draining_empty() const {
    std::lock_guard lk(m);
    return draining.empty();
  }

  void drained(std::uint64_t serial) {
    {
      std::lock_guard rl(pool->retired_m);
      std::lock_guard lk(m);
      auto it = std::find_if(draining.begin(), draining.end(),
                             [serial](const conn_slot& s) { return s.serial == serial; });
      if (it == draining.end()) return;
      pool->absorb(it->c->stats());
      draining.erase(it);
    }
    pool->closed_conns.fetch_add(1, std::memory_order_relaxed);
    if (ph == phase::closed) {
      shutdown_step();
    } else if (serial == rebuild_after && ph == phase::establishing) {
      rebuild_after = 0;
      establish(clock::now());
      rearm(clock::now());
    } else if (ph == phase::idle && !waiters.empty() && draining_empty()) {
      establish(clock::now());  // requests that waited for the old connection to be gone
      rearm(clock::now());
    }
  }

  // Drops `slot` for good (a connection that is not open), keeping its counters.
  void discard(conn_slot& slot) {
    if (!slot) return;
    slot.c->abort();
    std::lock_guard rl(pool->retired_m);
    std::lock_guard lk(m);
    pool->absorb(slot.c->stats());
    slot = {};
  }

  // ---- timer: waiter deadlines, reconnection, idle timeout, max lifetime ----

  address_timing timing() const {
    return {cfg().idle_timeout, cfg().max_conn_lifetime, cfg().reconnect_enabled};
  }

  // What the policy (address_policy.hpp) decides on. `full`: with the queued requests'
  // earliest deadline and the connection's pending requests, which cost a scan and a lock.
  address_snapshot snapshot(bool full) const {
    address_snapshot a;
    a.phase = ph;
    a.ever_open = ever_open;
    a.replacing = static_cast<bool>(replacement);
    a.waiters = waiters.size();
    a.last_activity = last_active();
    a.opened_at = opened_at;
    a.replace_not_before = replace_not_before;
    a.next_attempt = retry.next_attempt();
    a.draining = draining.size();  // written on this strand only
    if (full) {
      for (const auto& w : waiters) {
        a.earliest_waiter_deadline = std::min(a.earliest_waiter_deadline, w->deadline);
      }
      a.requests_pending = ph == phase::open && current && current.c->stats().pending > 0;
    }
    return a;
  }

  bool wants_reconnect() const { return diampool::wants_reconnect(timing(), snapshot(false)); }

  void rearm(steady_time /*now*/) {
    // Queued requests that the next attempt cannot serve before their deadline fail now,
    // with the reason the address is down.
    if (ph == phase::down && !waiters.empty()) {
      const address_snapshot a = snapshot(false);
      for (auto it = waiters.begin(); it != waiters.end();) {
        if (!can_wait(a, (*it)->deadline)) {
          request_ptr r = std::move(*it);
          it = waiters.erase(it);
          pool->finish(std::move(r), last_error);
        } else {
          ++it;
        }
      }
    }
    const steady_time at = next_due(timing(), snapshot(true));
    if (at == timer_at) return;
    timer_at = at;
    if (at == steady_time::max()) {
      timer.cancel();
      return;
    }
    timer.expires_at(at);
    timer.async_wait(on_strand([self = shared_from_this(), seq = ++timer_seq](std::error_code ec) {
      if (ec || seq != self->timer_seq) return;
      self->timer_at = steady_time::max();
      self->on_timer();
    }));
  }

  void on_timer() {
    if (ph == phase::closed || retired) return;
    const steady_time now = clock::now();
    for (auto it = waiters.begin(); it != waiters.end();) {
      if ((*it)->deadline <= now) {
        request_ptr r = std::move(*it);
        it = waiters.erase(it);
        pool->finish(std::move(r), error::timed_out);
      } else {
        ++it;
      }
    }
    switch (due(timing(), snapshot(true), now)) {
      case address_action::keep_alive:
        touch();  // requests still waiting for their answers: not idle
        break;
      case address_action::close_idle:
        close_idle();
        break;
      case address_action::stop_reconnecting:
        log_event(log_level::info, "idle: reconnection stopped", {});
        ph = phase::idle;
        discard(current);
        break;
      case address_action::reconnect:
        establish(now);
        break;
      case address_action::replace:
        start_replacement(now);
        break;
      case address_action::none:
        break;
    }
    publish();
    rearm(now);
  }

  void close_idle() {
    pool->idle.fetch_add(1, std::memory_order_relaxed);
    log_event(log_level::info, "idle timeout: closing", {});
    conn_slot old;
    {
      std::lock_guard lk(m);
      old = std::exchange(current, {});
    }
    ph = phase::idle;
    drain(old);
  }

  // Max lifetime, make-before-break: a new connection is established while the old one
  // serves; then new requests go to the new one and the old one drains and closes.
  void start_replacement(steady_time now) {
    if (refuses_parallel) {  // learnt at an earlier replacement: no point trying again
      replace_break_before_make(now);
      return;
    }
    conn_slot c = new_connection();
    {
      std::lock_guard lk(m);
      replacement = c;
    }
    log_event(log_level::info, "max lifetime: replacing the connection", {});
    c.c->async_connect(address, establish_deadline(now),
                       on_strand([self = shared_from_this(), serial = c.serial](
                                     std::error_code ec) { self->on_replaced(serial, ec); }));
  }

  // The peer refused a second connection from this Origin-Host while the first is up (as
  // freeDiameter does, with 5012): the replacement is made break-before-make instead. New
  // requests wait (within their deadlines) while the old connection finishes its answers and
  // closes with DPR; then a new connection is established for them.
  void replace_break_before_make(steady_time now) {
    pool->lifetimes.fetch_add(1, std::memory_order_relaxed);
    log_event(log_level::info, "peer refused a second connection: replacing break-before-make", {});
    conn_slot old;
    {
      std::lock_guard lk(m);
      old = std::exchange(current, {});
    }
    ph = phase::establishing;
    rebuild_after = old.serial;
    drain(old);
    publish();
    rearm(now);
  }

  void on_replaced(std::uint64_t serial, std::error_code ec) {
    if (ph == phase::closed || serial != replacement.serial) return;
    const steady_time now = clock::now();
    if (ec) {
      pool->failed.fetch_add(1, std::memory_order_relaxed);
      log_event(log_level::warn, "replacement failed; the current connection stays",
                {{"error", ec.message()}});
      conn_slot failed_slot;
      {
        std::lock_guard lk(m);
        failed_slot = std::exchange(replacement, {});
      }
      discard(failed_slot);
      if (ph == phase::open && ec == error::handshake_failed) {
        refuses_parallel = true;
        replace_break_before_make(now);
        return;
      }
      replace_not_before = now + pool->backoff.nominal_delay(1);
      if (ph == phase::establishing) {  // the old one was lost meanwhile: waiters get this
        establishment_failed(now, ec, current.c);
      }
      publish();
      rearm(now);
      return;
    }
    conn_slot old;
    {
      std::lock_guard lk(m);
      old = std::exchange(current, std::exchange(replacement, {}));
    }
    pool->lifetimes.fetch_add(1, std::memory_order_relaxed);
    if (ph == phase::open) {
      pool->created.fetch_add(1, std::memory_order_relaxed);
      opened_at = now;
      drain(old);
      log_event(log_level::info, "connection replaced", {});
      flush_waiters(current.c, now);
    } else {
      discard(old);  // lost while the replacement was being established
      opened(now);
    }
    publish();
    rearm(now);
  }

  // ---- health check ----

  void check_health() {
    if (ph == phase::closed || retired) return;
    const steady_time now = clock::now();
    // A connection that stopped being active without its owner hearing of it.
    if (ph == phase::open && current && !is_active(current.c->state())) {
      lost(current.c->stats().last_error);
    }
    // Addresses with nothing left to remember are forgotten (a new send starts afresh).
    if (forgettable(timing(), snapshot(true), now)) {
      {
        std::lock_guard rl(pool->retired_m);
        pool->retired_latency.merge(latency.snapshot());
      }
      retired = true;
      discard(current);
      timer.cancel();
      pool->remove_entry(address, this);
      log_event(log_level::debug, "address forgotten", {});
    }
    publish();
  }

  // ---- close ----

  void shutdown(std::function<void()> done) {
    const bool was_open = ph == phase::open;
    ph = phase::closed;
    timer.cancel();
    fail_waiters(error::pool_closed);
    on_shutdown = std::move(done);
    std::vector<conn_slot> to_close;
    {
      std::lock_guard lk(m);
      if (current) to_close.push_back(current);
      if (replacement) to_close.push_back(replacement);
    }
    if (was_open) pool->closed_conns.fetch_add(1, std::memory_order_relaxed);
    shutdown_pending = to_close.size() + 1;
    for (auto& s : to_close) {
      s.c->async_close(on_strand([self = shared_from_this()] { self->shutdown_step(); }),
                       error::pool_closed);
    }
    {
      std::lock_guard lk(m);
      for (auto& s : draining) {
        ++shutdown_pending;  // drained() calls shutdown_step() when each one is closed
        s.c->abort(error::pool_closed);
      }
    }
    publish();
    shutdown_step();
  }

  void shutdown_step() {
    if (shutdown_pending == 0 || --shutdown_pending > 0) return;
    {
      std::lock_guard rl(pool->retired_m);
      std::lock_guard lk(m);
      if (current) pool->absorb(current.c->stats());
      if (replacement) pool->absorb(replacement.c->stats());
      current = {};
      replacement = {};
    }
    if (auto done = std::exchange(on_shutdown, nullptr)) done();
  }
};

// ---------------------------------------------------------------------------------------------

void detail::cancel(const std::shared_ptr<request_cancel>& c) {
  std::shared_ptr<pool_entry> e;
  std::uint64_t waiter = 0;
  {
    std::lock_guard lk(c->m);
    if (c->done || c->cancelled) return;
    c->cancelled = true;
    if (auto conn = c->conn.lock()) {
      conn->cancel(c->conn_id);
      return;
    }
    e = c->entry.lock();
    waiter = c->waiter_id;
  }
  // Not placed anywhere yet: whoever places it next sees `cancelled`.
  if (e) asio::post(e->strand, [e, waiter] { e->cancel_waiter(waiter); });
}

void detail::pool_request::consume(std::error_code ec, std::vector<std::uint8_t> answer) {
  request_ptr r(this);
  const std::shared_ptr<pool_entry> e = std::move(via);
  e->on_result(std::move(r), ec, std::move(answer));
}

void address_client::impl::fail_now(request_ptr r, std::error_code ec) {
  // Never inside the initiating function: a handler that sends again on error must not
  // recurse.
  auto home = r->home;
  asio::post(home, [self = shared_from_this(), r = std::move(r), ec]() mutable {
    self->finish(std::move(r), ec);
  });
}

void address_client::impl::finish(request_ptr r, std::error_code ec,
                                  std::vector<std::uint8_t> answer) {
  if (r->cancel) {
    std::lock_guard lk(r->cancel->m);
    r->cancel->done = true;
    r->cancel->conn.reset();
    r->cancel->entry.reset();
  }
  if (!ec) {
    responses.fetch_add(1, std::memory_order_relaxed);
  } else {
    errors.fetch_add(1, std::memory_order_relaxed);
    if (ec == condition::timeout) timeouts.fetch_add(1, std::memory_order_relaxed);
    if (ec == condition::cancelled) cancels.fetch_add(1, std::memory_order_relaxed);
  }

  // Counted before the completion runs, so that a caller woken by it sees its own outcome
  // in stats(). The completion is dispatched (inline here, or queued with the executor's
  // work counted), so close() cannot release the threads before it has run.
  if (in_flight.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      closing_flag.load(std::memory_order_acquire)) {
    std::lock_guard lk(close_m);
    close_cv.notify_all();
  }
  r.release()->deliver(ec, std::move(answer));
}

void address_client::impl::route(std::string_view address, request_ptr r) {
  {
    std::shared_lock lk(map_m);
    if (closing) {
      lk.unlock();
      fail_now(std::move(r), error::pool_closed);
      return;
    }
    if (auto it = entries.find(address); it != entries.end()) {
      // Submitted under the lock: close() cannot slip between the check and the post.
      it->second->submit(std::move(r));
      return;
    }
  }
  std::string host;
  std::string port;
  if (auto ec = split_address(address, host, port)) {
    fail_now(std::move(r), error::invalid_address);
    return;
  }
  std::unique_lock lk(map_m);
  if (closing) {
    lk.unlock();
    fail_now(std::move(r), error::pool_closed);
    return;
  }
  auto [it, inserted] = entries.try_emplace(std::string(address));
  if (inserted) {
    it->second = std::make_shared<pool_entry>(shared_from_this(), it->first, detail::fresh_seed());
  }
  it->second->submit(std::move(r));
}

void address_client::impl::remove_entry(const std::string& address, const pool_entry* e) {
  std::lock_guard lk(map_m);
  if (auto it = entries.find(address); it != entries.end() && it->second.get() == e) {
    entries.erase(it);
  }
}

void address_client::impl::schedule_health() {
  health_timer->expires_after(cfg.health_check_interval);
  health_timer->async_wait(
      asio::bind_executor(*health_strand, [self = shared_from_this()](std::error_code ec) {
        if (ec || self->closing_flag.load()) return;
        self->run_health_check();
        self->schedule_health();
      }));
}

void address_client::impl::run_health_check() {
  health_checks.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::shared_ptr<pool_entry>> all;
  {
    std::shared_lock lk(map_m);
    all.reserve(entries.size());
    for (const auto& [a, e] : entries)
      all.push_back(e);
  }
  for (auto& e : all)
    asio::post(e->strand, [e] { e->check_health(); });
}

void address_client::impl::shutdown_and_wait(bool wait) {
  std::vector<std::shared_ptr<pool_entry>> all;
  {
    std::unique_lock lk(map_m);
    if (closing) {
      lk.unlock();
      if (wait) {
        std::unique_lock cl(close_m);
        close_cv.wait(cl, [&] { return close_finished; });
      }
      return;
    }
    closing = true;
    closing_flag.store(true, std::memory_order_release);
    for (const auto& [a, e] : entries)
      all.push_back(e);
  }
  log_event(log_level::info, "closing", {{"addresses", std::to_string(all.size())}});
  asio::post(*health_strand, [self = shared_from_this()] { self->health_timer->cancel(); });

  auto remaining = std::make_shared<std::atomic<std::size_t>>(all.size());
  auto self = shared_from_this();
  auto entry_done = [self, remaining] {
    if (remaining->fetch_sub(1) == 1) {
      std::lock_guard lk(self->close_m);
      self->close_cv.notify_all();
    }
  };
  for (auto& e : all)
    asio::post(e->strand, [e, entry_done] { e->shutdown(entry_done); });
  if (!wait) return;
  std::unique_lock cl(close_m);
  close_cv.wait(cl, [&] { return remaining->load() == 0 && in_flight.load() == 0; });
  cl.unlock();
  {
    std::unique_lock lk(map_m);
    entries.clear();
  }
  log_event(log_level::info, "closed", {});
}

// ---------------------------------------------------------------------------------------------

namespace {
pool_config checked(pool_config c) {
  std::string field;
  if (auto ec = c.validate(&field)) {
    throw std::system_error(ec, "pool_config." + field);
  }
  return c;
}
}  // namespace

address_client::address_client(pool_config config, std::shared_ptr<logger> log)
    : address_client(std::move(config), std::move(log), executor_type{}) {}

address_client::address_client(pool_config config, std::shared_ptr<logger> log,
                               executor_type executor) {
  config = checked(std::move(config));
  if (!log) log = default_logger();
  std::unique_ptr<asio::io_context> io;
  if (!executor) {
    io = std::make_unique<asio::io_context>(static_cast<int>(config.worker_threads));
  }
  const bool own = static_cast<bool>(io);
  impl_ =
      std::make_shared<impl>(std::move(config), std::move(log), std::move(executor), std::move(io));
  executor_ = impl_->ex;
  if (own) {
    impl_->work.emplace(impl_->own_io->get_executor());
    for (unsigned i = 0; i < impl_->cfg.worker_threads; ++i) {
      impl_->threads.emplace_back([p = impl_.get()] {
        this_thread_pool = p;
        // A completion handler that throws must not take the client down with it.
        for (;;) {
          try {
            p->own_io->run();
            return;
          } catch (const std::exception& e) {
            p->log_event(log_level::error, "exception from a completion handler",
                         {{"what", e.what()}});
          } catch (...) {
            p->log_event(log_level::error, "exception from a completion handler", {});
          }
        }
      });
    }
  }
  impl_->schedule_health();
  impl_->log_event(log_level::info, "client started",
                   {{"origin_host", impl_->cfg.origin_host},
                    {"threads", std::to_string(impl_->threads.size())}});
}

address_client::~address_client() {
  close();
  if (this_thread_pool == impl_.get()) {
    // Destroyed from one of its own completion handlers: the threads cannot be joined from
    // here; they finish on their own once the work has run out.
    for (auto& t : impl_->threads)
      t.detach();
    impl_->threads.clear();
    impl_->keep_alive = impl_;
  }
}

const pool_config& address_client::config() const noexcept {
  return impl_->cfg;
}

steady_time address_client::default_deadline() const noexcept {
  return clock::now() + impl_->cfg.send_timeout;
}

std::shared_ptr<detail::request_cancel> detail::make_cancel() {
  return std::make_shared<detail::request_cancel>();
}

void address_client::start_send(std::string_view address, detail::send_op_factory& make_op,
                                std::vector<std::uint8_t> request, steady_time deadline,
                                std::shared_ptr<detail::request_cancel> cancel) {
  impl& p = *impl_;
  // Until close() has released the threads, completions default to the client's executor;
  // after, to the system executor (the client's executor would never run them).
  // On one of the client's own threads (a completion sending the next request) close()
  // cannot have let the threads go, and what is posted to them still runs: no lock.
  std::shared_lock life(p.life_m, std::defer_lock);
  executor_type home = executor_;
  if (this_thread_pool != &p) {
    life.lock();
    if (p.dead) home = asio::system_executor();
  }
  request_ptr r = make_op.make(home, cancel);
  p.in_flight.fetch_add(1, std::memory_order_relaxed);
  r->cancel = std::move(cancel);
  r->deadline = deadline;
  r->started = detail::event_time_or_now();  // no clock read when sent from a completion
  r->home = home;
  r->id = p.next_request.fetch_add(1, std::memory_order_relaxed);
  std::error_code ec;
  if (!message_view::check(request, ec, p.cfg.max_message_size) ||
      !message_header::read(request.data()).is_request()) {
    p.fail_now(std::move(r), error::invalid_request);
    return;
  }
  r->bytes = std::move(request);
  p.route(address, std::move(r));
}

namespace {
struct sync_wait {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::error_code ec;
  std::vector<std::uint8_t> answer;
};
}  // namespace

std::vector<std::uint8_t> address_client::send(std::string_view address,
                                               std::span<const std::uint8_t> request,
                                               steady_time deadline, std::error_code& ec,
                                               std::stop_token stop) {
  auto w = std::make_shared<sync_wait>();
  auto handler = [w](std::error_code e, std::vector<std::uint8_t> a) {
    {
      std::lock_guard lk(w->m);
      w->ec = e;
      w->answer = std::move(a);
      w->done = true;
    }
    w->cv.notify_one();  // unlocked: the woken caller does not block on the mutex again
  };
  detail::send_op_factory_for<decltype(handler)> f(handler);
  std::shared_ptr<detail::request_cancel> cancel;
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (stop.stop_possible()) {
    cancel = detail::make_cancel();
    // Runs at once if a stop was already requested: the request is then never sent.
    on_stop.emplace(stop, std::function<void()>([cancel] { detail::cancel(cancel); }));
  }
  start_send(address, f, {request.begin(), request.end()}, deadline, std::move(cancel));
  std::unique_lock lk(w->m);
  w->cv.wait(lk, [&] { return w->done; });
  ec = w->ec;
  return std::move(w->answer);
}

std::vector<std::uint8_t> address_client::send(std::string_view address,
                                               std::span<const std::uint8_t> request,
                                               std::chrono::nanoseconds timeout,
                                               std::error_code& ec) {
  return send(address, request, clock::now() + timeout, ec);
}

std::vector<std::uint8_t> address_client::send(std::string_view address,
                                               std::span<const std::uint8_t> request,
                                               std::error_code& ec) {
  return send(address, request, default_deadline(), ec);
}

std::vector<std::uint8_t> address_client::send(std::string_view address,
                                               std::span<const std::uint8_t> request) {
  std::error_code ec;
  auto answer = send(address, request, ec);
  if (ec) throw std::system_error(ec, "diampool send to " + std::string(address));
  return answer;
}

std::error_code address_client::send_and_forget(std::string_view address,
                                                std::span<const std::uint8_t> request) {
  std::error_code ec;
  const message_view m = message_view::parse(request, ec, impl_->cfg.max_message_size);
  if (ec || !m.header().is_request()) return error::invalid_request;
  if (closed()) return error::pool_closed;
  {
    std::string host;
    std::string port;
    if (split_address(address, host, port)) return error::invalid_address;
  }
  // Holds the client's state: on an application's executor the completion may run after
  // close() has returned.
  auto handler = [p = impl_, a = std::string(address)](std::error_code e,
                                                       std::vector<std::uint8_t>) {
    if (e) {
      p->log_event(log_level::debug, "fire-and-forget request failed",
                   {{"address", a}, {"error", e.message()}});
    }
  };
  detail::send_op_factory_for<decltype(handler)> f(handler);
  start_send(address, f, {request.begin(), request.end()}, default_deadline(), nullptr);
  return {};
}

// ---- inspection ----

client_stats address_client::stats() const {
  const impl& p = *impl_;
  client_stats s;
  s.total_requests = p.next_request.load() - 1;
  s.total_responses = p.responses.load();
  s.total_errors = p.errors.load();
  s.total_timeouts = p.timeouts.load();
  s.total_cancelled = p.cancels.load();
  s.in_flight = p.in_flight.load();
  pool_stats& ps = s.pool;
  ps.connections_created = p.created.load();
  ps.failed_establishments = p.failed.load();
  ps.reconnect_attempts = p.reconnects.load();
  ps.connections_closed = p.closed_conns.load();
  ps.idle_closures = p.idle.load();
  ps.lifetime_expirations = p.lifetimes.load();
  ps.health_checks = p.health_checks.load();
  std::lock_guard rl(p.retired_m);
  ps.messages_sent = p.retired.messages_sent;
  ps.messages_received = p.retired.messages_received;
  ps.bytes_sent = p.retired.bytes_sent;
  ps.bytes_received = p.retired.bytes_received;
  ps.unmatched_answers = p.retired.unmatched_answers;
  s.latency = p.retired_latency;
  std::shared_lock lk(p.map_m);
  ps.addresses = p.entries.size();
  for (const auto& [a, e] : p.entries) {
    std::lock_guard el(e->m);
    auto add = [&](const conn_slot& c) {
      if (!c) return;
      const connection_stats st = c.c->stats();
      ps.messages_sent += st.messages_sent;
      ps.messages_received += st.messages_received;
      ps.bytes_sent += st.bytes_sent;
      ps.bytes_received += st.bytes_received;
      ps.unmatched_answers += st.unmatched_answers;
    };
    add(e->current);
    add(e->replacement);
    for (const auto& d : e->draining)
      add(d);
    if (e->current && is_active(e->current.c->state())) ++ps.active_connections;
    s.latency.merge(e->latency.snapshot());
  }
  return s;
}

std::size_t address_client::active_connections() const {
  return list_connections().size();
}

std::vector<std::string> address_client::list_connections() const {
  std::vector<std::string> out;
  std::shared_lock lk(impl_->map_m);
  for (const auto& [a, e] : impl_->entries) {
    std::lock_guard el(e->m);
    if (e->current && is_active(e->current.c->state())) out.push_back(a);
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
connection_info info_of(const pool_entry& entry);
}  // namespace

std::optional<connection_info> address_client::connection(std::string_view address) const {
  std::shared_ptr<pool_entry> e;
  {
    std::shared_lock lk(impl_->map_m);
    auto it = impl_->entries.find(address);
    if (it == impl_->entries.end()) return std::nullopt;
    e = it->second;
  }
  return info_of(*e);
}

std::vector<connection_info> address_client::connections() const {
  std::vector<std::shared_ptr<pool_entry>> all;
  {
    std::shared_lock lk(impl_->map_m);
    all.reserve(impl_->entries.size());
    for (const auto& [a, e] : impl_->entries)
      all.push_back(e);
  }
  std::vector<connection_info> out;
  out.reserve(all.size());
  for (const auto& e : all)
    out.push_back(info_of(*e));
  std::sort(out.begin(), out.end(), [](const connection_info& a, const connection_info& b) {
    return a.address < b.address;
  });
  return out;
}

namespace {
connection_info info_of(const pool_entry& entry) {
  const pool_entry* e = &entry;
  connection_info info;
  info.address = e->address;
  std::lock_guard el(e->m);
  const auto& pub = e->published;
  if (e->current) {
    info.stats = e->current.c->stats();
    info.state = info.stats.state;
    info.peer = e->current.c->peer();
  }
  if (pub.ph == pool_entry::phase::down) {
    info.state = pub.reconnecting ? peer_state::reconnecting : peer_state::failed;
  }
  if (pub.ph == pool_entry::phase::idle && !e->current) info.state = peer_state::disconnected;
  if (pub.ph == pool_entry::phase::closed) info.state = peer_state::closed;
  info.consecutive_failures = pub.failures;
  info.next_attempt = pub.next_attempt;
  info.last_error = pub.last_error;
  info.draining = e->draining.size();
  info.latency = e->latency.snapshot();
  return info;
}
}  // namespace

// ---- close ----

bool address_client::closed() const noexcept {
  return impl_->closing_flag.load();
}

void address_client::close() {
  impl& p = *impl_;
  if (this_thread_pool == &p) {
    p.log_event(log_level::error,
                "close() called from a completion handler: closing without waiting", {});
    p.shutdown_and_wait(false);
    return;
  }
  p.shutdown_and_wait(true);
  {
    std::lock_guard lk(p.close_m);
    if (p.close_finished) return;
  }
  {
    std::unique_lock life(p.life_m);
    p.dead = true;
  }
  if (p.work) {
    p.work.reset();
    for (auto& t : p.threads)
      t.join();
    p.threads.clear();
    // Everything that ran on the io_context has run: it goes too, with the resolver's thread
    // and its descriptors, so that nothing of the client outlives close().
    p.health_timer.reset();
    p.health_strand.reset();
    p.own_io.reset();
  }
  std::lock_guard lk(p.close_m);
  p.close_finished = true;
  p.close_cv.notify_all();
}

}  // namespace diampool
