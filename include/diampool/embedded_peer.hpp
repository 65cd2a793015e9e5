// diampool: a small, fast Diameter server for tests, demos and benchmarks.
//
// embedded_peer listens on TCP, answers the base protocol (CER/CEA, DWR/DWA, DPR/DPA) and
// answers every other request with a configurable Result-Code. Fault knobs (delays, dropped
// or duplicated answers, refused capability exchange, closing, not reading) can be changed
// while it runs, and it can send DWR, DPR, requests or raw bytes to its clients on demand.
//
// It is built on the codec and standalone asio, but this header includes neither asio nor any
// other networking header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diampool/message.hpp"

namespace diampool {

/// Fault knobs of an embedded_peer. Every field may be changed at run time with
/// embedded_peer::set_faults(); a connection picks up a change before it handles the next
/// batch of bytes it reads. Counters ("every Nth", "after N") are kept per connection.
struct embedded_peer_faults {
  /// Delay before each application answer is written. Reading and the answers to base
  /// protocol requests (CER, DWR, DPR) are never delayed.
  std::chrono::microseconds answer_delay{0};

  /// Result-Code of application answers. A 3xxx code also sets the E bit.
  std::uint32_t result_code = 2001;

  /// false: read the CER and never answer it (the client's CEA wait times out).
  bool answer_cer = true;

  /// Result-Code of the CEA. Any other value than 2001 (e.g. 3010, 4003, 5010, 5012) is sent
  /// with an Error-Message (and the E bit for 3xxx), then the connection is closed once the
  /// CEA is written, as real peers do.
  std::uint32_t cea_result_code = 2001;

  /// false: DWRs are read and counted but never answered.
  bool answer_dwr = true;

  /// 0: none. N: the Nth, 2Nth, ... application requests of a connection get no answer.
  std::uint32_t drop_every_nth_answer = 0;

  /// 0: never. N: when the Nth message of a connection (CER included) arrives, it is not
  /// handled; what was already queued is written, then the connection is closed.
  std::uint64_t close_after_messages = 0;

  /// true: stop reading the sockets (a read already started completes and is handled; no
  /// further read is started). The client's writes block once the socket buffers fill.
  /// Setting it back to false resumes reading.
  bool stop_reading = false;

  /// AVP codes copied from a request into its answer, after Origin-Realm: every top-level AVP
  /// of the request whose code is listed, in the request's order, with its flags and vendor.
  std::vector<std::uint32_t> echo_avps;

  /// 0: none. N: the answers to the Nth, 2Nth, ... application requests of a connection are
  /// written twice (same identifiers), like a duplicate from a confused peer.
  std::uint32_t duplicate_every_nth_answer = 0;

  /// 0: off. Otherwise a slow writer ("slowloris"): everything the peer writes (CEA, DWA,
  /// answers, write_raw bytes) goes out one byte at a time, this long apart. Reading is not
  /// slowed. Setting it back to 0 writes the rest at once.
  std::chrono::microseconds trickle_interval{0};
};

/// What happened to a client connection (see embedded_peer_options::on_event).
enum class embedded_peer_event_kind : std::uint8_t {
  accepted,               ///< A TCP connection was accepted.
  capabilities_exchange,  ///< A CER arrived and was handled (answered or not).
  disconnect_request,     ///< A DPR arrived and its DPA was queued.
  closed,                 ///< The connection is closed, by either side, for any reason.
};

/// One connection event. Every connection reports `accepted` first and `closed` last.
struct embedded_peer_event {
  embedded_peer_event_kind kind = embedded_peer_event_kind::accepted;
  /// Number of the connection, increasing in accept order (the same in all its events).
  std::uint64_t connection = 0;
  /// The client's address, "host:port" or "[v6-address]:port".
  std::string remote_address;
  /// The Origin-Host of the client's CER; empty until a CER arrived.
  std::string origin_host;
  /// capabilities_exchange: the Result-Code of the CEA sent; 0 when no CEA was sent
  /// (faults::answer_cer false).
  std::uint32_t result_code = 0;
  /// disconnect_request: the DPR's Disconnect-Cause, when it carried one.
  std::optional<std::int32_t> disconnect_cause;
  /// closed: why, in words ("closed by the client", "malformed frame: ...", "peer stopping").
  std::string reason;
};

/// Configuration of an embedded_peer, fixed at construction.
struct embedded_peer_options {
  /// Where to listen: "host:port" or "[v6-address]:port"; port 0 picks an ephemeral port (see
  /// embedded_peer::port()). The host is an IP literal or a name resolved at construction.
  std::string listen = "127.0.0.1:0";

