#include "diampool/connection.hpp"

#include <unistd.h>
#include <algorithm>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_future.hpp>
#include <asio/write.hpp>
#include <future>
#include <list>
#include <mutex>
#include <unordered_map>

namespace diampool {

using clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

std::error_code connection_config::validate(std::string* field) const {
  auto bad = [&](const char* name) {
    if (field != nullptr) *field = name;
    return std::error_code(error::invalid_config);
  };
  if (auto ec = peer.validate(field)) return ec;
  if (dial_timeout <= std::chrono::nanoseconds::zero()) return bad("dial_timeout");
  if (send_buffer_size == 0) return bad("send_buffer_size");
  if (write_timeout <= std::chrono::nanoseconds::zero()) return bad("write_timeout");
  if (read_buffer_size < 1024) return bad("read_buffer_size");
  if (field != nullptr) field->clear();
  return {};
}

// ---------------------------------------------------------------------------------------------

namespace {

thread_local steady_time current_event_time{};

// Marks this thread as handling a connection event read from the clock at `now`; nests.
class event_scope {
 public:
  explicit event_scope(steady_time now) noexcept : prev_(current_event_time) {
    current_event_time = now;
  }
  ~event_scope() { current_event_time = prev_; }
  event_scope(const event_scope&) = delete;
  event_scope& operator=(const event_scope&) = delete;

 private:
  steady_time prev_;
};

}  // namespace

steady_time detail::event_time() noexcept {
  return current_event_time;
}

namespace {

// asio reports errno values in its own category and EOF in another; callers compare with
// std::errc and diampool conditions, so errors leave the transport in the standard categories.
std::error_code normalize(std::error_code ec) {
  if (ec.category() == asio::error::get_system_category()) {
    return {ec.value(), std::system_category()};
  }
  if (ec == asio::error::eof) return error::connection_closed;
  return ec;
}

}  // namespace

struct connection::impl : std::enable_shared_from_this<connection::impl> {
  impl(executor_type ex, connection_config cfg, std::shared_ptr<logger> lg)
      : config(std::move(cfg)),
        log(std::move(lg)),
        strand(asio::make_strand(ex)),
        // On the plain executor: every handler is bound to the strand (on_strand), and an
        // any_io_executor holding a strand is a heap object in each of them.
        resolver(ex),
        socket(ex),
        timer(ex),
        machine(make_machine()) {
    read_buf.resize(read_size);
  }

  // Requests still in the machine when the connection goes without having run its handlers
  // (its io_context destroyed first): their operations are freed, not completed.
  ~impl() {
    machine.fail_pending(error::connection_closed);
    while (machine.has_events()) {
      peer_event ev = machine.next_event();
      if (auto* f = std::get_if<request_failed>(&ev)) take_op(f->context).reset();
      if (auto* a = std::get_if<answer_received>(&ev)) take_op(a->context).reset();
    }
  }

  peer_machine make_machine() {
    config.peer.handle_peer_requests = static_cast<bool>(config.request_handler);
    // The machine borrows config.peer (a shared_ptr that owns nothing): it lives in this
    // object, declared after `config`, so it never outlives it.
    std::shared_ptr<const peer_config> borrowed(std::shared_ptr<const void>(), &config.peer);
    const std::uint64_t seed = detail::fresh_seed();
    const auto unix_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
    return peer_machine(std::move(borrowed), seed, static_cast<std::uint64_t>(unix_seconds));
  }

