#include "diampool/embedded_peer.hpp"

#include "diampool/address.hpp"

#include <algorithm>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/frame_decoder.hpp"

namespace diampool {

namespace {

using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

// Every counter of embedded_peer_stats except connections_open (derived).
// clang-format off
#define DIAMPOOL_PEER_COUNTERS(X)                                                         \
  X(connections_accepted) X(connections_closed) X(messages_received)                      \
  X(cers) X(ceas_sent) X(dwrs) X(dwas_sent) X(dwrs_sent) X(dwas_received)                 \
  X(dprs) X(dpas_sent) X(dprs_sent) X(dpas_received)                                      \
  X(requests) X(answers_sent) X(answers_dropped) X(answers_duplicated)                    \
  X(requests_sent) X(answers_received) X(raw_writes)                                      \
  X(unexpected_before_cea) X(closed_after_messages)                                       \
  X(bytes_received) X(bytes_sent) X(malformed)
// clang-format on

// One set per I/O thread, written only by that thread (so a plain load + store, no locked
// instruction), read by stats() from any thread.
struct alignas(64) counters {
#define DIAMPOOL_X(name) std::atomic<std::uint64_t> name{0};
  DIAMPOOL_PEER_COUNTERS(DIAMPOOL_X)
#undef DIAMPOOL_X
};

inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Output beyond this (queued plus in flight) pauses reading until the client reads.
constexpr std::size_t max_pending_output = std::size_t{4} * 1024 * 1024;
constexpr std::size_t read_buffer_size = std::size_t{64} * 1024;
constexpr auto dpa_linger = std::chrono::seconds(1);

bool is_protocol_error(std::uint32_t result_code) noexcept {
  return result_code >= 3000 && result_code < 4000;
}

ip_address to_ip_address(const asio::ip::address& a) {
  if (a.is_v6()) {
    const auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
      return ip_address::v4(asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_bytes());
    }
    return ip_address::v6(v6.to_bytes());
  }
  return ip_address::v4(a.to_v4().to_bytes());
}

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address();
  const std::string port_text = std::to_string(ep.port());
  if (a.is_v6()) return "[" + a.to_string() + "]:" + port_text;
  return a.to_string() + ":" + port_text;
}

[[noreturn]] void throw_bad_listen(const std::string& listen, const char* why) {
  throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                          "embedded_peer: listen address \"" + listen + "\": " + why);
}

// "host:port" or "[v6]:port"; port 0 picks an ephemeral port.
std::pair<std::string, std::uint16_t> split_listen(const std::string& listen) {
  std::string host;
  std::string port;
  if (split_address(listen, host, port, /*allow_port_zero=*/true)) {
    throw_bad_listen(listen, "expected host:port or [IPv6]:port with a port in 0..65535");
  }
  return {host, static_cast<std::uint16_t>(std::stoul(port))};
}

}  // namespace

class embedded_peer::impl {
 public:
  class connection;

  struct worker {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    counters stats;
    std::thread thread;
  };

  explicit impl(embedded_peer_options options);
  ~impl();

  // -- used by connections (on their I/O thread)

  const embedded_peer_options& options() const noexcept { return options_; }
  std::uint64_t faults_version() const noexcept {
    return faults_version_.load(std::memory_order_acquire);
  }
  void copy_faults(embedded_peer_faults& out, std::uint64_t& version) const {
    std::lock_guard lk(faults_mutex_);
    out = faults_;
    version = faults_version_.load(std::memory_order_relaxed);
  }
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  std::uint32_t origin_state_id() const noexcept { return origin_state_id_; }
  void unregister(std::uint64_t id);
  void notify();

  // -- public API

  std::string address() const;
  std::uint16_t port() const noexcept { return endpoint_.port(); }
  embedded_peer_stats stats() const;
  void set_faults(const embedded_peer_faults& f);
  embedded_peer_faults faults() const {
    std::lock_guard lk(faults_mutex_);
    return faults_;
  }
  bool wait_for(const std::function<bool(const embedded_peer_stats&)>& pred,
                std::chrono::milliseconds timeout) const;
  template <typename F>
  void for_each_connection(F f);
  void stop_listening();