  std::string origin_host = "peer.example.net";  ///< Origin-Host of everything it sends.
  std::string origin_realm = "example.net";      ///< Origin-Realm of everything it sends.
  std::string product_name = "diampool-peer";    ///< Product-Name in CEA.
  std::uint32_t vendor_id = 0;                   ///< Vendor-Id in CEA.

  /// Auth-Application-Id values advertised in CEA. When both lists are empty the CEA
  /// advertises the Relay application (0xffffffff).
  std::vector<std::uint32_t> auth_application_ids;
  /// Acct-Application-Id values advertised in CEA.
  std::vector<std::uint32_t> acct_application_ids;

  /// I/O threads. Each has its own event loop; connections are spread over them round-robin
  /// and a connection stays on its thread for its whole life.
  unsigned threads = 1;

  /// Largest message accepted from a client; a longer one is a malformed frame.
  std::size_t max_message_size = std::size_t{1024} * 1024;

  /// Faults in effect from the start.
  embedded_peer_faults faults{};

  /// Optional observer called for every well-framed message received (requests and answers,
  /// CER included), before the peer handles it. It runs on an I/O thread, concurrently with
  /// other connections' calls when threads > 1; the view is valid only during the call. It
  /// must not block and must not call the embedded_peer's blocking members (wait_for, the
  /// destructor). Exceptions it throws are ignored.
  std::function<void(const message_view&)> on_message;

  /// Optional observer of connection events (accepted, CER, DPR, closed), called on the
  /// connection's I/O thread under the same rules as on_message (concurrent calls when
  /// threads > 1; no blocking; exceptions ignored). `closed` is reported before the counters
  /// show the connection closed, also for the connections the destructor closes.
  std::function<void(const embedded_peer_event&)> on_event;
};

/// Counters of an embedded_peer since construction. A snapshot: each counter is read
/// atomically, but the set is not one consistent instant.
struct embedded_peer_stats {
  std::uint64_t connections_accepted = 0;   ///< TCP connections accepted.
  std::uint64_t connections_open = 0;       ///< Accepted and not closed yet (any state).
  std::uint64_t connections_closed = 0;     ///< By either side, for any reason.
  std::uint64_t messages_received = 0;      ///< Well-framed messages of any kind.
  std::uint64_t cers = 0;                   ///< CERs received.
  std::uint64_t ceas_sent = 0;              ///< CEAs written (any Result-Code).
  std::uint64_t dwrs = 0;                   ///< DWRs received from clients.
  std::uint64_t dwas_sent = 0;              ///< DWAs written.
  std::uint64_t dwrs_sent = 0;              ///< Peer-initiated DWRs (send_dwr()).
  std::uint64_t dwas_received = 0;          ///< Answers to those.
  std::uint64_t dprs = 0;                   ///< DPRs received from clients.
  std::uint64_t dpas_sent = 0;              ///< DPAs written.
  std::uint64_t dprs_sent = 0;              ///< Peer-initiated DPRs (send_dpr()).
  std::uint64_t dpas_received = 0;          ///< Answers to those.
  std::uint64_t requests = 0;               ///< Application requests received.
  std::uint64_t answers_sent = 0;           ///< Application answers queued (duplicates too).
  std::uint64_t answers_dropped = 0;        ///< Not answered (drop_every_nth_answer).
  std::uint64_t answers_duplicated = 0;     ///< Extra copies (duplicate_every_nth_answer).
  std::uint64_t requests_sent = 0;          ///< Peer-initiated requests (send_request()).
  std::uint64_t answers_received = 0;       ///< Answers to them (and any other answer).
  std::uint64_t raw_writes = 0;             ///< write_raw() calls applied to a connection.
  std::uint64_t unexpected_before_cea = 0;  ///< Non-CER messages before CEA (connection closed).
  std::uint64_t closed_after_messages = 0;  ///< Connections closed by close_after_messages.
  std::uint64_t bytes_received = 0;         ///< Read from all sockets.
  std::uint64_t bytes_sent = 0;             ///< Written to all sockets.
  std::uint64_t malformed = 0;              ///< Frames that failed to decode (connection closed).
};

/// A Diameter server on loopback (or any address) for tests, demos and benchmarks.
///
/// Per connection it reads with one buffer reused for the life of the connection, frames the
/// stream with a frame_decoder, handles messages in place, and writes everything answered in
/// a batch with one write (never two writes in flight on a socket). Answers:
/// - CER: CEA with Result-Code (faults::cea_result_code), Origin-Host, Origin-Realm,
///   Host-IP-Address (the socket's local address), Vendor-Id, Product-Name, Origin-State-Id,
///   Auth-/Acct-Application-Id as configured. Anything but a CER before the CEA closes the
///   connection.
/// - DWR: DWA 2001. DPR: DPA 2001, then the connection is closed when the client closes it or
///   after one second.
/// - Any other request: an answer with the same command code, application id, Hop-by-Hop and
///   End-to-End ids, R cleared, P copied, E set for 3xxx: Session-Id (copied, when present),
///   Result-Code, Origin-Host, Origin-Realm, then the echoed AVPs.
/// - Answers (to peer-initiated requests) are counted. A DPA to send_dpr() closes the
///   connection (the DPR sender closes, as freeDiameter does).
/// - A malformed frame is counted and closes its connection.
///
/// Output waiting for a client that does not read is bounded: beyond 4 MiB the connection
/// stops reading until its writes drain.
///
/// Thread safety: every member function may be called from any thread concurrently, except
/// that the destructor must not race with other calls. Only wait_for(), stop_listening() and
/// the destructor block. The actions (send_dwr, send_dpr, send_request, write_raw, close_all)
/// are asynchronous: they are queued to the connections' I/O threads and return at once;
/// observe their effect with wait_for() or on the client socket. They apply to the
/// connections open (CEA 2001 sent) when they are called, except close_all(), which closes
/// every connection whatever its state.
class embedded_peer {
 public:
  /// Binds, listens and starts the I/O threads. Throws std::system_error if the listen
  /// address is malformed or cannot be resolved or bound.
  explicit embedded_peer(embedded_peer_options options = {});