  // ---- state shared with other threads ----
  connection_config config;
  std::shared_ptr<logger> log;
  std::atomic<peer_state> state{peer_state::disconnected};
  std::atomic<bool> ready{false};
  // Written on the strand only (relaxed load + store: no locked instruction), read by stats().
  std::atomic<std::uint64_t> socket_reads{0};
  std::atomic<std::uint64_t> socket_writes{0};
  static void count(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  mutable std::mutex stats_mutex;
  connection_stats published;
  capabilities peer_caps;  // the peer's CEA, under stats_mutex

  // ---- strand-only state ----
  asio::strand<executor_type> strand;
  tcp::resolver resolver;
  tcp::socket socket;
  asio::steady_timer timer;
  steady_time timer_at = steady_time::max();
  std::uint64_t timer_seq = 0;
  peer_machine machine;
  // The read buffer adapts: small while nothing is pending (an idle connection holds little),
  // doubled after a read that fills it, up to config.read_buffer_size.
  static constexpr std::size_t idle_read_size = 1024;
  std::size_t read_size = std::min(idle_read_size, config.read_buffer_size);
  std::vector<std::uint8_t> read_buf;
  std::vector<std::uint8_t> write_buf;
  bool reading = false;
  bool writing = false;
  bool flush_posted = false;       // flush_soon() is queued on the strand
  bool transport_closing = false;  // close_transport seen: flush, then close the socket
  bool close_after_eof = false;    // ... the DPA to a peer's DPR: FIN, drain, close on EOF
  bool fin_sent = false;           // shutdown(send) done on this socket
  steady_time write_started{};
  steady_time linger_deadline = steady_time::max();
  std::size_t unwritten = 0;  // requests given to the machine whose bytes are not written
  std::size_t in_output = 0;  // of those, still in the machine's output
  std::size_t in_write = 0;   // of those, in the write under way
  std::uint64_t socket_gen = 0;

  // The operations of the requests in the machine are held by it, as their send() context
  // (released there, taken back with the outcome); ~impl() frees any still there.
  struct backlog_entry {
    std::uint64_t id;
    std::unique_ptr<detail::send_op> op;
    std::vector<std::uint8_t> request;
    steady_time deadline;
  };
  std::list<backlog_entry> backlog;  // a list: nothing held while empty, the usual case

  std::unique_ptr<detail::connect_op> connect_op;
  // A connect asked for while the last output of the previous connection (a DPA, answers
  // owed) is still being written: started once that socket is closed.
  struct waiting_connect {
    std::unique_ptr<detail::connect_op> op;
    std::string address;
    steady_time deadline;
  };
  std::unique_ptr<waiting_connect> connect_after_close;
  bool dialing = false;
  bool dial_timed_out = false;
  steady_time dial_deadline = steady_time::max();
  steady_time connect_deadline = steady_time::max();
  std::uint64_t connects = 0;
  bool reopen_next = false;
  std::string address;
  std::vector<std::unique_ptr<detail::close_op>> close_ops;
  std::error_code close_pending_error = error::connection_closed;
  std::error_code last_error;
  std::error_code connect_result;  // set when the connect must end with this error
  std::vector<peer_event> batch;   // events of one after_events() call (reused)
  // Sends started by completions that after_events() runs (a caller sending its next request
  // from the completion of the last): collected on the strand, without a post, and handed
  // to the machine once the completions are done, so they leave in one write.
  struct deferred_send {
    std::unique_ptr<detail::send_op> op;
    std::uint64_t id;
    std::vector<std::uint8_t> request;
    steady_time deadline;
  };
  bool collecting_sends = false;  // written on the strand only
  static constexpr std::size_t early_write = 64;
  // Sends posted to the strand and not yet run: while more are queued, the one that runs
  // leaves the write to the last.
  std::atomic<std::uint32_t> posted_sends{0};
  std::vector<deferred_send> deferred;
  std::vector<deferred_send> deferred_spare;

  template <typename F>
  auto on_strand(F&& f) {
    return asio::bind_executor(strand, std::forward<F>(f));
  }

  void log_event(log_level level, std::string_view msg, std::initializer_list<log_field> extra) {
    if (!log->enabled(level)) return;
    std::vector<log_field> fields{{"address", address},
                                  {"state", std::string(to_string(machine.state()))}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    log->log(level, msg, fields);
  }

  // ---- connect ----

  void do_connect(std::unique_ptr<detail::connect_op> op, std::string addr, steady_time deadline) {
    if (connect_op || dialing || connect_after_close) {
      detail::complete(std::move(op), std::make_error_code(std::errc::operation_in_progress));
      return;
    }
    if (machine.ready()) {
      detail::complete(std::move(op), {});
      return;
    }
    const peer_state s = machine.state();
    if (s != peer_state::disconnected && s != peer_state::failed && s != peer_state::closed &&
        s != peer_state::reconnecting) {
      detail::complete(std::move(op), std::make_error_code(std::errc::operation_in_progress));
      return;
    }
    std::string host;
    std::string port;
    if (auto ec = split_address(addr, host, port)) {
      detail::complete(std::move(op), ec);
      return;
    }
    if (transport_closing && socket.is_open()) {
      // The previous connection still writes its last output (the DPA to a peer's DPR, say):
      // it gets its linger (bounded by write_timeout and dpa_timeout) before the new dial.
      connect_after_close = std::make_unique<waiting_connect>(
          waiting_connect{std::move(op), std::move(addr), deadline});
      return;
    }
    address = std::move(addr);
    // RFC 3539 REOPEN: only when this replaces a connection that was open and then failed.
    reopen_next = connects > 0 && (s == peer_state::failed || s == peer_state::reconnecting);
    const steady_time now = clock::now();
    connect_op = std::move(op);
    connect_result.clear();
    connect_deadline = deadline;
    dial_deadline = std::min(deadline, now + config.dial_timeout);
    dialing = true;
    dial_timed_out = false;
    transport_closing = false;
    linger_deadline = steady_time::max();
    // Whatever is left of the previous socket (a write still in flight, a read) is dropped
    // here: close_socket() moves to a new generation, so their handlers are ignored.
    close_socket();
    unwritten = 0;
    machine.start_connecting(now);
    after_events();
    log_event(log_level::debug, "connecting", {});
    resolver.async_resolve(
        host, port,
        on_strand([self = shared_from_this(), gen = socket_gen](
                      const std::error_code& ec, tcp::resolver::results_type results) {
          self->on_resolved(gen, ec, std::move(results));
        }));
  }

  void on_resolved(std::uint64_t gen, std::error_code ec, tcp::resolver::results_type results) {
    if (gen != socket_gen || !dialing) return;
    if (ec) {
      dial_failed(ec);
      return;
    }
    asio::async_connect(
        socket, results,
        on_strand([self = shared_from_this(), gen](const std::error_code& e, const tcp::endpoint&) {
          self->on_connected(gen, e);
        }));
  }

  void dial_failed(std::error_code ec) {
    ec = normalize(ec);
    dialing = false;
    dial_deadline = steady_time::max();
    if (dial_timed_out) ec = error::connection_timeout;
    std::error_code ignored;
    socket.close(ignored);
    last_error = ec;
    log_event(log_level::warn, "connect failed", {{"error", ec.message()}});
    connect_result = ec;
    machine.connection_lost(clock::now(), ec);  // CONNECTING -> FAILED
    after_events();
  }

  void on_connected(std::uint64_t gen, std::error_code ec) {
    if (gen != socket_gen || !dialing) return;
    if (ec) {
      dial_failed(ec);
      return;
    }
    std::error_code no_local;
    const auto ep = socket.local_endpoint(no_local);
    if (!no_local) {
      if (auto bad = register_for_input_only(ep.protocol())) {
        dial_failed(bad);
        return;
      }
    }
    dialing = false;
    dial_deadline = steady_time::max();
    std::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    socket.non_blocking(true, ignored);  // for read_rest(): never waits
    std::vector<ip_address> local;
    if (!no_local) {
      const auto a = ep.address();
      if (a.is_v4()) {
        local.push_back(ip_address::v4(a.to_v4().to_bytes()));
      } else {
        const auto v6 = a.to_v6();
        if (v6.is_v4_mapped()) {
          local.push_back(
              ip_address::v4(asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_bytes()));
        } else {
          local.push_back(ip_address::v6(v6.to_bytes()));
        }
      }
    }
    machine.connected(clock::now(), local, reopen_next);
    log_event(log_level::debug, "connected, CER sent", {});
    start_read();
    after_events();
  }

  // To learn when the connect ends, asio registered the socket for EPOLLOUT (edge-triggered)
  // and never takes that back: every ACK of our writes would then wake the reactor for no
  // operation at all (an epoll event, a descriptor lock, a turn of the scheduler). The
  // descriptor goes back to asio as a fresh registration, which watches input only; EPOLLOUT
  // returns only if a write ever has to wait. Where release() is not supported, nothing
  // changes; an error after it (the descriptor is then closed) fails the dial. `protocol`:
  // the socket's (from its local endpoint, read anyway for the CER).
  std::error_code register_for_input_only(tcp protocol) {
    std::error_code ec;
    const tcp::socket::native_handle_type fd = socket.release(ec);
    if (ec) return {};
    socket.assign(protocol, fd, ec);
    if (ec) ::close(fd);
    return ec;
  }

  void complete_connect(std::error_code ec) {
    if (!connect_op) return;
    auto op = std::move(connect_op);
    connect_deadline = steady_time::max();
    detail::complete(std::move(op), ec);
  }

  // Stops a resolve or TCP connect under way; the connect operation ends with `ec` (at the
  // next after_events(), once the state is published).
  void abandon_dial(std::error_code ec) {
    dialing = false;
    resolver.cancel();
    std::error_code ignored;
    socket.close(ignored);
    machine.start_reconnecting(clock::now());
    connect_result = ec;
  }

  void do_cancel_connect() {
    if (auto w = std::move(connect_after_close)) {
      detail::complete(std::move(w->op), error::cancelled);
      return;
    }
    if (!connect_op) return;
    if (dialing) {
      abandon_dial(error::cancelled);
      after_events();
      return;
    }
    // Handshake under way: give up on this connection.
    connect_result = error::cancelled;
    abort_transport(error::cancelled);
  }

  // ---- reading and writing ----

  void start_read() {
    if (reading || !socket.is_open() || transport_closing) return;
    reading = true;
    if (read_size > read_buf.size()) {
      read_buf.resize(read_size);
    } else if (read_size < read_buf.size()) {
      std::vector<std::uint8_t>(read_size).swap(read_buf);  // gives the memory back
    }
    socket.async_read_some(
        asio::buffer(read_buf),
        on_strand([self = shared_from_this(), gen = socket_gen](
                      const std::error_code& ec, std::size_t n) { self->on_read(gen, ec, n); }));
  }

  void on_read(std::uint64_t gen, std::error_code ec, std::size_t n) {
    if (gen != socket_gen) return;
    reading = false;
    if (transport_closing) {
      // Input is no longer the machine's; once the FIN is out it is drained (half_close()).
      if (fin_sent) on_drained(gen, ec);
      return;
    }
    const steady_time now = clock::now();
    if (ec) {
      // The machine decides whether this is a failure (last_error is then set from its
      // close reason) or the expected end of a DPR/DPA exchange.
      if (ec != asio::error::operation_aborted) machine.connection_lost(now, normalize(ec));
      after_events();
      return;
    }
    count(socket_reads);
    machine.receive(now, std::span<const std::uint8_t>(read_buf.data(), n));
    bool filled = n == read_buf.size();
    if (filled) {
      ec = read_rest(now, filled);
      if (ec) {
        machine.connection_lost(now, normalize(ec));
        after_events();
        return;
      }
    }
    after_events();
    // Sized after the completions have run: the requests they sent are pending by now, so a
    // connection that keeps a window in flight keeps its buffer, and only one with nothing
    // pending goes back to the small one.
    if (filled) {
      read_size = std::min(read_size * 2, config.read_buffer_size);
    } else if (machine.pending_requests() == 0) {
      read_size = std::min(idle_read_size, config.read_buffer_size);
    }
    start_read();
  }

  // After a read that filled the buffer: reads what else is there now, in a larger buffer,
  // before the completions run, so that answers that came together are handled (and the
  // requests sent from their completions written) together rather than split at the buffer's
  // edge. A few reads at most, so other connections of this thread wait no longer than that.
  std::error_code read_rest(steady_time now, bool& filled) {
    for (int i = 0; i < 4 && filled; ++i) {
      read_size = std::min(read_size * 2, config.read_buffer_size);
      if (read_size > read_buf.size()) read_buf.resize(read_size);
      std::error_code ec;
      const std::size_t n = socket.read_some(asio::buffer(read_buf), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) return {};
      if (ec) return ec;
      count(socket_reads);
      machine.receive(now, std::span<const std::uint8_t>(read_buf.data(), n));
      filled = n == read_buf.size();
      const peer_state s = machine.state();
      if (s != peer_state::cer_sent && s != peer_state::open && s != peer_state::dwr_sent &&
          s != peer_state::closing) {
        return {};  // the machine stopped reading (malformed input, say)
      }
    }
    return {};
  }

  // The DPA to a peer's DPR is written: a FIN follows it, and input is read and dropped
  // until the peer closes its side too (it does on the DPA), or the linger ends. Closing at
  // once, with input the peer sent before it saw the DPA still unread, would reset the
  // connection, and a peer that meets the reset on a write before it has read the DPA loses
  // the DPA.
  void half_close() {
    if (!fin_sent) {
      fin_sent = true;
      std::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_send, ignored);
    }
    if (reading || !socket.is_open()) return;
    if (read_buf.empty()) read_buf.resize(idle_read_size);  // an empty read would not wait
    reading = true;
    socket.async_read_some(
        asio::buffer(read_buf),
        on_strand([self = shared_from_this(), gen = socket_gen](
                      const std::error_code& ec, std::size_t) { self->on_drained(gen, ec); }));
  }

  void on_drained(std::uint64_t gen, std::error_code ec) {
    if (gen != socket_gen) return;
    reading = false;
    if (ec) {  // the peer's end of stream (or an error): nothing more to wait for
      close_socket();
      after_events();
      return;
    }
    half_close();
  }

  void flush() {
    if (writing || machine.output().empty() || !socket.is_open()) return;
    machine.take_output(write_buf);
    in_write = in_output;
    in_output = 0;
    writing = true;
    count(socket_writes);
    write_started = clock::now();
    asio::async_write(
        socket, asio::buffer(write_buf),
        on_strand([self = shared_from_this(), gen = socket_gen](
                      const std::error_code& ec, std::size_t) { self->on_written(gen, ec); }));
  }

  // The write at the end of a turn, posted to the strand: it runs after the other
  // completions the reactor delivered with this one. A client with many connections thus
  // handles every answer that came together and then writes, connection after connection, and
  // the peer, woken by the first write, finds the next ones while it works: one wake-up of the
  // peer per round rather than one per connection (a cross-CPU wake-up costs about as much as
  // handling a dozen answers). Only for two requests or more: a lone request (one in flight,
  // latency first) is written at once. Whatever socket is open when it runs gets the output.
  void flush_soon() {
    if (writing || flush_posted || machine.output().empty() || !socket.is_open()) return;
    flush_posted = true;
    asio::post(strand, [self = shared_from_this()] {
      self->flush_posted = false;
      self->flush();
      self->rearm();
    });
  }

  void on_written(std::uint64_t gen, std::error_code ec) {
    if (gen != socket_gen) return;
    writing = false;
    unwritten -= in_write;
    in_write = 0;
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        machine.connection_lost(clock::now(), normalize(ec));
      }
      after_events();
      return;
    }
    after_events();
  }