 private:
  void accept_next();

  const embedded_peer_options options_;
  const std::uint32_t origin_state_id_;

  mutable std::mutex faults_mutex_;
  embedded_peer_faults faults_;
  std::atomic<std::uint64_t> faults_version_{1};

  mutable std::mutex wait_mutex_;
  mutable std::condition_variable wait_cv_;
  mutable std::atomic<unsigned> waiters_{0};

  std::mutex registry_mutex_;
  // Owns the connections: one paused (not reading, nothing to write, no timer) has no
  // pending handler to keep it alive. close() removes it.
  std::unordered_map<std::uint64_t, std::shared_ptr<connection>> registry_;
  std::atomic<bool> stopping_{false};

  // Declared last: destroyed first, while everything connections use is still alive.
  std::vector<std::unique_ptr<worker>> workers_;
  tcp::acceptor acceptor_;  // on workers_[0]
  asio::steady_timer accept_retry_;
  tcp::endpoint endpoint_;
  std::size_t next_worker_ = 0;
  std::uint64_t next_id_ = 1;
};

// One accepted TCP connection. Everything in it runs on its worker's (single) thread.
class embedded_peer::impl::connection : public std::enable_shared_from_this<connection> {
 public:
  connection(impl& peer, worker& w, std::uint64_t id)
      : peer_(peer),
        stats_(w.stats),
        id_(id),
        socket_(w.io),
        delay_timer_(w.io),
        linger_timer_(w.io),
        trickle_timer_(w.io),
        read_buf_(read_buffer_size),
        decoder_(peer.options().max_message_size) {
    std::random_device rd;
    next_hop_by_hop_ = rd();
    next_end_to_end_ = static_cast<std::uint32_t>(
        (static_cast<std::uint32_t>(std::time(nullptr)) << 20) | (rd() & 0xFFFFF));
  }

  tcp::socket& socket() noexcept { return socket_; }
  std::uint64_t id() const noexcept { return id_; }
  asio::any_io_executor executor() { return socket_.get_executor(); }

  void start() {
    std::error_code ec;
    if (peer_.options().on_event) {
      const auto remote = socket_.remote_endpoint(ec);
      if (!ec) remote_address_ = endpoint_text(remote);
      emit(embedded_peer_event_kind::accepted, [](embedded_peer_event&) {});
    }
    if (peer_.stopping()) {
      close("peer stopping");
      return;
    }
    socket_.set_option(tcp::no_delay(true), ec);
    const auto local = socket_.local_endpoint(ec);
    if (!ec) local_address_ = to_ip_address(local.address());
    refresh_faults();
    start_read();
  }

  // -- actions (posted from embedded_peer's public members)

  void faults_changed() {
    if (closed_) return;
    refresh_faults();
    start_read();
  }

  void send_dwr() {
    if (!usable()) return;
    const std::size_t start = out_.size();
    message_builder b(out_, request_header(command::device_watchdog, 0, 0));
    b.add_string(avp_code::origin_host, peer_.options().origin_host)
        .add_string(avp_code::origin_realm, peer_.options().origin_realm)
        .add_unsigned32(avp_code::origin_state_id, peer_.origin_state_id());
    finish(b, out_, start);
    bump(stats_.dwrs_sent);
    flush();
    peer_.notify();
  }

  void send_dpr(std::int32_t cause) {
    if (!usable()) return;
    const std::size_t start = out_.size();
    message_builder b(out_, request_header(command::disconnect_peer, 0, 0));
    b.add_string(avp_code::origin_host, peer_.options().origin_host)
        .add_string(avp_code::origin_realm, peer_.options().origin_realm)
        .add_integer32(avp_code::disconnect_cause, cause);
    finish(b, out_, start);
    dpr_sent_ = true;
    bump(stats_.dprs_sent);
    flush();
    peer_.notify();
  }

