// diampool: the AddressClient — Diameter requests to many peers, one connection per address.
//
// An address_client sends Diameter requests to remote addresses ("host:port", "[v6]:port",
// "name.example.net:3868") and returns their answers. It keeps at most one connection per
// address: the first request to an address dials it and exchanges capabilities (CER/CEA)
// while any other request for that address waits for that same establishment; later
// requests reuse the connection. Each connection answers and sends watchdogs (DWR/DWA), and
// the client re-establishes broken connections with exponential backoff, closes idle ones,
// replaces old ones (max lifetime, make-before-break), and keeps counters of all of it.
//
// Every operation is thread-safe. Each request gets exactly one outcome: its answer (with the
// caller's own Hop-by-Hop id) or one error, within its deadline. The deadline bounds all the
// request waits for: room in a queue, the dial, the capabilities exchange, the write and the
// answer. Synchronous forms must not be called from a completion handler running on the
// client's executor.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "diampool/connection.hpp"
#include "diampool/error.hpp"
#include "diampool/histogram.hpp"
#include "diampool/logger.hpp"
#include "diampool/peer_machine.hpp"
#include "diampool/pool_config.hpp"

namespace diampool {

/// Pool-level counters (the seed's PoolMetrics). Message and byte counts include the base
/// protocol's own messages (CER/CEA, DWR/DWA, DPR/DPA) and the connections already closed.
struct pool_stats {
  std::uint64_t active_connections = 0;     ///< [ActiveConnections] OPEN or DWR_SENT now
  std::uint64_t connections_created = 0;    ///< [TotalConnections] establishments that succeeded
  std::uint64_t failed_establishments = 0;  ///< [FailedEstablishments] dial or CER/CEA failed
  std::uint64_t reconnect_attempts = 0;     ///< [ReconnectAttempts] establishments after the first
  std::uint64_t messages_sent = 0;          ///< [MessagesSent]
  std::uint64_t messages_received = 0;      ///< [MessagesReceived]
  std::uint64_t bytes_sent = 0;             ///< [BytesSent]
  std::uint64_t bytes_received = 0;         ///< [BytesReceived]
  std::uint64_t connections_closed = 0;     ///< [ConnectionsClosed] lost, or closed by the pool
  std::uint64_t idle_closures = 0;          ///< [IdleTimeoutClosures]
  std::uint64_t lifetime_expirations = 0;   ///< [MaxLifetimeExpirations] connections replaced
  // diampool additions
  std::uint64_t addresses = 0;          ///< addresses the pool knows (open, connecting or down)
  std::uint64_t health_checks = 0;      ///< runs of the health check
  std::uint64_t unmatched_answers = 0;  ///< answers no pending request was waiting for
};

/// Client-level counters (the seed's Stats) with the pool's.
struct client_stats {
  std::uint64_t total_requests = 0;   ///< [TotalRequests] send calls
  std::uint64_t total_responses = 0;  ///< [TotalResponses] answers delivered
  std::uint64_t total_errors = 0;     ///< [TotalErrors] requests that ended with an error
  std::uint64_t total_timeouts = 0;   ///< [TotalTimeouts] of those, deadline expired
  std::uint64_t total_cancelled = 0;  ///< of those, cancelled by their caller
  std::uint64_t in_flight = 0;        ///< requests without an outcome yet
  pool_stats pool;                    ///< [PoolMetrics]
  /// Request-to-answer latency of every answered request, microseconds (all addresses).
  histogram_snapshot latency;
};

/// What the pool knows of one address (the seed's per-connection view; a snapshot).
struct connection_info {
  std::string address;
  /// [GetState] The state of the address's connection; RECONNECTING while a reconnection
  /// waits for its backoff delay, DISCONNECTED when there is no connection (idle).
  peer_state state = peer_state::disconnected;
  /// [GetStats] messages, bytes, reconnects, last error, handshake failure of the current
  /// connection (its counters start again when a connection replaces it).
  connection_stats stats;
  capabilities peer;  ///< What the peer advertised in its last CEA.
  /// Establishments that failed in a row, and when the next may start (backoff).
  unsigned consecutive_failures = 0;
  std::optional<std::chrono::steady_clock::time_point> next_attempt;
  std::error_code last_error;  ///< Why the last establishment failed or the connection ended.
  std::size_t draining = 0;    ///< Replaced connections still finishing their requests.
  /// Request-to-answer latency of this address's answered requests, in microseconds (within
  /// 12.5 %): `latency.quantile(0.99)`, `latency.count`...
  histogram_snapshot latency;
};

struct pool_entry;

namespace detail {
struct request_cancel;
void cancel(const std::shared_ptr<request_cancel>& c);
std::shared_ptr<request_cancel> make_cancel();

// The pool's record of one request, from the call to its outcome, in one allocation: it waits
// in its address's queue, is the operation of the connection that sends it (consume(): back to
// the pool), then runs the caller's completion (deliver()).
struct pool_request : send_op {
  std::shared_ptr<request_cancel> cancel;
  std::vector<std::uint8_t> bytes;  // while not on a connection
  steady_time deadline{};
  std::uint64_t id = 0;
  steady_time started{};
  asio::any_io_executor home;       // where a request failed at once completes
  std::shared_ptr<pool_entry> via;  // the address it was sent for, while on a connection

