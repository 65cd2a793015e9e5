// diampool: one Diameter connection over TCP (asio transport driving a peer_machine).
//
// A connection dials an address (host:port, [v6]:port or a DNS name), runs the capabilities
// exchange, answers the peer's watchdogs, sends its own, and carries requests to answers.
// All of its state lives on one strand: public calls post onto it, so a connection may be
// used from any number of threads. There is one reader and one writer per socket (never two
// writes in flight; requests queued while a write is under way go out together in the next),
// and one timer, set from peer_machine::next_deadline() and the write deadline.
//
// Asynchronous operations follow asio's completion-token convention (callbacks, use_future,
// use_awaitable, ...) and support per-operation cancellation (terminal, partial and total:
// the request is forgotten and completes with error::cancelled; its answer, if it comes,
// is counted as unmatched and the connection stays up). Synchronous forms wait on a future
// and must not be called from a thread running the connection's executor.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <system_error>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "diampool/address.hpp"
#include "diampool/error.hpp"
#include "diampool/logger.hpp"
#include "diampool/peer_machine.hpp"

namespace diampool {

/// Settings of a connection: the peer settings plus the transport's own.
struct connection_config {
  peer_config peer;
  /// Name resolution and TCP connect. [DialTimeout]
  std::chrono::nanoseconds dial_timeout = std::chrono::seconds(10);
  /// Requests accepted but not yet written to the socket, at most. Beyond that a send waits
  /// (within its deadline) in a backlog of at most max_backlog requests; beyond that it fails
  /// at once with send_queue_full. [SendBufferSize]
  std::size_t send_buffer_size = 100;
  std::size_t max_backlog = 10000;
  /// A write that makes no progress for this long fails the connection (a peer that stops
  /// reading cannot hold requests or memory forever).
  std::chrono::nanoseconds write_timeout = std::chrono::seconds(10);
  /// Largest size of the connection's read buffer (at least 1 KiB). It starts at 1 KiB,
  /// doubles after each read that fills it, up to this, and goes back to 1 KiB when nothing
  /// is pending, so an idle connection holds little.
  std::size_t read_buffer_size = std::size_t{64} * 1024;
  /// Requests from the peer other than DWR/DPR. Called on the connection's strand with the
  /// request; returns the answer to write (same Hop-by-Hop and End-to-End ids). Not set:
  /// those requests are answered with 3001 (DIAMETER_COMMAND_UNSUPPORTED) and the E bit.
  std::function<std::vector<std::uint8_t>(const message_view&)> request_handler;
  /// Called on the connection's strand after each state change has been published (so
  /// state() and stats() already show it), with the reason when the connection failed or
  /// closed. For owners such as a pool that must react to a connection going down. It must not
  /// block and must not call the synchronous API.
  std::function<void(peer_state from, peer_state to, std::error_code reason)> on_state_change;

  /// invalid_config naming the first bad field in `field`, or success.
  std::error_code validate(std::string* field = nullptr) const;
};

/// Counters and state of one connection (a snapshot).
struct connection_stats {
  peer_state state = peer_state::disconnected;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t requests_sent = 0;
  std::uint64_t answers_received = 0;
  std::uint64_t requests_timed_out = 0;
  std::uint64_t requests_cancelled = 0;
  std::uint64_t unmatched_answers = 0;
  std::uint64_t dwr_sent = 0;
  std::uint64_t dwr_received = 0;
  std::uint64_t reconnects = 0;  ///< Successful connects after the first.
  std::uint64_t pending = 0;     ///< Requests waiting for their answer.
  std::uint64_t backlog = 0;     ///< Requests waiting for room in the send queue.
  /// Reads that returned bytes, and writes handed to the socket. Each write carries every
  /// message queued since the last one, so messages_sent / socket_writes is the batching.
  std::uint64_t socket_reads = 0;
  std::uint64_t socket_writes = 0;
  /// The most recent failure (kept after a successful reconnection, for the record).
  std::error_code last_error;
  std::optional<handshake_failure> handshake;         ///< Why the last handshake failed, if it did.
  std::optional<std::int32_t> peer_disconnect_cause;  ///< Of the peer's last DPR.
};

namespace detail {

/// The clock reading of the connection event being handled on this thread (a read, write or
/// timer completion, or a send), or steady_time{} outside one. Code run by a connection's
/// completions (the pool's bookkeeping of an answer, a request sent from a completion) takes
/// its timestamps from it rather than reading the clock once more per request.
steady_time event_time() noexcept;

/// event_time() when inside a connection event, else a fresh clock reading.
inline steady_time event_time_or_now() noexcept {
  const steady_time t = event_time();
  return t != steady_time{} ? t : std::chrono::steady_clock::now();
}

// Type-erased completion of one operation, run on the connection's strand. An operation gives
// itself up when it completes: complete(std::move(op), ...) hands it over to consume(), which
// owns it from then on (and may pass it on rather than destroy it).
template <typename... Args>
class op_base {
 public:
  virtual ~op_base() = default;
  /// Takes ownership of *this and completes.
  virtual void consume(Args... args) = 0;
};

template <typename... Args>
void complete(std::unique_ptr<op_base<Args...>> op, std::type_identity_t<Args>... args) {
  op.release()->consume(std::move(args)...);
}

// A completion handler with the executor it runs on: dispatch() moves the handler out and
// runs it there (inline when already on it).
template <typename Handler, typename... Args>
class completion {
 public:
  // `io`: the executor of the object the operation runs on (a connection, a client). The
  // handler's executor is told of outstanding work unless it is that same executor, which
  // its owner keeps running anyway (and telling it would cost an allocation per operation).
  completion(Handler&& h, const asio::any_io_executor& io)
      : handler_(std::move(h)), ex_(asio::get_associated_executor(handler_, io)) {
    if constexpr (std::is_same_v<handler_executor, asio::any_io_executor>) {
      if (ex_ == io) return;
    }
    work_.emplace(asio::prefer(ex_, asio::execution::outstanding_work.tracked));
  }