  void send_request(std::uint32_t command_code, std::uint32_t application_id) {
    if (!usable()) return;
    const std::string session_id = peer_.options().origin_host + ";" +
                                   std::to_string(peer_.origin_state_id()) + ";" +
                                   std::to_string(id_) + ";" + std::to_string(++sessions_);
    const std::size_t start = out_.size();
    message_builder b(out_, request_header(command_code, application_id, cmd_flags::proxiable));
    b.add_string(avp_code::session_id, session_id)
        .add_string(avp_code::origin_host, peer_.options().origin_host)
        .add_string(avp_code::origin_realm, peer_.options().origin_realm)
        .add_string(avp_code::destination_realm,
                    client_realm_.empty() ? peer_.options().origin_realm : client_realm_);
    finish(b, out_, start);
    bump(stats_.requests_sent);
    flush();
    peer_.notify();
  }

  void write_raw(const std::vector<std::uint8_t>& bytes) {
    if (!usable()) return;
    out_.insert(out_.end(), bytes.begin(), bytes.end());
    bump(stats_.raw_writes);
    flush();
    peer_.notify();
  }

  /// Abrupt close: unwritten output and delayed answers are discarded.
  void close(std::string_view reason) {
    if (closed_) return;
    closed_ = true;
    const auto keep_alive = shared_from_this();  // the registry may hold the last reference
    emit(embedded_peer_event_kind::closed,
         [reason](embedded_peer_event& e) { e.reason = std::string(reason); });
    std::error_code ignored;
    socket_.close(ignored);
    delay_timer_.cancel();
    linger_timer_.cancel();
    trickle_timer_.cancel();
    delayed_.clear();
    spare_.clear();
    bump(stats_.connections_closed);
    peer_.unregister(id_);
    peer_.notify();
  }

 private:
  struct delayed_answer {
    steady::time_point due;
    std::vector<std::uint8_t> bytes;
    std::uint32_t copies = 1;
  };

  bool usable() const noexcept { return open_ && !closed_ && !draining_; }

  // Reports a connection event to options().on_event, if set; `fill` adds what is specific.
  template <typename F>
  void emit(embedded_peer_event_kind kind, F&& fill) {
    const auto& observer = peer_.options().on_event;
    if (!observer) return;
    try {
      embedded_peer_event e;
      e.kind = kind;
      e.connection = id_;
      e.remote_address = remote_address_;
      e.origin_host = client_host_;
      fill(e);
      observer(e);
    } catch (...) {
      // The observer's problem, not the connection's.
    }
  }

  message_header request_header(std::uint32_t command_code, std::uint32_t application_id,
                                std::uint8_t extra_flags) noexcept {
    message_header h;
    h.flags = static_cast<std::uint8_t>(cmd_flags::request | extra_flags);
    h.command_code = command_code;
    h.application_id = application_id;
    h.hop_by_hop = next_hop_by_hop_++;
    h.end_to_end = next_end_to_end_++;
    return h;
  }

  static message_header answer_header(const message_header& request,
                                      std::uint32_t result_code) noexcept {
    message_header h = request;
    h.length = 0;
    h.flags = static_cast<std::uint8_t>(request.flags & cmd_flags::proxiable);
    if (is_protocol_error(result_code)) h.flags |= cmd_flags::error;
    return h;
  }

  // The builder's errors are sticky; a failed message is cut off the output again.
  static bool finish(message_builder& b, std::vector<std::uint8_t>& out, std::size_t start) {
    std::error_code ec;
    b.finish(ec);
    if (ec) out.resize(start);
    return !ec;
  }

  void refresh_faults() {
    if (peer_.faults_version() != faults_version_) peer_.copy_faults(faults_, faults_version_);
  }