  /// The connection's outcome for this request: takes ownership, back to the pool.
  void consume(std::error_code ec, std::vector<std::uint8_t> answer) override;
  /// Runs the caller's completion with the outcome; takes ownership and destroys *this.
  virtual void deliver(std::error_code ec, std::vector<std::uint8_t> answer) = 0;
};

template <typename Handler>
class pool_request_for final : public pool_request {
 public:
  pool_request_for(Handler&& h, const asio::any_io_executor& ex) : user_(std::move(h), ex) {}
  void deliver(std::error_code ec, std::vector<std::uint8_t> answer) override {
    const std::unique_ptr<pool_request_for> self(this);
    user_.dispatch(ec, std::move(answer));
  }
  Handler& handler() noexcept { return user_.handler(); }

 private:
  completion<Handler, std::error_code, std::vector<std::uint8_t>> user_;
};

// Makes the record of one send once the client has chosen the executor it completes on by
// default (its own, or, once its threads are gone, asio's system executor).
class send_op_factory {
 public:
  virtual std::unique_ptr<pool_request> make(const asio::any_io_executor& ex,
                                             std::shared_ptr<request_cancel>& cancel) = 0;

 protected:
  ~send_op_factory() = default;
};

template <typename Handler>
class send_op_factory_for final : public send_op_factory {
 public:
  explicit send_op_factory_for(Handler& h) : handler_(h) {}
  std::unique_ptr<pool_request> make(const asio::any_io_executor& ex,
                                     std::shared_ptr<request_cancel>& cancel) override {
    auto r = std::make_unique<pool_request_for<Handler>>(std::move(handler_), ex);
    auto slot = asio::get_associated_cancellation_slot(r->handler());
    if (slot.is_connected()) {
      cancel = make_cancel();
      slot.assign([c = cancel](asio::cancellation_type_t) { detail::cancel(c); });
    }
    return r;
  }

 private:
  Handler& handler_;
};
}  // namespace detail

class address_client {
 public:
  using executor_type = asio::any_io_executor;
  using answer_signature = void(std::error_code, std::vector<std::uint8_t>);

  /// [NewAddressClient] Validates `config` (throws std::system_error with invalid_config and
  /// the field's name in what()), and starts `config.worker_threads` I/O threads of its own.
  /// `log` null: default_logger() (spdlog to stderr, info).
  explicit address_client(pool_config config, std::shared_ptr<logger> log = nullptr);
  /// As above, running on `executor` (e.g. an io_context the application runs): no thread of
  /// its own. The executor must keep running until close() returns.
  address_client(pool_config config, std::shared_ptr<logger> log, executor_type executor);
  /// Closes (see close()).
  ~address_client();
  address_client(const address_client&) = delete;
  address_client& operator=(const address_client&) = delete;

  /// The executor the client runs on. Once close() has returned, a client that owned its
  /// threads no longer has an executor: this one must not be used then.
  executor_type get_executor() const noexcept { return executor_; }
  const pool_config& config() const noexcept;

  // ---- sending ----

