#include "diampool/address_policy.hpp"

#include <algorithm>

namespace diampool {

using std::chrono::nanoseconds;

admission admit(const address_snapshot& a, steady_time now, steady_time deadline) noexcept {
  switch (a.phase) {
    case address_phase::idle:
      // A connection of this address still closing (idle timeout, DPR under way): a peer
      // may refuse a new one from the same Origin-Host until it is gone, so wait for it.
      return a.draining > 0 ? admission::wait : admission::establish;
    case address_phase::establishing:
    case address_phase::open:  // open but not ready: its loss is being reported
      return admission::wait;
    case address_phase::down:
      if (now >= a.next_attempt) return admission::establish;
      return a.next_attempt <= deadline ? admission::wait : admission::fail_fast;
    case address_phase::closed:
      return admission::refuse;
  }
  return admission::refuse;
}

bool wants_reconnect(const address_timing& t, const address_snapshot& a) noexcept {
  return a.phase == address_phase::down && (a.waiters > 0 || (t.reconnect_enabled && a.ever_open));
}

namespace {
bool idle_expired(const address_timing& t, const address_snapshot& a, steady_time now) {
  return t.idle_timeout > nanoseconds::zero() && a.waiters == 0 &&
         now - a.last_activity >= t.idle_timeout;
}

steady_time replace_at(const address_timing& t, const address_snapshot& a) {
  return std::max(a.opened_at + t.max_lifetime, a.replace_not_before);
}

bool replaceable(const address_timing& t, const address_snapshot& a) {
  return a.phase == address_phase::open && t.max_lifetime > nanoseconds::zero() && !a.replacing;
}
}  // namespace

address_action due(const address_timing& t, const address_snapshot& a, steady_time now) noexcept {
  switch (a.phase) {
    case address_phase::open:
      if (idle_expired(t, a, now)) {
        return a.requests_pending ? address_action::keep_alive : address_action::close_idle;
      }
      if (replaceable(t, a) && now >= replace_at(t, a)) return address_action::replace;
      return address_action::none;
    case address_phase::down:
      if (idle_expired(t, a, now)) return address_action::stop_reconnecting;
      if (wants_reconnect(t, a) && now >= a.next_attempt) return address_action::reconnect;
      return address_action::none;
    case address_phase::idle:
    case address_phase::establishing:
    case address_phase::closed:
      return address_action::none;
  }
  return address_action::none;
}

bool forgettable(const address_timing& t, const address_snapshot& a, steady_time now) noexcept {
  if (a.waiters > 0 || a.draining > 0 || a.replacing) return false;
  return a.phase == address_phase::idle ||
         (a.phase == address_phase::down && !wants_reconnect(t, a) && now >= a.next_attempt);
}

steady_time next_due(const address_timing& t, const address_snapshot& a) noexcept {
  if (a.phase == address_phase::closed) return steady_time::max();
  steady_time at = a.earliest_waiter_deadline;
  if (wants_reconnect(t, a)) at = std::min(at, a.next_attempt);
  const bool may_idle = a.phase == address_phase::open || a.phase == address_phase::down;
  if (may_idle && t.idle_timeout > nanoseconds::zero() && a.waiters == 0) {
    at = std::min(at, a.last_activity + t.idle_timeout);
  }
  if (replaceable(t, a)) at = std::min(at, replace_at(t, a));
  return at;
}

}  // namespace diampool
