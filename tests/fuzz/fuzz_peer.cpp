// libFuzzer target for the sans-I/O peer state machine: the input is a script of events (bytes
// from the peer, well-formed peer messages, time passing, sends, cancels, closes, transport
// loss, reconnects). Invariants, checked with a hard abort:
//   - every request gets exactly one outcome: refused by send(), cancelled by the caller, an
//     answer, or a failure; never two, never one for a request that was not issued;
//   - an answer carries the caller's own Hop-by-Hop id and is the answer to that request;
//   - Hop-by-Hop ids of pending requests are unique;
//   - once the machine is FAILED or CLOSED, nothing is pending and every issued request has
//     had its outcome;
//   - everything the machine writes is a well-formed Diameter message;
//   - after advance(now), next_deadline() is later than now.
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <span>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/peer_machine.hpp"

#define PEER_CHECK(cond)                       \
  do {                                         \
    if (!(cond)) ::peer_fail(#cond, __LINE__); \
  } while (0)

[[noreturn]] static void peer_fail(const char* what, int line) {
  std::fprintf(stderr, "fuzz_peer.cpp:%d: invariant failed: %s\n", line, what);
  std::fflush(stderr);
  __builtin_trap();
}

namespace {

using namespace diampool;
using namespace std::chrono_literals;

struct script {
  const std::uint8_t* p;
  const std::uint8_t* end;
  bool done() const { return p >= end; }
  std::uint8_t byte() { return p < end ? *p++ : 0; }
  std::uint32_t u16() { return std::uint32_t{byte()} << 8 | byte(); }
};

struct message_info {
  std::uint32_t command;
  std::uint32_t hbh;
  std::uint32_t e2e;
  bool request;
};

class harness {
 public:
  harness() : m_(config(), 1, 1'700'000'000) {}

  void run(script s) {
    while (!s.done())
      step(s);
    // Wind down: everything must end with an outcome.
    m_.close(now_);
    now_ += 1h;
    m_.advance(now_);
    drain();
    m_.connection_lost(now_, std::make_error_code(std::errc::connection_reset));
    drain();
    const peer_state st = m_.state();
    PEER_CHECK(st == peer_state::closed || st == peer_state::failed ||
               st == peer_state::disconnected || st == peer_state::reconnecting);
    PEER_CHECK(m_.pending_requests() == 0);
    for (const auto& [id, state] : issued_)
      PEER_CHECK(state != outcome::pending);
  }

 private:
  enum class outcome { pending, done };

  static peer_config config() {
    peer_config c;
    c.local.origin_host = "client.example.com";
    c.local.origin_realm = "example.com";
    c.local.auth_application_ids = {4};
    c.cer_timeout = 5s;
    c.dwr_interval = 30s;
    c.dwr_jitter = 2s;
    c.dwr_timeout = 10s;
    c.max_dwr_failures = 2;
    c.dpa_timeout = 2s;
    c.max_message_size = 4096;
    return c;
  }

  void step(script& s) {
    switch (s.byte() % 12) {
      case 0: {  // raw bytes from the peer
        const std::size_t n = std::min<std::size_t>(s.byte(), s.end - s.p);
        m_.receive(now_, {s.p, n});
        s.p += n;
        break;
      }
      case 1:
        answer_one(s, false);
        break;  // an answer to one of our requests
      case 2:
        answer_one(s, true);
        break;  // the same, for a DWR/CER/DPR we sent
      case 3: {
        now_ += std::chrono::milliseconds(s.u16() * 10);
        m_.advance(now_);
        // Everything due has been handled: the next deadline is in the future.
        if (auto next = m_.next_deadline()) PEER_CHECK(*next > now_);
        break;
      }
      case 4: {  // send a request
        const std::uint64_t id = next_id_++;
        const auto dl = now_ + std::chrono::milliseconds(s.u16());
        const auto req = request(static_cast<std::uint32_t>(id));
        if (m_.send(now_, id, req, dl)) {
          issued_[id] = outcome::done;  // refused: that is its outcome
        } else {
          issued_[id] = outcome::pending;
        }
        break;
      }
      case 5: {  // cancel one
        if (issued_.empty()) break;
        auto it = issued_.begin();
        std::advance(it, s.byte() % issued_.size());
        const bool was_pending = m_.cancel(it->first).has_value();
        PEER_CHECK(was_pending == (it->second == outcome::pending));
        it->second = outcome::done;
        break;
      }
      case 6:
        m_.close(now_);
        break;
      case 7:
        m_.connection_lost(now_, std::make_error_code(std::errc::connection_reset));
        break;
      case 8: {  // (re)connect and complete the handshake unless told otherwise
        const ip_address local = ip_address::v4({127, 0, 0, 1});
        m_.start_connecting(now_);
        m_.connected(now_, {&local, 1}, (s.byte() & 1) != 0);
        break;
      }
      case 9:
        peer_message(s);
        break;  // a request from the peer
      case 10:
        m_.start_reconnecting(now_);
        break;
      default: {  // a CEA for the outstanding CER, with a chosen Result-Code
        answer_one(s, true);
        break;
      }
    }
    drain();
  }

  std::vector<std::uint8_t> request(std::uint32_t caller_hbh) {
    message_header h;
    h.flags = cmd_flags::request | cmd_flags::proxiable;
    h.command_code = 272;
    h.application_id = 4;
    h.hop_by_hop = caller_hbh;
    std::vector<std::uint8_t> out;
    message_builder b(out, h);
    b.add_string(avp_code::session_id, "s").add_string(avp_code::origin_host, "c");
    b.finish();
    return out;
  }

  // Answers one message the machine wrote (an application request, or a CER/DWR/DPR).
  void answer_one(script& s, bool base) {
    std::vector<message_info> candidates;
    for (const auto& w : written_) {
      const bool is_base = w.command == command::capabilities_exchange ||
                           w.command == command::device_watchdog ||
                           w.command == command::disconnect_peer;
      if (w.request && is_base == base) candidates.push_back(w);
    }
    if (candidates.empty()) return;
    const message_info w = candidates[s.byte() % candidates.size()];
    message_header h;
    h.flags = (s.byte() & 1) != 0 ? cmd_flags::error : 0;
    h.command_code = w.command;
    h.hop_by_hop = w.hbh;
    h.end_to_end = w.e2e;
    std::vector<std::uint8_t> out;
    message_builder b(out, h);
    const std::uint32_t rc = (s.byte() & 3) == 0 ? 3010 : 2001;
    b.add_unsigned32(avp_code::result_code, rc)
        .add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net");
    if (w.command == command::capabilities_exchange) {
      b.add_unsigned32(avp_code::auth_application_id, (s.byte() & 1) != 0 ? 4 : 99);
    }
    b.finish();
    m_.receive(now_, out);
  }

  void peer_message(script& s) {
    static constexpr std::uint32_t codes[] = {command::device_watchdog, command::disconnect_peer,
                                              command::re_auth, command::capabilities_exchange};
    message_header h;
    h.flags = cmd_flags::request;
    h.command_code = codes[s.byte() % 4];
    h.hop_by_hop = s.u16();
    std::vector<std::uint8_t> out;
    message_builder b(out, h);
    b.add_string(avp_code::origin_host, "server.example.net")
        .add_string(avp_code::origin_realm, "example.net");
    if (h.command_code == command::disconnect_peer) {
      b.add_integer32(avp_code::disconnect_cause, s.byte() % 3);
    }
    b.finish();
    m_.receive(now_, out);
  }

  // Takes the machine's output and events and checks them.
  void drain() {
    std::vector<std::uint8_t> out;
    m_.take_output(out);
    frame_decoder d(1 << 20);
    std::span<const std::uint8_t> rest(out);
    while (!rest.empty()) {
      std::error_code ec;
      const auto r = d.put(rest, ec);
      PEER_CHECK(r.status == decode_status::message);
      PEER_CHECK(!check_avps(d.message(), dictionary::base()));
      const auto& hd = d.message().header();
      written_.push_back({hd.command_code, hd.hop_by_hop, hd.end_to_end, hd.is_request()});
      if (written_.size() > 64) written_.erase(written_.begin());
      rest = rest.subspan(r.consumed);
    }
    while (m_.has_events()) {
      peer_event e = m_.next_event();
      if (auto* a = std::get_if<answer_received>(&e)) {
        complete(a->request);
        std::error_code ec;
        const auto v = message_view::parse(a->message, ec);
        PEER_CHECK(!ec);
        PEER_CHECK(!v.header().is_request());
        PEER_CHECK(v.header().hop_by_hop == static_cast<std::uint32_t>(a->request));
      } else if (auto* f = std::get_if<request_failed>(&e)) {
        complete(f->request);
        PEER_CHECK(static_cast<bool>(f->error));
      }
    }
    if (m_.state() == peer_state::failed || m_.state() == peer_state::closed) {
      PEER_CHECK(m_.pending_requests() == 0);
      for (const auto& [id, st] : issued_)
        PEER_CHECK(st != outcome::pending);
    }
    std::size_t pending = 0;
    for (const auto& [id, st] : issued_)
      pending += st == outcome::pending ? 1 : 0;
    PEER_CHECK(pending == m_.pending_requests());
  }

  void complete(std::uint64_t id) {
    auto it = issued_.find(id);
    PEER_CHECK(it != issued_.end());
    PEER_CHECK(it->second == outcome::pending);
    it->second = outcome::done;
  }

  peer_machine m_;
  steady_time now_{std::chrono::hours(1)};
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, outcome> issued_;
  std::vector<message_info> written_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  harness h;
  h.run(script{data, data + size});
  return 0;
}