  /// [Send] Sends `request` (a complete Diameter request, R flag set) to `address` and returns
  /// its answer, waiting at most config().send_timeout. On error, `ec` is set and the result
  /// empty. Errors: invalid_address, invalid_request, pool_closed, timed_out, cancelled,
  /// send_queue_full, connection_closed, connection_timeout, handshake_failed, a system error
  /// of the dial (e.g. connection refused), or the error that took the address down when it
  /// cannot be up again within the deadline (see reconnection in the README).
  std::vector<std::uint8_t> send(std::string_view address, std::span<const std::uint8_t> request,
                                 std::error_code& ec);
  /// As above; throws std::system_error on error.
  std::vector<std::uint8_t> send(std::string_view address, std::span<const std::uint8_t> request);
  /// [SendWithTimeout]
  std::vector<std::uint8_t> send(std::string_view address, std::span<const std::uint8_t> request,
                                 std::chrono::nanoseconds timeout, std::error_code& ec);
  /// [SendWithContext] With a deadline and a stop token: a stop request cancels the request
  /// (error::cancelled; its late answer is counted as unmatched, the connection stays up).
  std::vector<std::uint8_t> send(std::string_view address, std::span<const std::uint8_t> request,
                                 steady_time deadline, std::error_code& ec,
                                 std::stop_token stop = {});

  /// Asynchronous send with asio's completion-token convention (callback, use_future,
  /// use_awaitable, ...), deadline now + send_timeout. Supports per-operation cancellation
  /// (terminal, partial, total). Signature: void(std::error_code, std::vector<std::uint8_t>).
  /// The completion runs on the handler's associated executor: by default the client's own,
  /// or asio's system executor for requests refused after close() has returned.
  template <typename CompletionToken>
  auto async_send(std::string address, std::vector<std::uint8_t> request, CompletionToken&& token) {
    return async_send(std::move(address), std::move(request), default_deadline(),
                      std::forward<CompletionToken>(token));
  }

  /// As above, with a deadline.
  template <typename CompletionToken>
  auto async_send(std::string address, std::vector<std::uint8_t> request, steady_time deadline,
                  CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, answer_signature>(
        [this](auto handler, std::string addr, std::vector<std::uint8_t> req, steady_time dl) {
          detail::send_op_factory_for<std::decay_t<decltype(handler)>> f(handler);
          start_send(addr, f, std::move(req), dl, {});
        },
        token, std::move(address), std::move(request), deadline);
  }

  /// Fire and forget: sends `request` with the default deadline and discards its answer
  /// (answers and failures are still counted, failures logged). Returns only the errors known
  /// at once: invalid_address, invalid_request, pool_closed.
  std::error_code send_and_forget(std::string_view address, std::span<const std::uint8_t> request);

  // ---- inspection ----

  /// [GetStats]
  client_stats stats() const;
  /// [GetActiveConnections] Connections now OPEN or DWR_SENT.
  std::size_t active_connections() const;
  /// [ListConnections] Addresses whose connection is OPEN or DWR_SENT now.
  std::vector<std::string> list_connections() const;
  /// [GetConnection] What the pool knows of `address` (as written in send), if anything.
  std::optional<connection_info> connection(std::string_view address) const;
  /// What the pool knows of every address it holds (open, connecting, down or idle), sorted
  /// by address: for monitoring and metrics export.
  std::vector<connection_info> connections() const;

  // ---- shutting down ----

  /// [Close] Refuses new requests (pool_closed), sends DPR (the configured Disconnect-Cause,
  /// REBOOTING by default) on every open connection and waits for the DPAs (bounded by
  /// drain_timeout + dpa_timeout), fails what is still pending with pool_closed, and returns
  /// once every connection, timer and thread of the client is released. Safe to call from
  /// several threads and more than once; must not be called from a completion handler
  /// running on the client's own threads.
  void close();
  bool closed() const noexcept;

  struct impl;

 private:
  steady_time default_deadline() const noexcept;
  void start_send(std::string_view address, detail::send_op_factory& make_op,
                  std::vector<std::uint8_t> request, steady_time deadline,
                  std::shared_ptr<detail::request_cancel> cancel);

  executor_type executor_;
  std::shared_ptr<impl> impl_;
};

}  // namespace diampool
