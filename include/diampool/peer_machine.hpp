// diampool: the sans-I/O Diameter peer state machine.
//
// One peer_machine is the protocol logic of one Diameter connection: capabilities exchange
// (CER/CEA), the RFC 3539 watchdog (DWR/DWA), disconnect (DPR/DPA), Hop-by-Hop allocation and
// answer matching, per-request deadlines. It does no I/O and reads no clock: the driver (the
// asio transport, or a test) feeds it events with the current time, writes the bytes it
// produces, delivers the events it emits, and wakes it at next_deadline(). No asio include.
//
// Not thread-safe: one driver, one thread (or strand) at a time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/detail/deadline_heap.hpp"
#include "diampool/detail/random.hpp"
#include "diampool/detail/request_table.hpp"
#include "diampool/error.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/message.hpp"
#include "diampool/types.hpp"

namespace diampool {

/// The clock every deadline is measured on. Tests use any time_point they like.
using steady_time = std::chrono::steady_clock::time_point;

/// Connection states (the seed's, plus CLOSING while our DPR waits for its DPA).
enum class peer_state : std::uint8_t {
  disconnected,  ///< Not connected, nothing under way.
  connecting,    ///< TCP connection (and name resolution) under way.
  cer_sent,      ///< CER written, waiting for the CEA.
  open,          ///< Capabilities exchanged; requests flow.
  dwr_sent,      ///< Open, with a watchdog request (DWR) waiting for its DWA.
  closing,       ///< Our DPR sent; waiting for the DPA (answers still delivered).
  failed,        ///< Lost: handshake, watchdog, malformed input or transport failure.
  reconnecting,  ///< Waiting to connect again (backoff).
  closed,        ///< Closed cleanly (DPR/DPA either way, or closed before opening).
};

std::string_view to_string(peer_state s) noexcept;

/// OPEN and DWR_SENT: the states in which requests are sent (the seed's "active" states).
constexpr bool is_active(peer_state s) noexcept {
  return s == peer_state::open || s == peer_state::dwr_sent;
}

/// RFC 3539 section 3.4 watchdog states.
enum class watchdog_state : std::uint8_t {
  okay,     ///< Answers to watchdogs (or any traffic) arrive.
  suspect,  ///< A DWR went unanswered; more will be tried until max_dwr_failures.
  down,     ///< Too many DWRs unanswered: the connection failed.
  reopen,   ///< Re-established after a failure: reopen_dwas DWAs are needed before traffic.
};

std::string_view to_string(watchdog_state s) noexcept;

/// A Vendor-Specific-Application-Id: a vendor and an auth or acct application of it.
struct vendor_application {
  std::uint32_t vendor_id = 0;
  std::uint32_t auth_application_id = 0;  ///< 0: none
  std::uint32_t acct_application_id = 0;  ///< 0: none
  friend bool operator==(const vendor_application&, const vendor_application&) = default;
};

/// What a CER advertises (ours) or a CEA advertised (the peer's).
struct capabilities {
  std::string origin_host;
  std::string origin_realm;
  /// Ours: empty means "the local addresses of the socket" (given to connected()).
  std::vector<ip_address> host_ip_addresses;
  std::uint32_t vendor_id = 0;
  std::string product_name = "diampool";
  std::optional<std::uint32_t> origin_state_id;
  std::vector<std::uint32_t> supported_vendor_ids;
  std::vector<std::uint32_t> auth_application_ids;
  std::vector<std::uint32_t> acct_application_ids;
  std::vector<vendor_application> vendor_specific_application_ids;
  std::vector<std::uint32_t> inband_security_ids;  ///< e.g. {0} for NO_INBAND_SECURITY
  std::optional<std::uint32_t> firmware_revision;
};

/// Settings of one peer connection. Names of the seed's PoolConfig in brackets.
struct peer_config {
  capabilities local;
  std::chrono::nanoseconds cer_timeout = std::chrono::seconds(5);  ///< [CERTimeout]
  /// Tw of RFC 3539: a DWR is sent after this long without receiving anything. [DWRInterval]
  /// RFC 3539 recommends at least 6 s; shorter values are allowed (tests, labs).
  std::chrono::nanoseconds dwr_interval = std::chrono::seconds(30);
  /// Each Tw is drawn uniformly from [dwr_interval - jitter, dwr_interval + jitter].
  std::chrono::nanoseconds dwr_jitter = std::chrono::seconds(2);
  std::chrono::nanoseconds dwr_timeout = std::chrono::seconds(10);  ///< [DWRTimeout]
  unsigned max_dwr_failures = 3;                                    ///< [MaxDWRFailures]
  /// DWAs needed after a reconnection before requests flow again (RFC 3539 REOPEN).
  unsigned reopen_dwas = 3;
  /// How long our DPR waits for its DPA (and for answers the peer sends after it) before the
  /// connection is closed anyway.
  std::chrono::nanoseconds dpa_timeout = std::chrono::seconds(2);
  /// On close(), how long requests still pending may take to be answered before the DPR is
  /// sent (no new requests are accepted meanwhile). 0: send the DPR at once.
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(2);
  /// Disconnect-Cause of the DPR we send on close().
  std::int32_t disconnect_cause = disconnect_cause::rebooting;
  std::size_t max_message_size = default_max_message_size;
  /// true: requests from the peer (other than DWR/DPR) are emitted as peer_request events and
  /// answered through send_answer(); false: answered at once with 3001 and the E bit.
  bool handle_peer_requests = false;