  /// Stops listening, closes every connection (without DPR), joins the I/O threads. Does
  /// not wait for anything on the network; pending delayed answers are discarded.
  ~embedded_peer();

  embedded_peer(const embedded_peer&) = delete;
  embedded_peer& operator=(const embedded_peer&) = delete;

  /// The listening address as "host:port" ("[::1]:port" for IPv6), ready to dial.
  std::string address() const;
  /// The listening port (the ephemeral one when options.listen asked for port 0).
  std::uint16_t port() const;

  /// A snapshot of the counters.
  embedded_peer_stats stats() const;

  /// Replaces the fault knobs; connections apply them before their next batch of input.
  void set_faults(const embedded_peer_faults& faults);
  /// The fault knobs in effect.
  embedded_peer_faults faults() const;

  /// Blocks until pred(stats()) is true or `timeout` passes; returns pred's last value.
  /// pred runs on the calling thread, once at the start and again whenever the counters
  /// change, so tests can wait for events without sleeping.
  bool wait_for(const std::function<bool(const embedded_peer_stats&)>& pred,
                std::chrono::milliseconds timeout) const;

  /// Sends a DWR (Origin-Host, Origin-Realm, Origin-State-Id) on every open connection.
  void send_dwr();
  /// Sends a DPR with this Disconnect-Cause on every open connection; the connection is
  /// closed when the DPA arrives.
  void send_dpr(std::int32_t disconnect_cause);
  /// Sends a request (R and P bits) the client does not expect on every open connection:
  /// Session-Id, Origin-Host, Origin-Realm, Destination-Realm (the client's Origin-Realm).
  void send_request(std::uint32_t command_code, std::uint32_t application_id);
  /// Writes `bytes` verbatim on every open connection, in order with the answers (garbage,
  /// an oversized length header, a truncated frame...).
  void write_raw(std::vector<std::uint8_t> bytes);
  /// Closes every connection at once (no DPR; unwritten answers are discarded).
  void close_all();
  /// Closes the listening socket: new connections are refused; open ones are kept. Blocks
  /// until the socket is closed, except when called on one of the peer's I/O threads (from
  /// on_message), where the close happens just after the call returns.
  void stop_listening();

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace diampool