  // ---- requests ----

  // Hands a request to the machine. With `write` false the caller writes later (flush() and
  // rearm()): requests that come together leave together, in one write, instead of the first
  // alone and the rest after it.
  void do_send(std::unique_ptr<detail::send_op> op, std::uint64_t id,
               std::vector<std::uint8_t> request, steady_time deadline, steady_time now,
               bool write) {
    enqueue_send(std::move(op), id, std::move(request), deadline, now);
    if (write) {
      flush();
      rearm();
    }
  }

  void enqueue_send(std::unique_ptr<detail::send_op> op, std::uint64_t id,
                    std::vector<std::uint8_t> request, steady_time deadline, steady_time now) {
    if (!machine.ready()) {
      detail::complete(std::move(op), error::not_open, std::move(request));
      return;
    }
    if (deadline <= now) {
      detail::complete(std::move(op), error::timed_out, {});
      return;
    }
    if (unwritten >= config.send_buffer_size || !backlog.empty()) {
      if (backlog.size() >= config.max_backlog) {
        detail::complete(std::move(op), error::send_queue_full, {});
        return;
      }
      backlog.push_back({id, std::move(op), std::move(request), deadline});
      return;
    }
    submit(now, id, std::move(op), request, deadline);
  }

  // `request`: copied into the machine's output, then its buffer goes to the machine for
  // an answer (recycle()).
  void submit(steady_time now, std::uint64_t id, std::unique_ptr<detail::send_op> op,
              std::vector<std::uint8_t>& request, steady_time deadline) {
    if (auto ec = machine.send(now, id, request, deadline, op.get())) {
      detail::complete(std::move(op), ec, {});
      return;
    }
    (void)op.release();  // the machine holds it until the request's outcome (take_op())
    machine.recycle(std::move(request));
    ++unwritten;
    ++in_output;
  }

