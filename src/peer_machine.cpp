#include "diampool/peer_machine.hpp"

#include <algorithm>
#include <cstring>

#include "diampool/builder.hpp"
#include "diampool/detail/endian.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/error.hpp"

namespace diampool {

std::string_view to_string(peer_state s) noexcept {
  switch (s) {
    case peer_state::disconnected:
      return "DISCONNECTED";
    case peer_state::connecting:
      return "CONNECTING";
    case peer_state::cer_sent:
      return "CER_SENT";
    case peer_state::open:
      return "OPEN";
    case peer_state::dwr_sent:
      return "DWR_SENT";
    case peer_state::closing:
      return "CLOSING";
    case peer_state::failed:
      return "FAILED";
    case peer_state::reconnecting:
      return "RECONNECTING";
    case peer_state::closed:
      return "CLOSED";
  }
  return "?";
}

std::string_view to_string(watchdog_state s) noexcept {
  switch (s) {
    case watchdog_state::okay:
      return "OKAY";
    case watchdog_state::suspect:
      return "SUSPECT";
    case watchdog_state::down:
      return "DOWN";
    case watchdog_state::reopen:
      return "REOPEN";
  }
  return "?";
}

std::error_code peer_config::validate(std::string* field) const {
  auto bad = [&](const char* name) {
    if (field != nullptr) *field = name;
    return std::error_code(error::invalid_config);
  };
  using std::chrono::nanoseconds;
  if (local.origin_host.empty()) return bad("origin_host");
  if (local.origin_realm.empty()) return bad("origin_realm");
  if (local.product_name.empty()) return bad("product_name");
  if (cer_timeout <= nanoseconds::zero()) return bad("cer_timeout");
  if (dwr_interval <= nanoseconds::zero()) return bad("dwr_interval");
  if (dwr_jitter < nanoseconds::zero() || dwr_jitter >= dwr_interval) return bad("dwr_jitter");
  if (dwr_timeout <= nanoseconds::zero()) return bad("dwr_timeout");
  if (max_dwr_failures == 0) return bad("max_dwr_failures");
  if (dpa_timeout <= nanoseconds::zero()) return bad("dpa_timeout");
  if (drain_timeout < nanoseconds::zero()) return bad("drain_timeout");
  if (max_message_size < header_size || max_message_size > max_length_field) {
    return bad("max_message_size");
  }
  for (const auto& v : local.vendor_specific_application_ids) {
    if (v.vendor_id == 0 || (v.auth_application_id == 0) == (v.acct_application_id == 0)) {
      return bad("vendor_specific_application_ids");
    }
  }
  if (field != nullptr) field->clear();
  return {};
}

peer_machine::peer_machine(peer_config config, std::uint64_t seed, std::uint64_t unix_seconds)
    : peer_machine(std::make_shared<const peer_config>(std::move(config)), seed, unix_seconds) {}

peer_machine::peer_machine(std::shared_ptr<const peer_config> config, std::uint64_t seed,
                           std::uint64_t unix_seconds)
    : config_ptr_(std::move(config)),
      config_(*config_ptr_),
      rng_(seed),
      decoder_(config_.max_message_size),
      hbh_next_(static_cast<std::uint32_t>(rng_())),
      // RFC 6733 section 3: high 12 bits from the low bits of the time, low 20 bits random.
      e2e_next_(static_cast<std::uint32_t>(((unix_seconds & 0xFFF) << 20) | (rng_() & 0xFFFFF))) {}

void peer_machine::set_state(peer_state s) {
  if (s == state_) return;
  events_.emplace_back(state_changed{state_, s});
  state_ = s;
}

peer_event peer_machine::next_event() {
  peer_event e = std::move(events_[events_head_++]);
  if (events_head_ == events_.size()) {
    events_.clear();
    events_head_ = 0;
  }
  return e;
}

void peer_machine::take_output(std::vector<std::uint8_t>& into) noexcept {
  into.clear();
  out_.swap(into);
}

std::uint32_t peer_machine::allocate_hop_by_hop() {
  for (;;) {
    const std::uint32_t id = hbh_next_++;
    if (id == 0 || id == cer_hbh_ || id == dwr_hbh_ || id == dpr_hbh_) continue;
    if (pending_.free_for(id)) return id;  // (hence no pending request has it)
  }
}

std::chrono::nanoseconds peer_machine::draw_tw() {
  if (config_.dwr_jitter <= std::chrono::nanoseconds::zero()) return config_.dwr_interval;
  std::uniform_int_distribution<std::int64_t> d(-config_.dwr_jitter.count(),
                                                config_.dwr_jitter.count());
  return config_.dwr_interval + std::chrono::nanoseconds(d(rng_));
}

std::optional<steady_time> peer_machine::next_deadline() const noexcept {
  std::optional<steady_time> t;
  auto consider = [&](steady_time x) {
    if (!t || x < *t) t = x;
  };
  switch (state_) {
    case peer_state::cer_sent:
      consider(cer_deadline_);
      break;
    case peer_state::closing:
      consider(draining_ ? drain_deadline_ : dpa_deadline_);
      break;
    case peer_state::open:
    case peer_state::dwr_sent:
      consider(dwr_hbh_ != 0 ? dwr_deadline_ : watchdog_due());
      break;
    default:
      break;
  }
  if (!deadlines_.empty()) consider(deadlines_.top().when);
  return t;
}

void peer_machine::count_output(std::size_t before) {
  counters_.messages_sent++;
  counters_.bytes_sent += out_.size() - before;
}

// ---------------------------------------------------------------------------------------------
// Transport events

void peer_machine::start_connecting(steady_time /*now*/) {
  decoder_.reset();
  out_.clear();
  handshake_.reset();
  peer_cause_.reset();
  close_reason_.clear();
  peer_ = {};
  cer_hbh_ = dwr_hbh_ = dpr_hbh_ = 0;
  dwr_failures_ = 0;
  draining_ = dpa_received_ = false;
  set_state(peer_state::connecting);
}

void peer_machine::start_reconnecting(steady_time /*now*/) {
  set_state(peer_state::reconnecting);
}

void peer_machine::connected(steady_time now, std::span<const ip_address> local, bool reopen) {
  if (state_ != peer_state::connecting) start_connecting(now);
  local_addresses_.assign(local.begin(), local.end());
  reopen_pending_ = reopen;
  write_cer();
  cer_deadline_ = now + config_.cer_timeout;
  set_state(peer_state::cer_sent);
}

void peer_machine::write_cer() {
  const std::size_t before = out_.size();
  cer_hbh_ = allocate_hop_by_hop();
  const capabilities& c = config_.local;
  message_builder b = base_request(command::capabilities_exchange, cer_hbh_);
  for (const auto& a : c.host_ip_addresses.empty() ? local_addresses_ : c.host_ip_addresses) {
    b.add_address(avp_code::host_ip_address, a);
  }
  b.add_unsigned32(avp_code::vendor_id, c.vendor_id)
      .add_string(avp_code::product_name, c.product_name, 0);
  if (c.origin_state_id) b.add_unsigned32(avp_code::origin_state_id, *c.origin_state_id);
  for (auto v : c.supported_vendor_ids)
    b.add_unsigned32(avp_code::supported_vendor_id, v);
  for (auto a : c.auth_application_ids)
    b.add_unsigned32(avp_code::auth_application_id, a);
  for (auto s : c.inband_security_ids)
    b.add_unsigned32(avp_code::inband_security_id, s);
  for (auto a : c.acct_application_ids)
    b.add_unsigned32(avp_code::acct_application_id, a);
  for (const auto& v : c.vendor_specific_application_ids) {
    auto g = b.begin_group(avp_code::vendor_specific_application_id);
    b.add_unsigned32(avp_code::vendor_id, v.vendor_id);
    if (v.auth_application_id != 0) {
      b.add_unsigned32(avp_code::auth_application_id, v.auth_application_id);
    }
    if (v.acct_application_id != 0) {
      b.add_unsigned32(avp_code::acct_application_id, v.acct_application_id);
    }
    b.end_group(g);
  }
  if (c.firmware_revision) b.add_unsigned32(avp_code::firmware_revision, *c.firmware_revision, 0);
  b.finish();
  count_output(before);
}

message_builder peer_machine::base_request(std::uint32_t command_code, std::uint32_t hop_by_hop) {
  message_header h;
  h.flags = cmd_flags::request;
  h.command_code = command_code;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = next_end_to_end();
  message_builder b(out_, h);
  b.add_string(avp_code::origin_host, config_.local.origin_host)
      .add_string(avp_code::origin_realm, config_.local.origin_realm);
  return b;
}

void peer_machine::write_dwr(steady_time now) {
  const std::size_t before = out_.size();
  dwr_hbh_ = allocate_hop_by_hop();
  message_builder b = base_request(command::device_watchdog, dwr_hbh_);
  if (config_.local.origin_state_id) {
    b.add_unsigned32(avp_code::origin_state_id, *config_.local.origin_state_id);
  }
  b.finish();
  count_output(before);
  counters_.dwr_sent++;
  last_dwr_sent_ = now;
  dwr_deadline_ = now + config_.dwr_timeout;
  tw_ = draw_tw();
  set_state(peer_state::dwr_sent);
}

void peer_machine::write_dpr(steady_time now) {
  const std::size_t before = out_.size();
  dpr_hbh_ = allocate_hop_by_hop();
  message_builder b = base_request(command::disconnect_peer, dpr_hbh_);
  b.add_integer32(avp_code::disconnect_cause, config_.disconnect_cause);
  b.finish();
  count_output(before);
  dpa_deadline_ = now + config_.dpa_timeout;
}

void peer_machine::write_answer(const message_view& request, std::uint32_t result_code,
                                bool error_bit) {
  const std::size_t before = out_.size();
  message_header h = request.header();
  h.flags = static_cast<std::uint8_t>((h.flags & cmd_flags::proxiable) |
                                      (error_bit ? cmd_flags::error : 0));
  message_builder b(out_, h);
  if (auto sid = request.find(avp_code::session_id)) b.add_avp(*sid);
  b.add_unsigned32(avp_code::result_code, result_code)
      .add_string(avp_code::origin_host, config_.local.origin_host)
      .add_string(avp_code::origin_realm, config_.local.origin_realm);
  if (config_.local.origin_state_id && request.header().command_code == command::device_watchdog) {
    b.add_unsigned32(avp_code::origin_state_id, *config_.local.origin_state_id);
  }
  b.finish();
  count_output(before);
}

void peer_machine::receive(steady_time now, std::span<const std::uint8_t> bytes) {
  last_input_ = now;
  counters_.bytes_received += bytes.size();
  while (!bytes.empty() && state_ != peer_state::failed && state_ != peer_state::closed) {
    std::error_code ec;
    const decode_result r = decoder_.put(bytes, ec);
    bytes = bytes.subspan(r.consumed);
    if (r.status == decode_status::error) {
      finish(peer_state::failed, ec, error::connection_closed);
      return;
    }
    if (r.status == decode_status::need_more) return;
    const message_view& msg = decoder_.message();
    if (auto bad = check_avps(msg, dictionary::base())) {
      finish(peer_state::failed, bad, error::connection_closed);
      return;
    }
    counters_.messages_received++;
    last_received_ = now;  // any message is evidence of life (RFC 3539)
    handle(now, msg);
  }
}

void peer_machine::handle(steady_time now, const message_view& msg) {
  if (state_ == peer_state::cer_sent) {
    handle_cea(now, msg);
    return;
  }
  if (watchdog_ == watchdog_state::suspect) {
    watchdog_ = watchdog_state::okay;
    dwr_failures_ = 0;
  }
  if (msg.header().is_request()) {
    handle_request(now, msg);
  } else {
    handle_answer(msg);
  }
}

namespace {

std::optional<std::uint32_t> u32_of(const message_view& msg, std::uint32_t code) {
  if (auto a = msg.find(code)) {
    std::error_code ec;
    const auto v = a->as_unsigned32(ec);
    if (!ec) return v;
  }
  return std::nullopt;
}

capabilities read_capabilities(const message_view& msg) {
  capabilities c;
  c.product_name.clear();
  std::error_code ec;
  for (const avp& a : msg.avps()) {
    switch (a.code()) {
      case avp_code::origin_host:
        c.origin_host = a.as_string();
        break;
      case avp_code::origin_realm:
        c.origin_realm = a.as_string();
        break;
      case avp_code::product_name:
        c.product_name = a.as_string();
        break;
      case avp_code::host_ip_address:
        if (auto ip = a.as_address(ec).ip(); ip && !ec) c.host_ip_addresses.push_back(*ip);
        break;
      case avp_code::vendor_id:
        c.vendor_id = a.as_unsigned32(ec);
        break;
      case avp_code::origin_state_id:
        c.origin_state_id = a.as_unsigned32(ec);
        break;
      case avp_code::firmware_revision:
        c.firmware_revision = a.as_unsigned32(ec);
        break;
      case avp_code::supported_vendor_id:
        c.supported_vendor_ids.push_back(a.as_unsigned32(ec));
        break;
      case avp_code::auth_application_id:
        c.auth_application_ids.push_back(a.as_unsigned32(ec));
        break;
      case avp_code::acct_application_id:
        c.acct_application_ids.push_back(a.as_unsigned32(ec));
        break;
      case avp_code::inband_security_id:
        c.inband_security_ids.push_back(a.as_unsigned32(ec));
        break;
      case avp_code::vendor_specific_application_id: {
        vendor_application v;
        for (const avp& k : a.children()) {
          if (k.code() == avp_code::vendor_id) v.vendor_id = k.as_unsigned32(ec);
          if (k.code() == avp_code::auth_application_id)
            v.auth_application_id = k.as_unsigned32(ec);
          if (k.code() == avp_code::acct_application_id)
            v.acct_application_id = k.as_unsigned32(ec);
        }
        c.vendor_specific_application_ids.push_back(v);
        break;
      }
      default:
        break;
    }
  }
  return c;
}

// The application ids a CER/CEA advertises, vendor-specific ones included.
std::vector<std::uint32_t> applications_of(const capabilities& c) {
  std::vector<std::uint32_t> ids = c.auth_application_ids;
  ids.insert(ids.end(), c.acct_application_ids.begin(), c.acct_application_ids.end());
  for (const auto& v : c.vendor_specific_application_ids) {
    if (v.auth_application_id != 0) ids.push_back(v.auth_application_id);
    if (v.acct_application_id != 0) ids.push_back(v.acct_application_id);
  }
  return ids;
}

bool have_common_application(const capabilities& ours, const capabilities& theirs) {
  const auto mine = applications_of(ours);
  if (mine.empty()) return true;  // base protocol only: nothing to agree on
  const auto peer = applications_of(theirs);
  for (auto id : peer) {
    if (id == application::relay) return true;
    if (std::find(mine.begin(), mine.end(), id) != mine.end()) return true;
  }
  return std::find(mine.begin(), mine.end(), application::relay) != mine.end() && !peer.empty();
}

}  // namespace

void peer_machine::fail_handshake(std::uint32_t result_code, std::string reason,
                                  const message_view* cea) {
  handshake_failure f;
  f.result_code = result_code;
  f.reason = std::move(reason);
  if (cea != nullptr) {
    if (auto m = cea->find(avp_code::error_message)) f.error_message = m->as_string();
    if (auto fa = cea->find(avp_code::failed_avp)) {
      f.failed_avp.assign(fa->data().begin(), fa->data().end());
    }
  }
  handshake_ = std::move(f);
  cer_hbh_ = 0;
  finish(peer_state::failed, error::handshake_failed, error::connection_closed);
}

void peer_machine::handle_cea(steady_time now, const message_view& msg) {
  const message_header& h = msg.header();
  if (h.is_request() || h.command_code != command::capabilities_exchange ||
      h.hop_by_hop != cer_hbh_) {
    fail_handshake(0, "unexpected message while waiting for the CEA", nullptr);
    return;
  }
  const auto rc = u32_of(msg, avp_code::result_code);
  if (!rc) {
    fail_handshake(0, "CEA without Result-Code", &msg);
    return;
  }
  if (*rc != result_code::success) {
    fail_handshake(*rc, "CEA Result-Code " + std::to_string(*rc), &msg);
    return;
  }
  peer_ = read_capabilities(msg);
  if (!have_common_application(config_.local, peer_)) {
    fail_handshake(result_code::no_common_application, "no common application", &msg);
    return;
  }
  cer_hbh_ = 0;
  last_received_ = now;
  last_dwr_sent_ = steady_time{};
  tw_ = draw_tw();
  dwr_failures_ = 0;
  set_state(peer_state::open);
  if (reopen_pending_ && config_.reopen_dwas > 0) {
    watchdog_ = watchdog_state::reopen;
    reopen_count_ = 0;
    write_dwr(now);
  } else {
    watchdog_ = watchdog_state::okay;
  }
}

void peer_machine::handle_request(steady_time now, const message_view& msg) {
  switch (msg.header().command_code) {
    case command::device_watchdog:
      counters_.dwr_received++;
      write_answer(msg, result_code::success, false);
      return;
    case command::disconnect_peer: {
      std::error_code ec;
      if (auto cause = msg.find(avp_code::disconnect_cause)) {
        const auto v = cause->as_integer32(ec);
        if (!ec) peer_cause_ = v;
      }
      if (!peer_cause_) peer_cause_ = disconnect_cause::rebooting;
      write_answer(msg, result_code::success, false);
      finish(peer_state::closed, error::disconnected_by_peer, error::connection_closed);
      return;
    }
    default:
      break;
  }
  (void)now;
  counters_.peer_requests++;
  if (config_.handle_peer_requests) {
    const auto b = msg.bytes();
    events_.emplace_back(peer_request{{b.begin(), b.end()}});
  } else {
    write_answer(msg, result_code::command_unsupported, true);
  }
}

void peer_machine::handle_answer(const message_view& msg) {
  const std::uint32_t hbh = msg.header().hop_by_hop;
  if (hbh != 0 && hbh == dwr_hbh_ && msg.header().command_code == command::device_watchdog) {
    dwr_hbh_ = 0;
    counters_.dwa_received++;
    if (watchdog_ == watchdog_state::reopen) {
      if (++reopen_count_ < config_.reopen_dwas) {
        write_dwr(last_received_);
        return;
      }
      watchdog_ = watchdog_state::okay;
    }
    if (state_ == peer_state::dwr_sent) set_state(peer_state::open);
    return;
  }
  if (hbh != 0 && hbh == dpr_hbh_ && msg.header().command_code == command::disconnect_peer) {
    dpr_hbh_ = 0;
    dpa_received_ = true;
    // Some peers (freeDiameter) put the DPA before the answers still owed: wait for those,
    // within dpa_timeout.
    if (pending_.empty()) finish(peer_state::closed, {}, pending_close_error_);
    return;
  }
  pending_entry* it = pending_.find(hbh);
  if (it == nullptr) {
    counters_.unmatched_answers++;
    events_.emplace_back(unmatched_answer{hbh, msg.header().command_code});
    return;
  }
  if (it->command_code != msg.header().command_code || it->end_to_end != msg.header().end_to_end) {
    // Not this request's answer, whatever its Hop-by-Hop id says: the request waits on.
    counters_.unmatched_answers++;
    events_.emplace_back(unmatched_answer{hbh, msg.header().command_code, true});
    return;
  }
  const pending_entry p = *it;
  forget(*it);
  counters_.answers_received++;
  const auto b = msg.bytes();
  answer_received a{p.request, copy_to_buffer(b), p.context};
  detail::store_u32(a.message.data() + 12, p.caller_hop_by_hop);
  events_.emplace_back(std::move(a));
  if (state_ == peer_state::closing) closing_progress(last_received_);
}

void peer_machine::closing_progress(steady_time now) {
  if (state_ != peer_state::closing) return;
  if (draining_ && (pending_.empty() || now >= drain_deadline_)) {
    draining_ = false;
    write_dpr(now);
  } else if (!draining_ && (now >= dpa_deadline_ || (dpa_received_ && pending_.empty()))) {
    dpr_hbh_ = 0;
    finish(peer_state::closed, {}, pending_close_error_);
  }
}

void peer_machine::advance(steady_time now) {
  last_input_ = now;
  // Request deadlines first: a request whose deadline passed gets timed_out even if the
  // connection fails in the same step.
  while (!deadlines_.empty() && deadlines_.top().when <= now) {
    pending_entry& e = *deadlines_.top().entry;  // the heap and the table hold the same requests
    deadlines_.pop();
    const std::uint64_t request = e.request;
    void* const context = e.context;
    forget(e, true);
    counters_.requests_timed_out++;
    events_.emplace_back(request_failed{request, error::timed_out, context});
  }
  switch (state_) {
    case peer_state::cer_sent:
      if (now >= cer_deadline_) fail_handshake(0, "no CEA within cer_timeout", nullptr);
      break;
    case peer_state::closing:
      closing_progress(now);
      break;
    case peer_state::open:
    case peer_state::dwr_sent:
      if (dwr_hbh_ != 0 && now >= dwr_deadline_) {
        // The DWR went unanswered.
        dwr_hbh_ = 0;
        counters_.dwr_failures++;
        if (++dwr_failures_ >= config_.max_dwr_failures) {
          watchdog_ = watchdog_state::down;
          finish(peer_state::failed, error::watchdog_timeout, error::connection_closed);
          break;
        }
        if (watchdog_ != watchdog_state::reopen) watchdog_ = watchdog_state::suspect;
        set_state(peer_state::open);
        // In REOPEN the probing goes on back to back; otherwise the next DWR waits for Tw
        // after the last one (or after the last message received, if later).
        if (watchdog_ == watchdog_state::reopen) write_dwr(now);
      }
      if (dwr_hbh_ == 0 && now >= watchdog_due()) write_dwr(now);
      break;
    default:
      break;
  }
}

void peer_machine::connection_lost(steady_time /*now*/, std::error_code reason) {
  switch (state_) {
    case peer_state::failed:
    case peer_state::closed:
    case peer_state::disconnected:
    case peer_state::reconnecting:
      return;
    case peer_state::cer_sent:
      fail_handshake(0, "connection closed before the CEA: " + reason.message(), nullptr);
      return;
    case peer_state::closing:
      // The peer may close right after its DPA (or instead of it).
      finish(peer_state::closed, {}, pending_close_error_);
      return;
    default:
      finish(peer_state::failed, reason, error::connection_closed);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// User events

std::error_code peer_machine::send(steady_time /*now*/, std::uint64_t request,
                                   std::span<const std::uint8_t> message, steady_time deadline,
                                   void* context) {
  if (!ready()) return error::not_open;
  std::error_code ec;
  if (!message_view::check(message, ec, config_.max_message_size)) return error::invalid_request;
  const message_header h = message_header::read(message.data());
  if (!h.is_request()) return error::invalid_request;
  if (pending_.find_request(request) != nullptr) return error::invalid_request;
  // All or nothing: an allocation that fails leaves neither the bytes nor an entry (the
  // caller keeps `context` and sees the exception).
  if (pending_.reserve_one()) {
    // The entries moved: the deadline heap points at them.
    pending_.for_each([&](pending_entry& e) { deadlines_.repoint(e.heap_pos, &e); });
  }
  const std::uint32_t hbh = allocate_hop_by_hop();
  const std::size_t before = out_.size();
  out_.insert(out_.end(), message.begin(), message.end());
  std::uint8_t* p = out_.data() + before;
  detail::store_u32(p + 12, hbh);
  std::uint32_t e2e = h.end_to_end;
  if (e2e == 0) {
    e2e = next_end_to_end();
    detail::store_u32(p + 16, e2e);
  }
  pending_entry& e = pending_.insert({request, hbh, h.hop_by_hop, h.command_code, e2e, 0, context});
  try {
    deadlines_.push(deadline, &e);
  } catch (...) {
    pending_.erase(e);
    out_.resize(before);
    throw;
  }
  count_output(before);
  counters_.requests_sent++;
  return {};
}

void peer_machine::recycle(std::vector<std::uint8_t>&& buffer) noexcept {
  // Room for a spare for each answer still to come (the most the answers can use), and never
  // for fewer than max_spare_buffers.
  if (buffer.capacity() == 0 || buffer.capacity() > max_spare_buffer_size ||
      spare_buffers_.size() >= std::max(max_spare_buffers, pending_.size())) {
    return;
  }
  try {
    spare_buffers_.push_back(std::move(buffer));
  } catch (...) {  // no room for one more: the buffer is freed by its owner, as without this
  }
}

std::vector<std::uint8_t> peer_machine::copy_to_buffer(std::span<const std::uint8_t> bytes) {
  if (spare_buffers_.empty()) return {bytes.begin(), bytes.end()};
  std::vector<std::uint8_t> v = std::move(spare_buffers_.back());
  spare_buffers_.pop_back();
  v.assign(bytes.begin(), bytes.end());
  return v;
}

void peer_machine::drop_spares() noexcept {
  std::vector<std::vector<std::uint8_t>>().swap(spare_buffers_);
  // A burst of answers grew the event queue; room for a few events stays.
  if (events_.empty() && events_.capacity() > 16) std::vector<peer_event>().swap(events_);
  deadlines_.release();  // empty here: its capacity goes
  pending_.release();
}

void peer_machine::forget(pending_entry& e, bool deadline_erased) {
  if (!deadline_erased) deadlines_.remove(e.heap_pos);
  pending_.erase(e);
}

void peer_machine::trim() noexcept {
  if (pending_.empty()) drop_spares();
}

std::optional<void*> peer_machine::cancel(std::uint64_t request) {
  pending_entry* const p = pending_.find_request(request);
  if (p == nullptr) return std::nullopt;
  void* const context = p->context;
  forget(*p);
  counters_.requests_cancelled++;
  if (state_ == peer_state::closing && pending_.empty()) closing_progress(last_input_);
  return context;
}

std::error_code peer_machine::send_answer(std::span<const std::uint8_t> answer) {
  if (!is_active(state_) && state_ != peer_state::closing) return error::not_open;
  std::error_code ec;
  const message_view m = message_view::parse(answer, ec, config_.max_message_size);
  if (ec || m.header().is_request()) return error::invalid_request;
  const std::size_t before = out_.size();
  out_.insert(out_.end(), answer.begin(), answer.end());
  count_output(before);
  return {};
}

void peer_machine::close(steady_time now, std::error_code pending_error) {
  last_input_ = now;
  pending_close_error_ = pending_error;
  if (is_active(state_)) {
    dwr_hbh_ = 0;
    set_state(peer_state::closing);
    dpa_received_ = false;
    if (!pending_.empty() && config_.drain_timeout > std::chrono::nanoseconds::zero()) {
      // Let the answers still owed arrive before saying goodbye (RFC 6733 section 5.4).
      draining_ = true;
      drain_deadline_ = now + config_.drain_timeout;
    } else {
      write_dpr(now);
    }
    return;
  }
  if (state_ == peer_state::closing || state_ == peer_state::closed) return;
  finish(peer_state::closed, {}, pending_error);
}

void peer_machine::fail_all_pending(std::error_code ec) {
  // In request order of deadlines, so outcomes are deterministic for tests.
  deadlines_.drain_in_order([&](const auto& d) {
    events_.emplace_back(request_failed{d.entry->request, ec, d.entry->context});
  });
  pending_.clear();
  drop_spares();
}

void peer_machine::finish(peer_state to, std::error_code reason, std::error_code pending_error) {
  fail_all_pending(pending_error);
  close_reason_ = reason;
  cer_hbh_ = dwr_hbh_ = dpr_hbh_ = 0;
  if (to == peer_state::failed && watchdog_ != watchdog_state::down) {
    watchdog_ = watchdog_state::down;
  }
  set_state(to);
  events_.emplace_back(close_transport{reason});
}

}  // namespace diampool