  void start_read() {
    if (closed_ || reading_ || draining_ || faults_.stop_reading ||
        out_.size() + writing_.size() > max_pending_output) {
      return;
    }
    reading_ = true;
    socket_.async_read_some(
        asio::buffer(read_buf_),
        [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(std::error_code ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
      close(ec == asio::error::eof ? std::string("closed by the client")
                                   : "read failed: " + ec.message());
      return;
    }
    bump(stats_.bytes_received, n);
    refresh_faults();
    std::span<const std::uint8_t> rest(read_buf_.data(), n);
    while (!rest.empty() && !closed_ && !draining_) {
      const auto r = decoder_.put(rest, ec);
      if (r.status == decode_status::error) {
        bump(stats_.malformed);
        close("malformed frame: " + ec.message());
        return;
      }
      rest = rest.subspan(r.consumed);
      if (r.status == decode_status::need_more) break;
      handle(decoder_.message());
    }
    if (closed_) return;
    flush();
    start_read();
    peer_.notify();
  }

  void handle(const message_view& msg) {
    ++messages_;
    bump(stats_.messages_received);
    if (const auto& observer = peer_.options().on_message) {
      try {
        observer(msg);
      } catch (...) {
        // The observer's problem, not the connection's.
      }
    }
    if (faults_.close_after_messages != 0 && messages_ >= faults_.close_after_messages) {
      bump(stats_.closed_after_messages);
      drain_and_close("close_after_messages fault");
      return;
    }
    const message_header& h = msg.header();
    if (!h.is_request()) {
      handle_answer(h);
      return;
    }
    if (h.command_code == command::capabilities_exchange) {
      handle_cer(msg);
      return;
    }
    if (!open_) {
      bump(stats_.unexpected_before_cea);
      close("request before the capabilities exchange");
      return;
    }
    switch (h.command_code) {
      case command::device_watchdog:
        bump(stats_.dwrs);
        if (faults_.answer_dwr) {
          base_answer(h, result_code::success);
          bump(stats_.dwas_sent);
        }
        break;
      case command::disconnect_peer:
        bump(stats_.dprs);
        base_answer(h, result_code::success);
        bump(stats_.dpas_sent);
        emit(embedded_peer_event_kind::disconnect_request, [&msg](embedded_peer_event& e) {
          std::error_code ignored;
          if (auto cause = msg.find(avp_code::disconnect_cause)) {
            const std::int32_t v = cause->as_integer32(ignored);
            if (!ignored) e.disconnect_cause = v;
          }
        });
        start_linger();
        break;
      default:
        handle_request(msg);
        break;
    }
  }

  void handle_answer(const message_header& h) {
    switch (h.command_code) {
      case command::device_watchdog:
        bump(stats_.dwas_received);
        break;
      case command::disconnect_peer:
        bump(stats_.dpas_received);
        if (dpr_sent_) drain_and_close("DPA received");
        break;
      default:
        bump(stats_.answers_received);
        break;
    }
  }

  void handle_cer(const message_view& msg) {
    bump(stats_.cers);
    if (auto host = msg.find(avp_code::origin_host)) client_host_ = host->as_string();
    if (!faults_.answer_cer) {
      emit(embedded_peer_event_kind::capabilities_exchange, [](embedded_peer_event&) {});
      return;
    }
    if (auto realm = msg.find(avp_code::origin_realm)) client_realm_ = realm->as_string();
    const std::uint32_t rc = faults_.cea_result_code;
    const auto& o = peer_.options();
    const std::size_t start = out_.size();
    message_builder b(out_, answer_header(msg.header(), rc));
    b.add_unsigned32(avp_code::result_code, rc)
        .add_string(avp_code::origin_host, o.origin_host)
        .add_string(avp_code::origin_realm, o.origin_realm)
        .add_address(avp_code::host_ip_address, local_address_)
        .add_unsigned32(avp_code::vendor_id, o.vendor_id)
        .add_string(avp_code::product_name, o.product_name, 0)
        .add_unsigned32(avp_code::origin_state_id, peer_.origin_state_id());
    if (rc != result_code::success) {
      b.add_string(avp_code::error_message, "capabilities exchange refused (embedded peer fault)",
                   0);
    }
    for (std::uint32_t id : o.auth_application_ids)
      b.add_unsigned32(avp_code::auth_application_id, id);
    for (std::uint32_t id : o.acct_application_ids)
      b.add_unsigned32(avp_code::acct_application_id, id);
    if (o.auth_application_ids.empty() && o.acct_application_ids.empty()) {
      b.add_unsigned32(avp_code::auth_application_id, application::relay);
    }
    const bool sent = finish(b, out_, start);
    emit(embedded_peer_event_kind::capabilities_exchange,
         [rc, sent](embedded_peer_event& e) { e.result_code = sent ? rc : 0; });
    if (!sent) return;
    bump(stats_.ceas_sent);
    if (rc == result_code::success) {
      open_ = true;
    } else {
      drain_and_close("CEA Result-Code " + std::to_string(rc) + " sent");
    }
  }

  // DWA, DPA: Result-Code, Origin-Host, Origin-Realm.
  void base_answer(const message_header& request, std::uint32_t rc) {
    const std::size_t start = out_.size();
    message_builder b(out_, answer_header(request, rc));
    b.add_unsigned32(avp_code::result_code, rc)
        .add_string(avp_code::origin_host, peer_.options().origin_host)
        .add_string(avp_code::origin_realm, peer_.options().origin_realm);
    finish(b, out_, start);
  }

  void handle_request(const message_view& msg) {
    bump(stats_.requests);
    ++app_requests_;
    if (faults_.drop_every_nth_answer != 0 && app_requests_ % faults_.drop_every_nth_answer == 0) {
      bump(stats_.answers_dropped);
      return;
    }
    const std::uint32_t copies = faults_.duplicate_every_nth_answer != 0 &&
                                         app_requests_ % faults_.duplicate_every_nth_answer == 0
                                     ? 2
                                     : 1;
    if (faults_.answer_delay.count() > 0) {
      delay_answer(msg, copies);
      return;
    }
    const std::size_t start = out_.size();
    if (!build_answer(msg, out_)) return;
    if (copies == 2) duplicate_tail(out_, start);
    count_answers(copies);
  }

  void count_answers(std::uint32_t copies) {
    bump(stats_.answers_sent, copies);
    if (copies > 1) bump(stats_.answers_duplicated, copies - 1);
  }

  static void duplicate_tail(std::vector<std::uint8_t>& out, std::size_t start) {
    const std::size_t len = out.size() - start;
    out.resize(out.size() + len);
    std::memcpy(out.data() + start + len, out.data() + start, len);
  }

  // Session-Id (when present), Result-Code, Origin-Host, Origin-Realm, echoed AVPs.
  bool build_answer(const message_view& msg, std::vector<std::uint8_t>& out) {
    const std::uint32_t rc = faults_.result_code;
    const std::size_t start = out.size();
    message_builder b(out, answer_header(msg.header(), rc));
    if (auto sid = msg.find(avp_code::session_id)) b.add_avp(*sid);
    b.add_unsigned32(avp_code::result_code, rc)
        .add_string(avp_code::origin_host, peer_.options().origin_host)
        .add_string(avp_code::origin_realm, peer_.options().origin_realm);
    if (!faults_.echo_avps.empty()) {
      const auto& echo = faults_.echo_avps;
      for (const avp& a : msg.avps()) {
        if (a.code() == avp_code::session_id && a.vendor_id() == 0) continue;  // already first
        if (std::find(echo.begin(), echo.end(), a.code()) != echo.end()) b.add_avp(a);
      }
    }
    return finish(b, out, start);
  }

  void delay_answer(const message_view& msg, std::uint32_t copies) {
    delayed_answer d;
    if (!spare_.empty()) {
      d.bytes = std::move(spare_.back());
      spare_.pop_back();
    }
    if (!build_answer(msg, d.bytes)) {
      spare_.push_back(std::move(d.bytes));
      return;
    }
    d.copies = copies;
    d.due = steady::now() + faults_.answer_delay;
    // Usually due times only grow; a shortened delay inserts earlier in the queue.
    auto pos = delayed_.end();
    while (pos != delayed_.begin() && std::prev(pos)->due > d.due) {
      --pos;
    }
    const bool new_front = pos == delayed_.begin();
    delayed_.insert(pos, std::move(d));
    if (new_front) arm_delay_timer();
  }

  void arm_delay_timer() {
    const std::uint64_t generation = ++delay_generation_;
    delay_timer_.expires_at(delayed_.front().due);
    delay_timer_.async_wait([self = shared_from_this(), generation](std::error_code) {
      if (self->closed_ || generation != self->delay_generation_) return;
      self->on_delay_timer();
    });
  }

  void on_delay_timer() {
    const auto now = steady::now();
    while (!delayed_.empty() && delayed_.front().due <= now) {
      delayed_answer& d = delayed_.front();
      for (std::uint32_t i = 0; i < d.copies; ++i) {
        out_.insert(out_.end(), d.bytes.begin(), d.bytes.end());
      }
      count_answers(d.copies);
      d.bytes.clear();
      if (spare_.size() < 1024) spare_.push_back(std::move(d.bytes));
      delayed_.pop_front();
    }
    if (!delayed_.empty()) arm_delay_timer();
    flush();
    peer_.notify();
  }

  void start_linger() {
    linger_timer_.expires_after(dpa_linger);
    linger_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->close("the client did not close within 1 s of the DPA");
    });
  }