  // Moves waiting requests into the machine while there is room; fails expired ones.
  void drain_backlog(steady_time now) {
    while (!backlog.empty() && unwritten < config.send_buffer_size && machine.ready()) {
      backlog_entry e = std::move(backlog.front());
      backlog.pop_front();
      if (e.deadline <= now) {
        detail::complete(std::move(e.op), error::timed_out, {});
        continue;
      }
      submit(now, e.id, std::move(e.op), e.request, e.deadline);
    }
    // Expired entries deeper in the queue.
    for (auto it = backlog.begin(); it != backlog.end();) {
      if (it->deadline <= now) {
        detail::complete(std::move(it->op), error::timed_out, {});
        it = backlog.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Requests still waiting for room were never written: they fail with not_open and their
  // bytes go back to the caller, who may send them elsewhere.
  void fail_backlog() {
    while (!backlog.empty()) {
      auto e = std::move(backlog.front());
      backlog.pop_front();
      detail::complete(std::move(e.op), error::not_open, std::move(e.request));
    }
  }

  void do_cancel_request(std::uint64_t id) {
    if (const auto context = machine.cancel(id)) {
      detail::complete(take_op(*context), error::cancelled, {});
      return;
    }
    for (auto it = backlog.begin(); it != backlog.end(); ++it) {
      if (it->id == id) {
        auto op = std::move(it->op);
        backlog.erase(it);
        detail::complete(std::move(op), error::cancelled, {});
        return;
      }
    }
  }

  // ---- closing ----

  void do_close(std::unique_ptr<detail::close_op> op, std::error_code pending_error) {
    close_pending_error = pending_error;
    if (op) close_ops.push_back(std::move(op));
    if (dialing) abandon_dial(error::connection_closed);
    machine.close(clock::now(), pending_error);
    after_events();
    if (!socket.is_open()) complete_close_ops();
  }

  void abort_transport(std::error_code reason) {
    close_pending_error = reason;
    if (auto w = std::move(connect_after_close)) detail::complete(std::move(w->op), reason);
    if (dialing) {
      dialing = false;
      resolver.cancel();
    }
    machine.connection_lost(clock::now(), reason);
    if (machine.state() == peer_state::connecting) machine.start_reconnecting(clock::now());
    close_socket();
    after_events();
  }

  void close_socket() {
    ++socket_gen;  // stale handlers of this socket are ignored from now on
    reading = writing = false;
    unwritten -= in_write + in_output;
    in_write = in_output = 0;
    std::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    transport_closing = false;
    close_after_eof = false;
    fin_sent = false;
    linger_deadline = steady_time::max();
    complete_close_ops();
    if (connect_after_close) {
      asio::post(strand, [self = shared_from_this()] {
        if (auto w = std::move(self->connect_after_close)) {
          self->do_connect(std::move(w->op), std::move(w->address), w->deadline);
        }
      });
    }
  }

  void complete_close_ops() {
    auto ops = std::move(close_ops);
    close_ops.clear();
    for (auto& o : ops)
      detail::complete(std::move(o));
  }

  // ---- events, timer, publication ----

  // Handles everything the machine emitted, writes its output (see flush_soon()), re-arms the
  // timer and publishes the state. Called after every input to the machine.
  void after_events() {
    const steady_time now = clock::now();
    const event_scope in_event(now);
    // First what other threads observe (state, last error, counters), then the completions,
    // so that a caller woken by a completion sees the state that caused it.
    batch.clear();
    while (machine.has_events())
      batch.push_back(machine.next_event());
    for (auto& ev : batch) {
      if (auto* c = std::get_if<close_transport>(&ev)) note_close(now, *c);
      if (auto* sc = std::get_if<state_changed>(&ev)) {
        log_event(
            log_level::debug, "state changed",
            {{"from", std::string(to_string(sc->from))}, {"to", std::string(to_string(sc->to))}});
      }
    }
    const bool usable = machine.ready();
    const peer_state s = machine.state();
    bool opened = false;
    std::error_code connect_failure;
    if (connect_op && !dialing) {
      if (connect_result) {
        connect_failure = std::exchange(connect_result, {});
      } else if (usable) {
        opened = true;
        ++connects;
      } else if (s == peer_state::failed || s == peer_state::closed) {
        connect_failure = machine.close_reason() ? machine.close_reason()
                                                 : std::error_code(error::connection_closed);
      }
    }
    state.store(s, std::memory_order_release);
    ready.store(usable, std::memory_order_release);
    publish();
    if (config.on_state_change) {
      for (const auto& ev : batch) {
        if (const auto* sc = std::get_if<state_changed>(&ev)) {
          const bool ended = sc->to == peer_state::failed || sc->to == peer_state::closed;
          config.on_state_change(sc->from, sc->to,
                                 ended ? machine.close_reason() : std::error_code{});
        }
      }
    }
    collecting_sends = true;
    for (auto& ev : batch) {
      std::visit([&](auto& e) { handle(now, e); }, ev);
      // A long turn (a window of answers read at once) writes its first requests while it
      // handles the rest, so that the peer works on them meanwhile.
      if (deferred.size() >= early_write && !writing) {
        submit_deferred(now);
        flush();
      }
    }
    collecting_sends = false;
    batch.clear();
    // A failing send completes at once and its caller may send again: that one is posted.
    submit_deferred(now);
    if (opened) {
      log_event(log_level::info, "connection open", {{"peer", machine.peer().origin_host}});
      {
        std::lock_guard lock(stats_mutex);
        peer_caps = machine.peer();
      }
      complete_connect({});
    } else if (connect_failure) {
      complete_connect(connect_failure);
    }
    if (!is_active(s)) {
      fail_backlog();
    } else {
      drain_backlog(now);
    }
    if (transport_closing || in_output < 2) {
      flush();  // the last output (the socket closes after it), or a lone request: at once
    } else {
      flush_soon();
    }
    if (transport_closing && !writing && machine.output().empty()) {
      if (close_after_eof) {
        half_close();
      } else {
        close_socket();
      }
    }
    rearm();
    publish();
    trim();
  }

  void note_close(steady_time now, const close_transport& e) {
    if (e.reason) last_error = e.reason;
    log_event(e.reason ? log_level::warn : log_level::info, "closing transport",
              {{"reason", e.reason ? e.reason.message() : std::string("clean")}});
    if (!socket.is_open()) return;
    transport_closing = true;
    // The DPA to the peer's DPR: the peer closes once it has it (RFC 6733 5.4), and the
    // socket is closed after that (half_close()). Other closes end the socket at once.
    close_after_eof = e.reason == error::disconnected_by_peer;
    // The last output (a DPA, the answers owed) gets a short while to leave; a peer that
    // does not read, or does not close, does not hold the close for a whole write_timeout.
    linger_deadline = now + std::min(config.write_timeout, config.peer.dpa_timeout);
  }

  // A request's operation, back from the machine with its outcome (its send() context).
  static std::unique_ptr<detail::send_op> take_op(void* context) {
    return std::unique_ptr<detail::send_op>(static_cast<detail::send_op*>(context));
  }

  void submit_deferred(steady_time now) {
    if (deferred.empty()) return;
    std::swap(deferred, deferred_spare);
    for (auto& d : deferred_spare)
      do_send(std::move(d.op), d.id, std::move(d.request), d.deadline, now, false);
    deferred_spare.clear();
  }

  // At the end of a turn, with nothing pending: what was kept for the next requests goes, so
  // an idle connection holds little. Not earlier: the completions of a batch of answers send
  // the next batch, which reuses it.
  void trim() {
    if (machine.pending_requests() != 0) return;
    machine.trim();
    if (batch.capacity() > 16) batch.shrink_to_fit();
  }

  void handle(steady_time, state_changed&) {}
  void handle(steady_time, close_transport&) {}
  void handle(steady_time, answer_received& e) {
    detail::complete(take_op(e.context), {}, std::move(e.message));
  }
  void handle(steady_time, request_failed& e) { detail::complete(take_op(e.context), e.error, {}); }
  void handle(steady_time, peer_request& e) {
    std::error_code ec;
    const message_view req = message_view::parse(e.message, ec);
    std::vector<std::uint8_t> answer;
    try {
      answer = config.request_handler(req);
    } catch (const std::exception& x) {
      log_event(log_level::error, "request handler threw", {{"error", x.what()}});
    }
    if (answer.empty()) return;
    if (auto bad = machine.send_answer(answer)) {
      log_event(log_level::warn, "request handler answer rejected", {{"error", bad.message()}});
    }
  }
  void handle(steady_time, unmatched_answer& e) {
    // A late or duplicate answer is routine; one that claims a pending request's Hop-by-Hop
    // id with another Command-Code or End-to-End id is a confused peer.
    log_event(
        e.conflicting ? log_level::warn : log_level::debug,
        e.conflicting ? "answer conflicts with its pending request, ignored" : "unmatched answer",
        {{"hop_by_hop", std::to_string(e.hop_by_hop)},
         {"command_code", std::to_string(e.command_code)}});
  }
  void rearm() {
    steady_time next = machine.next_deadline().value_or(steady_time::max());
    next = std::min(next, dial_deadline);
    if (connect_op) next = std::min(next, connect_deadline);
    if (writing) next = std::min(next, write_started + config.write_timeout);
    next = std::min(next, linger_deadline);
    for (const auto& e : backlog)
      next = std::min(next, e.deadline);
    if (next == steady_time::max() || next >= timer_at) return;
    timer_at = next;
    timer.expires_at(next);
    timer.async_wait(on_strand([self = shared_from_this(), seq = ++timer_seq](
                                   const std::error_code& ec) { self->on_timer(seq, ec); }));
  }

  void on_timer(std::uint64_t seq, std::error_code ec) {
    if (seq != timer_seq || ec == asio::error::operation_aborted) return;
    timer_at = steady_time::max();
    const steady_time now = clock::now();
    if (dialing && now >= dial_deadline) {
      dial_timed_out = true;
      resolver.cancel();
      std::error_code ignored;
      socket.close(ignored);  // the pending connect completes with operation_aborted
      dial_deadline = steady_time::max();
      dial_failed(error::connection_timeout);
      return;
    }
    if (connect_op && !dialing && now >= connect_deadline) {
      log_event(log_level::warn, "handshake not done by the deadline", {});
      connect_result = error::timed_out;
      abort_transport(error::timed_out);
      return;
    }
    if (writing && now >= write_started + config.write_timeout) {
      log_event(log_level::warn, "write made no progress", {});
      last_error = std::make_error_code(std::errc::timed_out);
      machine.connection_lost(now, last_error);
      close_socket();
      after_events();
      return;
    }
    if (transport_closing && now >= linger_deadline) {
      close_socket();
      after_events();
      return;
    }
    machine.advance(now);
    after_events();
  }

  void publish() {
    const peer_counters& c = machine.counters();
    std::lock_guard lock(stats_mutex);
    connection_stats& p = published;
    p.state = machine.state();
    p.messages_sent = c.messages_sent;
    p.messages_received = c.messages_received;
    p.bytes_sent = c.bytes_sent;
    p.bytes_received = c.bytes_received;
    p.requests_sent = c.requests_sent;
    p.answers_received = c.answers_received;
    p.requests_timed_out = c.requests_timed_out;
    p.requests_cancelled = c.requests_cancelled;
    p.unmatched_answers = c.unmatched_answers;
    p.dwr_sent = c.dwr_sent;
    p.dwr_received = c.dwr_received;
    p.reconnects = connects > 0 ? connects - 1 : 0;
    p.pending = machine.pending_requests();
    p.backlog = backlog.size();
    p.last_error = last_error;
    p.handshake = machine.handshake_error();
    p.peer_disconnect_cause = machine.peer_disconnect_cause();
  }
};

// ---------------------------------------------------------------------------------------------

std::shared_ptr<connection> connection::create(executor_type executor, connection_config config,
                                               std::shared_ptr<logger> log) {
  std::string field;
  if (auto ec = config.validate(&field)) {
    throw std::system_error(ec, "connection_config." + field);
  }
  return std::shared_ptr<connection>(
      new connection(std::move(executor), std::move(config), log ? std::move(log) : null_logger()));
}

connection::connection(executor_type executor, connection_config config,
                       std::shared_ptr<logger> log)
    : executor_(executor),
      impl_(std::make_shared<impl>(executor, std::move(config), std::move(log))) {}

connection::~connection() {
  // Posting can only fail on allocation; a destructor must not throw, and the I/O thread then
  // ends the connection when the io_context stops.
  try {
    asio::post(impl_->strand, [self = impl_] {
      if (self->socket.is_open() || self->dialing || self->machine.pending_requests() != 0 ||
          !self->backlog.empty()) {
        self->abort_transport(error::connection_closed);
      }
      if (auto w = std::move(self->connect_after_close)) {
        detail::complete(std::move(w->op), error::connection_closed);
      }
      self->complete_connect(error::connection_closed);
      self->timer.cancel();
      self->timer_at = steady_time::max();
    });
  } catch (...) {
  }
}

void connection::start_connect(std::unique_ptr<detail::connect_op> op, std::string address,
                               steady_time deadline) {
  asio::post(impl_->strand,
             [self = impl_, op = std::move(op), a = std::move(address), deadline]() mutable {
               self->do_connect(std::move(op), std::move(a), deadline);
             });
}

void connection::start_send(std::unique_ptr<detail::send_op> op, std::uint64_t id,
                            std::vector<std::uint8_t> request, steady_time deadline) {
  // On the strand, inside a completion of this connection: collected, sent after the
  // completions (running_in_this_thread() first: only the strand writes collecting_sends).
  if (impl_->strand.running_in_this_thread() && impl_->collecting_sends) {
    impl_->deferred.push_back({std::move(op), id, std::move(request), deadline});
    return;
  }
  // Posted: the last of the sends queued on the strand writes them all.
  impl_->posted_sends.fetch_add(1, std::memory_order_relaxed);
  try {
    asio::post(impl_->strand,
               [self = impl_, op = std::move(op), id, r = std::move(request), deadline]() mutable {
                 const bool last = self->posted_sends.fetch_sub(1, std::memory_order_relaxed) == 1;
                 self->do_send(std::move(op), id, std::move(r), deadline, clock::now(), last);
               });
  } catch (...) {
    // A send already run may have left the write to this one: it is written at the
    // connection's next event (its watchdog timer at the latest).
    impl_->posted_sends.fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
}

void connection::start_close(std::unique_ptr<detail::close_op> op, std::error_code pending_error) {
  asio::post(impl_->strand, [self = impl_, op = std::move(op), pending_error]() mutable {
    self->do_close(std::move(op), pending_error);
  });
}

void connection::cancel_connect(const std::weak_ptr<impl>& w) {
  if (auto self = w.lock()) asio::post(self->strand, [self] { self->do_cancel_connect(); });
}

void connection::cancel_request(const std::weak_ptr<impl>& w, std::uint64_t id) {
  if (auto self = w.lock()) asio::post(self->strand, [self, id] { self->do_cancel_request(id); });
}

void connection::abort(std::error_code reason) {
  asio::post(impl_->strand, [self = impl_, reason] { self->abort_transport(reason); });
}

peer_state connection::state() const noexcept {
  return impl_->state.load(std::memory_order_acquire);
}

bool connection::ready() const noexcept {
  return impl_->ready.load(std::memory_order_acquire);
}

capabilities connection::peer() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->peer_caps;
}

connection_stats connection::stats() const {
  connection_stats s;
  {
    std::lock_guard lock(impl_->stats_mutex);
    s = impl_->published;
  }
  s.socket_reads = impl_->socket_reads.load(std::memory_order_relaxed);
  s.socket_writes = impl_->socket_writes.load(std::memory_order_relaxed);
  return s;
}

std::error_code connection::connect(const std::string& address, steady_time deadline,
                                    std::stop_token stop) {
  std::promise<std::error_code> p;
  auto f = p.get_future();
  async_connect(address, deadline, [&p](std::error_code ec) { p.set_value(ec); });
  // The connection's own timer ends the attempt at the deadline; `stop` ends it sooner.
  const std::weak_ptr<impl> w = impl_;
  std::stop_callback on_stop(stop, [w] { cancel_connect(w); });
  return f.get();
}

std::vector<std::uint8_t> connection::send(std::span<const std::uint8_t> request,
                                           steady_time deadline, std::error_code& ec,
                                           std::stop_token stop) {
  using result = std::pair<std::error_code, std::vector<std::uint8_t>>;
  std::promise<result> p;
  auto f = p.get_future();
  // The signal outlives this call: a cancellation posted by `stop` may run after it returns.
  auto signal = std::make_shared<asio::cancellation_signal>();
  async_send(std::vector<std::uint8_t>(request.begin(), request.end()), deadline,
             asio::bind_cancellation_slot(signal->slot(),
                                          [&p](std::error_code e, std::vector<std::uint8_t> a) {
                                            p.set_value({e, std::move(a)});
                                          }));
  // The deadline is enforced by the connection's own timer; cancellation comes from `stop`.
  // The signal is emitted on the strand, where the operation also clears its slot.
  std::stop_callback on_stop(stop, [this, signal] {
    asio::post(impl_->strand, [signal] { signal->emit(asio::cancellation_type::terminal); });
  });
  auto [e, answer] = f.get();
  ec = e;
  return std::move(answer);
}

void connection::close(std::error_code pending_error) {
  std::promise<void> p;
  auto f = p.get_future();
  async_close([&p] { p.set_value(); }, pending_error);
  f.wait();
}

}  // namespace diampool