  /// invalid_config naming the first bad field in `field`, or success.
  std::error_code validate(std::string* field = nullptr) const;
};

/// Why the capabilities exchange failed.
struct handshake_failure {
  std::uint32_t result_code = 0;         ///< The CEA's Result-Code; 0 if no CEA came.
  std::string error_message;             ///< The CEA's Error-Message, if any.
  std::vector<std::uint8_t> failed_avp;  ///< The CEA's Failed-AVP data, if any.
  std::string reason;                    ///< What happened, for logs.
};

// ---- events the machine emits ----

/// The state changed.
struct state_changed {
  peer_state from;
  peer_state to;
};
/// The answer to request `request` arrived; `message` carries the caller's own Hop-by-Hop id.
struct answer_received {
  std::uint64_t request;
  std::vector<std::uint8_t> message;
  void* context = nullptr;  ///< As given to send().
};
/// Request `request` failed; it will get no other outcome.
struct request_failed {
  std::uint64_t request;
  std::error_code error;
  void* context = nullptr;  ///< As given to send().
};
/// A request from the peer for the user's handler (handle_peer_requests); answer it with
/// send_answer(), keeping its Hop-by-Hop and End-to-End ids.
struct peer_request {
  std::vector<std::uint8_t> message;
};
/// An answer matched no pending request: late, duplicate, unknown Hop-by-Hop id, or a
/// Hop-by-Hop id that is pending but with another Command-Code or End-to-End id (the request
/// keeps waiting for its own answer).
struct unmatched_answer {
  std::uint32_t hop_by_hop;
  std::uint32_t command_code;
  /// True when the Hop-by-Hop id belonged to a pending request whose Command-Code or
  /// End-to-End id differs from the answer's.
  bool conflicting = false;
};
/// The driver must close the transport once the output is written. `reason` is empty for a
/// clean close (DPR/DPA) and says what went wrong otherwise.
struct close_transport {
  std::error_code reason;
};

using peer_event = std::variant<state_changed, answer_received, request_failed, peer_request,
                                unmatched_answer, close_transport>;

/// Counters of one connection (monotonic).
struct peer_counters {
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t requests_sent = 0;     ///< Application requests.
  std::uint64_t answers_received = 0;  ///< Matched application answers.
  std::uint64_t requests_timed_out = 0;
  std::uint64_t requests_cancelled = 0;
  std::uint64_t unmatched_answers = 0;
  std::uint64_t dwr_sent = 0;
  std::uint64_t dwa_received = 0;
  std::uint64_t dwr_received = 0;
  std::uint64_t dwr_failures = 0;
  std::uint64_t peer_requests = 0;  ///< Requests from the peer other than DWR/DPR.
};

class peer_machine {
 public:
  /// `seed` drives the Hop-by-Hop start, the End-to-End low bits and the watchdog jitter;
  /// `unix_seconds` (wall clock, for the End-to-End high bits of RFC 6733 section 3).
  peer_machine(peer_config config, std::uint64_t seed, std::uint64_t unix_seconds);
  /// As above, sharing `config` instead of holding a copy of it (a connection lends the
  /// machine it owns its own configuration's).
  peer_machine(std::shared_ptr<const peer_config> config, std::uint64_t seed,
               std::uint64_t unix_seconds);

  // ---- transport events ----

  /// A TCP connection attempt starts (DISCONNECTED/CLOSED/FAILED/RECONNECTING -> CONNECTING).
  void start_connecting(steady_time now);
  /// The connection is waiting to be retried (FAILED/CLOSED -> RECONNECTING).
  void start_reconnecting(steady_time now);
  /// The TCP connection is up: writes the CER (CONNECTING -> CER_SENT). `local` are the
  /// socket's local addresses, used for Host-IP-Address when the config names none.
  /// `reopen`: this replaces a failed connection, so RFC 3539 REOPEN applies after the CEA.
  void connected(steady_time now, std::span<const ip_address> local, bool reopen = false);
  /// Bytes arrived from the peer.
  void receive(steady_time now, std::span<const std::uint8_t> bytes);
  /// Time passed: handles every deadline at or before `now`.
  void advance(steady_time now);
  /// The transport failed or hit EOF. Pending requests fail; the state becomes FAILED (or
  /// CLOSED when a DPR exchange was under way or done).
  void connection_lost(steady_time now, std::error_code reason);