  // Stop handling input, write what is queued, then close.
  void drain_and_close(std::string reason) {
    draining_ = true;
    drain_reason_ = std::move(reason);
    delay_timer_.cancel();
    delayed_.clear();
    if (!write_in_flight_ && out_.empty()) close(drain_reason_);
  }

  void flush() {
    if (write_in_flight_ || out_.empty() || closed_) return;
    std::swap(out_, writing_);
    written_ = 0;
    write_in_flight_ = true;
    write_next();
  }

  // Writes the rest of writing_, or its next byte when trickling.
  void write_next() {
    const std::size_t len = faults_.trickle_interval.count() > 0 ? 1 : writing_.size() - written_;
    asio::async_write(
        socket_, asio::buffer(writing_.data() + written_, len),
        [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_write(ec, n); });
  }

  void on_write(std::error_code ec, std::size_t n) {
    if (closed_) {
      write_in_flight_ = false;
      return;
    }
    if (ec) {
      write_in_flight_ = false;
      close("write failed: " + ec.message());
      return;
    }
    bump(stats_.bytes_sent, n);
    written_ += n;
    if (written_ < writing_.size()) {  // trickling: the next byte after the interval
      trickle_timer_.expires_after(faults_.trickle_interval);
      trickle_timer_.async_wait([self = shared_from_this()](std::error_code) {
        if (!self->closed_) self->write_next();
      });
      return;
    }
    write_in_flight_ = false;
    writing_.clear();
    if (!out_.empty()) {
      flush();
    } else if (draining_) {
      close(drain_reason_);
      return;
    }
    start_read();  // may have been paused by backpressure
    peer_.notify();
  }