  void dispatch(Args... args) {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    auto run = [h = std::move(handler_), ... a = std::move(args)]() mutable {
      std::move(h)(std::move(a)...);
    };
    if (work_) {
      // The executor that tracks the handler's work lives until the dispatch is done.
      auto ex = std::move(*work_);
      work_.reset();
      asio::dispatch(ex, std::move(run));
      return;
    }
    if constexpr (std::is_same_v<handler_executor, asio::any_io_executor>) {
      // Through the concrete executor when it is an io_context's: asio 1.22 allocates for
      // every dispatch through the polymorphic one. (Its target<T>() does not check the
      // type: target_type() does.)
      if (ex_.target_type() == typeid(asio::io_context::executor_type)) {
        asio::dispatch(*ex_.template target<asio::io_context::executor_type>(), std::move(run));
        return;
      }
    }
    asio::dispatch(ex_, std::move(run));
  }

  Handler& handler() noexcept { return handler_; }

 private:
  using handler_executor = asio::associated_executor_t<Handler, asio::any_io_executor>;
  using work_executor = std::decay_t<decltype(asio::prefer(
      std::declval<handler_executor>(), asio::execution::outstanding_work.tracked))>;
  Handler handler_;
  handler_executor ex_;
  std::optional<work_executor> work_;  // keeps a foreign executor from running out of work
};

template <typename Handler, typename... Args>
class op final : public op_base<Args...> {
 public:
  op(Handler&& h, const asio::any_io_executor& io) : completion_(std::move(h), io) {}

  void consume(Args... args) override {
    const std::unique_ptr<op> self(this);  // gone once the handler is dispatched
    completion_.dispatch(std::move(args)...);
  }

  Handler& handler() noexcept { return completion_.handler(); }

 private:
  completion<Handler, Args...> completion_;
};

using connect_op = op_base<std::error_code>;
using send_op = op_base<std::error_code, std::vector<std::uint8_t>>;
using close_op = op_base<>;

}  // namespace detail

class connection {
 public:
  using executor_type = asio::any_io_executor;
  using answer_signature = void(std::error_code, std::vector<std::uint8_t>);

  /// Creates an idle (DISCONNECTED) connection on `executor`. Throws std::system_error with
  /// invalid_config if config.validate() fails. Destroying the connection aborts it (no DPR;
  /// pending requests fail with connection_closed); close() first for a graceful end.
  static std::shared_ptr<connection> create(executor_type executor, connection_config config,
                                            std::shared_ptr<logger> log = null_logger());

  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  executor_type get_executor() const noexcept { return executor_; }