  // ---- user events ----

  /// Sends request `message` (R flag set, well formed) as request number `request` (any
  /// value unique among pending ones). Assigns a Hop-by-Hop id (the caller's is restored in
  /// the answer) and an End-to-End id if the message's is 0. Errors: not_open, invalid_request.
  /// `context`: the caller's, handed back with the request's outcome (answer_received,
  /// request_failed) or by cancel(), so that the caller needs no table of its own.
  std::error_code send(steady_time now, std::uint64_t request,
                       std::span<const std::uint8_t> message, steady_time deadline,
                       void* context = nullptr);
  /// Forgets pending request `request`: no event follows for it, and its answer, if it comes,
  /// is counted as unmatched. Returns its context; nullopt if it was not pending.
  std::optional<void*> cancel(std::uint64_t request);
  /// Ends every pending request at once with request_failed(`ec`), whatever the state: for
  /// an owner that goes away while requests are pending (their contexts come back with the
  /// events). The state and the connection are left as they are.
  void fail_pending(std::error_code ec) { fail_all_pending(ec); }
  /// Writes the user's answer to a peer_request (R clear, ids of the request).
  std::error_code send_answer(std::span<const std::uint8_t> answer);
  /// Graceful close: if active, enters CLOSING (no new requests), lets pending requests be
  /// answered for up to drain_timeout, then sends DPR (config's Disconnect-Cause) and waits up
  /// to dpa_timeout for the DPA and any answers still owed; then CLOSED. Requests still
  /// unanswered then fail with `pending_error`. If not active, closes at once.
  void close(steady_time now, std::error_code pending_error = error::connection_closed);

  /// Sets the next Hop-by-Hop and End-to-End ids to allocate (tests of wrap-around; carrying a
  /// sequence over from an earlier connection). Hop-by-Hop 0 is never used.
  void set_next_ids(std::uint32_t hop_by_hop, std::uint32_t end_to_end) noexcept {
    hbh_next_ = hop_by_hop;
    e2e_next_ = end_to_end;
  }

  // ---- outputs ----

  /// Bytes to write, in order. The driver swaps them out (take_output) and writes them.
  const std::vector<std::uint8_t>& output() const noexcept { return out_; }
  /// Moves the pending output into `into` (whose old contents are discarded; its capacity is
  /// kept for the machine's next output, so a driver alternating two buffers never allocates).
  void take_output(std::vector<std::uint8_t>& into) noexcept;
  /// Events not yet taken, oldest first.
  bool has_events() const noexcept { return events_head_ < events_.size(); }
  peer_event next_event();
  /// When advance() must be called next; nullopt when nothing is timed.
  std::optional<steady_time> next_deadline() const noexcept;

  // ---- state ----

  peer_state state() const noexcept { return state_; }
  watchdog_state watchdog() const noexcept { return watchdog_; }
  /// Active and not in REOPEN: send() will accept requests.
  bool ready() const noexcept { return is_active(state_) && watchdog_ != watchdog_state::reopen; }
  std::size_t pending_requests() const noexcept { return pending_.size(); }
  /// Lets go of the memory kept for the next requests (the request table and deadline heap
  /// arrays, the spare buffers, a large event queue once empty) when nothing is pending. The driver
  /// calls it once a turn of its event loop is done, not when the last answer of a batch arrives:
  /// the completions of that batch usually send the next requests, which reuse that memory. Without
  /// it the arrays stay sized for the most requests ever pending at once.
  void trim() noexcept;
  /// Takes a buffer its owner no longer needs (a request's bytes once send() has copied
  /// them): the answers that follow are copied into such buffers rather than new ones, which
  /// saves an allocation per request under load. Keeps one per pending request (at least
  /// max_spare_buffers), none over max_spare_buffer_size; trim() lets them go.
  void recycle(std::vector<std::uint8_t>&& buffer) noexcept;
  static constexpr std::size_t max_spare_buffers = 64;
  static constexpr std::size_t max_spare_buffer_size = 4096;
  const peer_config& config() const noexcept { return config_; }
  /// The peer's CEA (valid once the handshake succeeded).
  const capabilities& peer() const noexcept { return peer_; }
  const std::optional<handshake_failure>& handshake_error() const noexcept { return handshake_; }
  /// The Disconnect-Cause of the peer's DPR, if it sent one.
  std::optional<std::int32_t> peer_disconnect_cause() const noexcept { return peer_cause_; }
  /// Why the connection failed or closed (empty while it has not).
  std::error_code close_reason() const noexcept { return close_reason_; }
  const peer_counters& counters() const noexcept { return counters_; }