  impl& peer_;
  counters& stats_;
  const std::uint64_t id_;
  tcp::socket socket_;
  asio::steady_timer delay_timer_;
  asio::steady_timer linger_timer_;
  asio::steady_timer trickle_timer_;  // between the bytes of a trickled write
  std::vector<std::uint8_t> read_buf_;
  frame_decoder decoder_;
  std::vector<std::uint8_t> out_;      // answers accumulating
  std::vector<std::uint8_t> writing_;  // the write in flight
  std::size_t written_ = 0;            // bytes of writing_ already written
  std::deque<delayed_answer> delayed_;
  std::vector<std::vector<std::uint8_t>> spare_;  // recycled delayed-answer buffers
  embedded_peer_faults faults_;
  std::uint64_t faults_version_ = 0;
  ip_address local_address_;
  std::string remote_address_;  // for on_event
  std::string client_host_;     // Origin-Host of the CER, for on_event
  std::string drain_reason_;    // why drain_and_close() was called
  std::string client_realm_;
  std::uint64_t messages_ = 0;
  std::uint64_t app_requests_ = 0;
  std::uint64_t sessions_ = 0;
  std::uint64_t delay_generation_ = 0;
  std::uint32_t next_hop_by_hop_ = 0;
  std::uint32_t next_end_to_end_ = 0;
  bool open_ = false;      // CEA 2001 sent
  bool closed_ = false;    // socket closed; nothing more happens
  bool draining_ = false;  // closing once the output is written
  bool reading_ = false;
  bool write_in_flight_ = false;
  bool dpr_sent_ = false;
};