  /// Resolves `address` ("host:port", "[v6]:port"), connects and exchanges capabilities.
  /// Completes with success once the connection is OPEN (after REOPEN when it replaces a
  /// failed connection), or with: std::errc::invalid_argument (malformed address),
  /// connection_timeout (not connected within dial_timeout or the deadline), a system error
  /// (refused, unreachable, resolution failure), handshake_failed (stats().handshake says
  /// why), timed_out (the deadline passed during the handshake), cancelled,
  /// std::errc::operation_in_progress (a connect is already under way). Succeeds at once if
  /// already open. Signature: void(std::error_code).
  template <typename CompletionToken>
  auto async_connect(std::string address, steady_time deadline, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler, std::string addr, steady_time dl) {
          using H = std::decay_t<decltype(handler)>;
          auto o = std::make_unique<detail::op<H, std::error_code>>(std::move(handler), executor_);
          auto slot = asio::get_associated_cancellation_slot(o->handler());
          if (slot.is_connected()) {
            slot.assign(
                [w = std::weak_ptr<impl>(impl_)](asio::cancellation_type_t) { cancel_connect(w); });
          }
          start_connect(std::move(o), std::move(addr), dl);
        },
        token, std::move(address), deadline);
  }

  /// Sends `request` (a complete Diameter request) and completes with its answer, carrying
  /// the request's own Hop-by-Hop id. Errors: not_open (the connection was not open, or
  /// stopped being open while the request waited for room in the send queue: either way the
  /// request was never written, and its bytes are handed back in place of the answer so that
  /// an owner may route them to another connection),
  /// invalid_request, send_queue_full, timed_out (deadline passed), cancelled,
  /// connection_closed (the connection ended first). An answer with a non-2xxx Result-Code
  /// or the E bit is an answer, not an error.
  /// Signature: void(std::error_code, std::vector<std::uint8_t>).
  template <typename CompletionToken>
  auto async_send(std::vector<std::uint8_t> request, steady_time deadline,
                  CompletionToken&& token) {
    return async_send(std::move(request), deadline, new_request_id(),
                      std::forward<CompletionToken>(token));
  }

  /// As above, under a request id from new_request_id(), which cancel() takes.
  template <typename CompletionToken>
  auto async_send(std::vector<std::uint8_t> request, steady_time deadline, std::uint64_t request_id,
                  CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, answer_signature>(
        [this](auto handler, std::vector<std::uint8_t> req, steady_time dl, std::uint64_t id) {
          using H = std::decay_t<decltype(handler)>;
          auto o = std::make_unique<detail::op<H, std::error_code, std::vector<std::uint8_t>>>(
              std::move(handler), executor_);
          auto slot = asio::get_associated_cancellation_slot(o->handler());
          if (slot.is_connected()) {
            slot.assign([w = std::weak_ptr<impl>(impl_), id](asio::cancellation_type_t) {
              cancel_request(w, id);
            });
          }
          start_send(std::move(o), id, std::move(req), dl);
        },
        token, std::move(request), deadline, request_id);
  }

  /// A fresh id for async_send(request, deadline, id, token): unique on this connection.
  std::uint64_t new_request_id() noexcept {
    return next_request_id_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Cancels the request sent under `request_id` (thread-safe; nothing if it has completed):
  /// it completes with error::cancelled and its answer, if it comes, is counted as unmatched.
  void cancel(std::uint64_t request_id) { cancel_request(impl_, request_id); }

  /// Low level, for diampool's pool: sends `request` under `request_id` with an operation the
  /// caller built; `op` is consumed on the connection's strand with the outcome (an answer,
  /// or an error as for async_send; not_open gives the request's bytes back).
  void send_with(std::unique_ptr<detail::send_op> op, std::uint64_t request_id,
                 std::vector<std::uint8_t> request, steady_time deadline) {
    start_send(std::move(op), request_id, std::move(request), deadline);
  }

  /// Graceful close: DPR (the configured Disconnect-Cause) if open, a bounded wait for the
  /// DPA (dpa_timeout), then the socket is closed. Requests still pending then fail with
  /// `pending_error`. Completes once the socket is closed. Signature: void().
  template <typename CompletionToken>
  auto async_close(CompletionToken&& token,
                   std::error_code pending_error = error::connection_closed) {
    return asio::async_initiate<CompletionToken, void()>(
        [this](auto handler, std::error_code pe) {
          using H = std::decay_t<decltype(handler)>;
          start_close(std::make_unique<detail::op<H>>(std::move(handler), executor_), pe);
        },
        token, pending_error);
  }

  /// Synchronous connect: as async_connect; `stop` cancels it.
  std::error_code connect(const std::string& address, steady_time deadline,
                          std::stop_token stop = {});
  /// Synchronous send: as async_send; `stop` cancels it.
  std::vector<std::uint8_t> send(std::span<const std::uint8_t> request, steady_time deadline,
                                 std::error_code& ec, std::stop_token stop = {});
  /// Synchronous graceful close; returns when the socket is closed.
  void close(std::error_code pending_error = error::connection_closed);
  /// Closes at once (no DPR); pending requests fail with `reason`. Does not wait.
  void abort(std::error_code reason = error::connection_closed);

  peer_state state() const noexcept;
  /// OPEN or DWR_SENT and not in REOPEN: requests are accepted.
  bool ready() const noexcept;
  connection_stats stats() const;
  /// What the peer advertised in its CEA on the last successful handshake (empty before).
  capabilities peer() const;

  struct impl;

 private:
  connection(executor_type executor, connection_config config, std::shared_ptr<logger> log);
  void start_connect(std::unique_ptr<detail::connect_op> op, std::string address,
                     steady_time deadline);
  void start_send(std::unique_ptr<detail::send_op> op, std::uint64_t id,
                  std::vector<std::uint8_t> request, steady_time deadline);
  void start_close(std::unique_ptr<detail::close_op> op, std::error_code pending_error);
  static void cancel_connect(const std::weak_ptr<impl>& w);
  static void cancel_request(const std::weak_ptr<impl>& w, std::uint64_t id);

  executor_type executor_;
  std::atomic<std::uint64_t> next_request_id_{1};
  std::shared_ptr<impl> impl_;
};

}  // namespace diampool
