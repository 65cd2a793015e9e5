// diampool: the timing decisions of one remote address in an address_client (sans-I/O).
//
// Whether a request for an address is sent, waits or fails at once; when the address should
// reconnect, close its connection for idleness or replace it at its maximum lifetime; and
// when it must next be looked at. Pure functions of a snapshot and the time: no clock is read,
// so every rule is tested with made-up times. The address_client applies them on each
// address's strand; the retry schedule (backoff.hpp) supplies next_attempt.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "diampool/peer_machine.hpp"

namespace diampool {

/// Where an address stands.
enum class address_phase : std::uint8_t {
  idle,          ///< No connection (never dialled, or closed for idleness).
  establishing,  ///< A dial and capabilities exchange is under way.
  open,          ///< Its connection carries requests.
  down,          ///< The last establishment failed or the connection was lost: backoff.
  closed,        ///< The client is closing.
};

/// The settings the decisions depend on.
struct address_timing {
  std::chrono::nanoseconds idle_timeout{0};  ///< 0: never close for idleness
  std::chrono::nanoseconds max_lifetime{0};  ///< 0: never replace
  bool reconnect_enabled = true;             ///< background reconnection of lost connections
};

/// What the decisions look at.
struct address_snapshot {
  address_phase phase = address_phase::idle;
  bool ever_open = false;         ///< it had an open connection once (so it is reconnected)
  bool replacing = false;         ///< a max-lifetime replacement is being established
  bool requests_pending = false;  ///< its open connection has requests awaiting answers
  std::size_t waiters = 0;        ///< requests queued for a connection
  std::size_t draining = 0;       ///< replaced or idle connections still closing
  steady_time earliest_waiter_deadline = steady_time::max();
  steady_time last_activity{};       ///< last application request or answer
  steady_time opened_at{};           ///< when its current connection opened
  steady_time replace_not_before{};  ///< after a failed replacement
  steady_time next_attempt{};        ///< earliest next establishment (retry schedule)
};

/// What a request arriving for an address that has no open connection does.
enum class admission : std::uint8_t {
  wait,       ///< queue it: an establishment is under way, or will start within its deadline
              ///< (the next attempt, or when the address's closing connection is gone)
  establish,  ///< queue it and start an establishment now
  fail_fast,  ///< the address cannot be up within the deadline: fail with the reason it is down
  refuse,     ///< the client is closing
};

admission admit(const address_snapshot& a, steady_time now, steady_time deadline) noexcept;

/// Whether a queued request of a down address may still be served: the next attempt comes
/// no later than its deadline.
inline bool can_wait(const address_snapshot& a, steady_time deadline) noexcept {
  return a.phase != address_phase::down || a.next_attempt <= deadline;
}

/// Whether the address should be re-established without a request asking for it (or
/// because queued requests are asking for it).
bool wants_reconnect(const address_timing& t, const address_snapshot& a) noexcept;

/// What is due at `now`, at most one thing, in this order of precedence.
enum class address_action : std::uint8_t {
  none,
  keep_alive,         ///< idle time passed while requests await answers: not idle, restart it
  close_idle,         ///< close the connection gracefully (idle timeout)
  stop_reconnecting,  ///< down and unused for the idle timeout: give up the address
  reconnect,          ///< start an establishment
  replace,            ///< max lifetime reached: establish a replacement (make-before-break)
};

address_action due(const address_timing& t, const address_snapshot& a, steady_time now) noexcept;

/// Whether the health check may forget the address (a later request starts afresh): nothing
/// is queued, closing or being replaced, and it is idle, or down with no reconnection wanted
/// and its backoff delay over (so forgetting it does not allow an earlier dial).
bool forgettable(const address_timing& t, const address_snapshot& a, steady_time now) noexcept;

/// When something may next be due (a queued request's deadline included): the time to set
/// the address's timer to, or steady_time::max() for never.
steady_time next_due(const address_timing& t, const address_snapshot& a) noexcept;

}  // namespace diampool