// ---------------------------------------------------------------------------------------------

embedded_peer::impl::impl(embedded_peer_options options)
    : options_(std::move(options)),
      origin_state_id_(
          static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count())),
      faults_(options_.faults),
      workers_([&] {
        std::vector<std::unique_ptr<worker>> w;
        for (unsigned i = 0; i < std::max(1U, options_.threads); ++i) {
          w.push_back(std::make_unique<worker>());
        }
        return w;
      }()),
      acceptor_(workers_[0]->io),
      accept_retry_(workers_[0]->io) {
  const auto [host, port_number] = split_listen(options_.listen);
  std::error_code ec;
  tcp::endpoint ep;
  const auto literal = asio::ip::make_address(host, ec);
  if (!ec) {
    ep = tcp::endpoint(literal, port_number);
  } else {
    tcp::resolver resolver(workers_[0]->io);
    const auto results =
        resolver.resolve(host, std::to_string(port_number), tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      throw std::system_error(ec ? ec : std::make_error_code(std::errc::invalid_argument),
                              "embedded_peer: cannot resolve \"" + host + "\"");
    }
    ep = results.begin()->endpoint();
  }
  try {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    endpoint_ = acceptor_.local_endpoint();
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "embedded_peer: cannot listen on " + options_.listen);
  }
  accept_next();
  for (auto& w : workers_) {
    w->thread = std::thread([&io = w->io] {
      for (;;) {
        try {
          io.run();
          return;
        } catch (...) {
          // Handlers do not throw but for allocation failures; keep serving.
        }
      }
    });
  }
}