 private:
  struct pending_entry {
    std::uint64_t request = 0;
    std::uint32_t hop_by_hop = 0;  // ours, on the wire
    std::uint32_t caller_hop_by_hop = 0;
    std::uint32_t command_code = 0;  // an answer must carry the request's
    std::uint32_t end_to_end = 0;    // ditto (RFC 6733 3: agents never change it)
    std::size_t heap_pos = 0;        // of its deadline, in deadlines_
    void* context = nullptr;         // the caller's, from send()
  };

  void set_state(peer_state s);
  std::uint32_t allocate_hop_by_hop();
  std::uint32_t next_end_to_end() noexcept { return e2e_next_++; }
  std::chrono::nanoseconds draw_tw();
  /// When the next DWR is due: Tw after the last message received or the last DWR sent.
  steady_time watchdog_due() const noexcept {
    return std::max(last_received_, last_dwr_sent_) + tw_;
  }
  void handle(steady_time now, const message_view& msg);
  void handle_cea(steady_time now, const message_view& msg);
  void handle_request(steady_time now, const message_view& msg);
  void handle_answer(const message_view& msg);
  /// Starts a request of ours in the output: header, Origin-Host, Origin-Realm.
  message_builder base_request(std::uint32_t command_code, std::uint32_t hop_by_hop);
  void write_cer();
  void write_dwr(steady_time now);
  void write_dpr(steady_time now);
  void write_answer(const message_view& request, std::uint32_t result_code, bool error_bit);
  void fail_handshake(std::uint32_t result_code, std::string reason, const message_view* cea);
  /// Ends the connection: fails pending requests with `pending_error`, asks the driver to
  /// close, enters `to` (FAILED or CLOSED).
  void finish(peer_state to, std::error_code reason, std::error_code pending_error);
  void fail_all_pending(std::error_code ec);
  /// In CLOSING: sends the DPR once draining is over, ends once the DPA and answers are in.
  void closing_progress(steady_time now);
  void count_output(std::size_t before);

  std::shared_ptr<const peer_config> config_ptr_;
  const peer_config& config_;  // *config_ptr_
  detail::splitmix64 rng_;
  peer_state state_ = peer_state::disconnected;
  watchdog_state watchdog_ = watchdog_state::okay;
  frame_decoder decoder_;
  std::vector<std::uint8_t> out_;
  // Events not taken yet are events_[events_head_...]; a vector rather than a deque, which
  // holds half a KiB even when empty.
  std::vector<peer_event> events_;
  std::size_t events_head_ = 0;

  std::uint32_t hbh_next_;
  std::uint32_t e2e_next_;
  // By Hop-by-Hop id and by request id; no allocation per request under load, and trim()
  // lets the memory go when nothing is pending, so an idle connection keeps none.
  detail::request_table<pending_entry> pending_;
  detail::deadline_heap<pending_entry> deadlines_;
  std::vector<std::vector<std::uint8_t>> spare_buffers_;  // recycle(): for the next answers
  std::vector<std::uint8_t> copy_to_buffer(std::span<const std::uint8_t> bytes);
  /// Ends the bookkeeping of the pending request `e` (its deadline entry too unless it was
  /// already erased).
  void forget(pending_entry& e, bool deadline_erased = false);
  void drop_spares() noexcept;
  std::error_code pending_close_error_ = error::connection_closed;

  // Hop-by-Hop ids of our own CER, DWR and DPR (0 when none outstanding).
  std::uint32_t cer_hbh_ = 0;
  std::uint32_t dwr_hbh_ = 0;
  std::uint32_t dpr_hbh_ = 0;
  steady_time cer_deadline_{};
  steady_time dpa_deadline_{};
  steady_time drain_deadline_{};
  steady_time last_input_{};  // time of the latest input that carried one
  bool draining_ = false;     // CLOSING, DPR not sent yet
  bool dpa_received_ = false;
  steady_time last_received_{};
  steady_time last_dwr_sent_{};
  std::chrono::nanoseconds tw_{};
  steady_time dwr_deadline_{};
  unsigned dwr_failures_ = 0;
  unsigned reopen_count_ = 0;
  bool reopen_pending_ = false;
  std::vector<ip_address> local_addresses_;

  capabilities peer_;
  std::optional<handshake_failure> handshake_;
  std::optional<std::int32_t> peer_cause_;
  std::error_code close_reason_;
  peer_counters counters_;
};

}  // namespace diampool