embedded_peer::impl::~impl() {
  stopping_.store(true, std::memory_order_release);
  asio::post(workers_[0]->io, [this] {
    std::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
  });
  for_each_connection([](impl::connection& c) { c.close("peer stopping"); });
  for (auto& w : workers_) {
    w->guard.reset();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  // Every connection closed itself above; drop any leftover before the sockets' contexts go.
  std::lock_guard lk(registry_mutex_);
  registry_.clear();
}

void embedded_peer::impl::accept_next() {
  worker& w = *workers_[next_worker_++ % workers_.size()];
  auto conn = std::make_shared<connection>(*this, w, next_id_++);
  acceptor_.async_accept(conn->socket(), [this, conn](std::error_code ec) {
    if (stopping() || !acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors, or the like: try again shortly instead of spinning.
      accept_retry_.expires_after(std::chrono::milliseconds(10));
      accept_retry_.async_wait([this](std::error_code e) {
        if (!e && !stopping() && acceptor_.is_open()) accept_next();
      });
      return;
    }
    bump(workers_[0]->stats.connections_accepted);
    {
      std::lock_guard lk(registry_mutex_);
      registry_.emplace(conn->id(), conn);
    }
    asio::post(conn->executor(), [conn] { conn->start(); });
    accept_next();
  });
}

void embedded_peer::impl::unregister(std::uint64_t id) {
  std::lock_guard lk(registry_mutex_);
  registry_.erase(id);
}

template <typename F>
void embedded_peer::impl::for_each_connection(F f) {
  std::vector<std::shared_ptr<connection>> all;
  {
    std::lock_guard lk(registry_mutex_);
    all.reserve(registry_.size());
    for (const auto& [id, c] : registry_) {
      all.push_back(c);
    }
  }
  for (auto& c : all) {
    auto ex = c->executor();
    asio::post(ex, [c = std::move(c), f] { f(*c); });
  }
}

void embedded_peer::impl::notify() {
  // A read-modify-write, not a load: RMWs on waiters_ are totally ordered, so either we see a
  // waiter that registered before us, or its registration synchronizes with us and its next
  // look at the counters sees what we wrote. No wake-up is lost, and no fence is needed.
  if (waiters_.fetch_add(0, std::memory_order_acq_rel) == 0) return;
  { std::lock_guard lk(wait_mutex_); }
  wait_cv_.notify_all();
}

bool embedded_peer::impl::wait_for(const std::function<bool(const embedded_peer_stats&)>& pred,
                                   std::chrono::milliseconds timeout) const {
  const auto deadline = steady::now() + timeout;
  waiters_.fetch_add(1, std::memory_order_acq_rel);
  struct unregister_waiter {
    std::atomic<unsigned>& w;
    ~unregister_waiter() { w.fetch_sub(1, std::memory_order_relaxed); }
  } guard{waiters_};
  std::unique_lock lk(wait_mutex_);
  bool ok = pred(stats());
  while (!ok) {
    const auto now = steady::now();
    if (now >= deadline) break;
    // The cap is a safety net only; notify() wakes us on every change.
    wait_cv_.wait_until(lk, std::min(deadline, now + std::chrono::milliseconds(100)));
    ok = pred(stats());
  }
  return ok;
}

std::string embedded_peer::impl::address() const {
  return endpoint_text(endpoint_);
}

embedded_peer_stats embedded_peer::impl::stats() const {
  embedded_peer_stats s;
  for (const auto& w : workers_) {
#define DIAMPOOL_X(name) s.name += w->stats.name.load(std::memory_order_relaxed);
    DIAMPOOL_PEER_COUNTERS(DIAMPOOL_X)
#undef DIAMPOOL_X
  }
  s.connections_open = s.connections_accepted > s.connections_closed
                           ? s.connections_accepted - s.connections_closed
                           : 0;
  return s;
}

void embedded_peer::impl::set_faults(const embedded_peer_faults& f) {
  {
    std::lock_guard lk(faults_mutex_);
    faults_ = f;
    faults_version_.fetch_add(1, std::memory_order_release);
  }
  for_each_connection([](impl::connection& c) { c.faults_changed(); });
}

void embedded_peer::impl::stop_listening() {
  auto done = std::make_shared<std::promise<void>>();
  auto closed = done->get_future();
  asio::post(workers_[0]->io, [this, done] {
    std::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    done->set_value();
  });
  // Waiting on one of our own threads would deadlock; there the close simply happens soon.
  const auto self = std::this_thread::get_id();
  for (const auto& w : workers_) {
    if (w->thread.get_id() == self) return;
  }
  closed.wait();
}

// ---------------------------------------------------------------------------------------------

embedded_peer::embedded_peer(embedded_peer_options options)
    : impl_(std::make_unique<impl>(std::move(options))) {}

embedded_peer::~embedded_peer() = default;

std::string embedded_peer::address() const {
  return impl_->address();
}
std::uint16_t embedded_peer::port() const {
  return impl_->port();
}
embedded_peer_stats embedded_peer::stats() const {
  return impl_->stats();
}
void embedded_peer::set_faults(const embedded_peer_faults& faults) {
  impl_->set_faults(faults);
}
embedded_peer_faults embedded_peer::faults() const {
  return impl_->faults();
}

bool embedded_peer::wait_for(const std::function<bool(const embedded_peer_stats&)>& pred,
                             std::chrono::milliseconds timeout) const {
  return impl_->wait_for(pred, timeout);
}

void embedded_peer::send_dwr() {
  impl_->for_each_connection([](impl::connection& c) { c.send_dwr(); });
}

void embedded_peer::send_dpr(std::int32_t disconnect_cause) {
  impl_->for_each_connection(
      [disconnect_cause](impl::connection& c) { c.send_dpr(disconnect_cause); });
}

void embedded_peer::send_request(std::uint32_t command_code, std::uint32_t application_id) {
  impl_->for_each_connection([command_code, application_id](impl::connection& c) {
    c.send_request(command_code, application_id);
  });
}

void embedded_peer::write_raw(std::vector<std::uint8_t> bytes) {
  auto shared = std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes));
  impl_->for_each_connection([shared](impl::connection& c) { c.write_raw(*shared); });
}

void embedded_peer::close_all() {
  impl_->for_each_connection([](impl::connection& c) { c.close("close_all()"); });
}

void embedded_peer::stop_listening() {
  impl_->stop_listening();
}

}  // namespace diampool
