// Interop: the diampool codec against freeDiameter 1.2.1 (Debian 12), over plain blocking
// sockets.
//
// No diampool connection layer here: a tiny blocking client (POSIX sockets, SO_RCVTIMEO and
// SO_SNDTIMEO, poll() with a deadline for every read, so no case can hang) builds every
// message with message_builder and splits the byte stream with frame_decoder. What it proves:
// bytes the codec writes are accepted by an implementation we did not write, and bytes that
// implementation writes are decoded by the codec.
//
// The binary only works inside tests/interop/freediameter/run.sh, which starts freeDiameter in
// a private network namespace and exports DIAMPOOL_FD_ADDRESS, DIAMPOOL_FD_HOST and
// DIAMPOOL_FD_REALM. Without them every case FAILS (it does not skip): a silently skipped
// interop test is worse than none.
//
// Each case uses its own Origin-Host (all under *.example.com, which run.sh's acl_wl allows)
// so that a connection freeDiameter has not finished tearing down cannot turn the next case's
// CER into a 5012 duplicate.
//
// What freeDiameter 1.2.1 (Debian 12 freediameterd 1.2.1-8+b1, configured by run.sh: TLS off,
// TwTimer 6, relay on, acl_wl `ALLOW_IPSEC *.example.com`) was seen to do; each case below
// holds it to one of these and says more:
//   - CER -> CEA 2001 with Host-IP-Address 198.18.0.1 (its non-loopback address, never the
//     one dialled), Vendor-Id 0, Product-Name "freeDiameter", Firmware-Revision 10201 and only
//     Auth-Application-Id 0xFFFFFFFF (relay); no common-application check.
//   - DWR -> DWA 2001 (with Origin-State-Id). Its own DWR comes 4..8 s after the last message
//     it received (Tw - 2 s + random 0..4 s); a DWA with Result-Code/Origin-Host/Origin-Realm
//     satisfies it.
//   - 100 pipelined requests of an unserved application -> 100 answers 3002 in request order,
//     flags E only (the request's P flag is not copied), Session-Id echoed.
//   - DPR -> DPA 2001, then it closes the socket itself at once.
//   - Origin-Host not allowed by acl_wl -> CEA 3010 with the E flag, then it closes.
//   - Origin-Host already connected -> CEA 5012 without the E flag, then it closes that
//     connection; the first one stays up.
//   - CER without Origin-Host -> no answer, the connection is closed within milliseconds.
//   - Same Origin-Host right after a DPR close -> 2001 at once. Right after an abrupt close ->
//     5012 or a close without CEA for a few ms, then 2001 followed at once by three DWRs
//     (RFC 3539 REOPEN).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/message.hpp"
#include "diampool/print.hpp"

namespace diampool {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Upper bound for anything that must happen promptly (reached only when a case fails).
constexpr auto must_happen = 5000ms;

constexpr std::uint8_t request_proxiable =
    static_cast<std::uint8_t>(cmd_flags::request | cmd_flags::proxiable);

// An application no freeDiameter extension loaded by run.sh serves (these are test_app's ids;
// test_app is not in Debian's binary packages).
constexpr std::uint32_t unserved_application = 16777215;
constexpr std::uint32_t unserved_command = 16777214;

void note(const std::string& fact) {
  std::printf("[   FACT   ] %s\n", fact.c_str());
  std::fflush(stdout);
}

// ---- where freeDiameter is ---------------------------------------------------------------------

struct fd_env {
  sockaddr_storage address{};
  socklen_t address_size = 0;
  std::string address_text;
  std::string host;
  std::string realm;
};

bool parse_address(const std::string& text, fd_env& env) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (*end != '\0' || port == 0 || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1) return false;
    std::memcpy(&env.address, &a, sizeof a);
    env.address_size = sizeof a;
    return true;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return false;
  std::memcpy(&env.address, &a, sizeof a);
  env.address_size = sizeof a;
  return true;
}

// ---- messages ----------------------------------------------------------------------------------

/// A received message, copied out of the decoder.
struct owned_message {
  message_header header;
  bytes data;

  message_view view() const {
    std::error_code ec;
    return message_view::parse(data, ec);
  }
  std::optional<std::uint32_t> u32(std::uint32_t code) const {
    const auto a = view().find(code);
    if (!a) return std::nullopt;
    std::error_code ec;
    const auto v = a->as_unsigned32(ec);
    if (ec) return std::nullopt;
    return v;
  }
  std::optional<std::string> str(std::uint32_t code) const {
    const auto a = view().find(code);
    if (!a) return std::nullopt;
    return std::string(a->as_string());
  }
  bool is(std::uint32_t command_code, bool request) const {
    return header.command_code == command_code && header.is_request() == request;
  }
  std::string text() const { return to_text(view()); }
};

struct cer_fields {
  std::string origin_host = "client.example.com";  // empty: left out
  std::string origin_realm = "example.com";
  ip_address host_ip = ip_address::v4({127, 0, 0, 1});
  std::uint32_t auth_application_id = application::credit_control;
};

bytes make_cer(const cer_fields& f, std::uint32_t hop_by_hop, std::uint32_t end_to_end) {
  bytes out;
  message_header h{};
  h.flags = cmd_flags::request;
  h.command_code = command::capabilities_exchange;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = end_to_end;
  message_builder b(out, h);
  if (!f.origin_host.empty()) b.add_string(avp_code::origin_host, f.origin_host);
  b.add_string(avp_code::origin_realm, f.origin_realm)
      .add_address(avp_code::host_ip_address, f.host_ip)
      .add_unsigned32(avp_code::vendor_id, 0)
      .add_string(avp_code::product_name, "diampool-interop", 0)
      .add_unsigned32(avp_code::origin_state_id, 1)
      .add_unsigned32(avp_code::auth_application_id, f.auth_application_id)
      .add_unsigned32(avp_code::firmware_revision, 1, 0);
  b.finish();
  return out;
}

void add_origin(message_builder& b, std::string_view origin_host) {
  b.add_string(avp_code::origin_host, origin_host)
      .add_string(avp_code::origin_realm, "example.com");
}

bytes make_dwr(std::string_view origin_host, std::uint32_t hop_by_hop, std::uint32_t end_to_end) {
  bytes out;
  message_header h{};
  h.flags = cmd_flags::request;
  h.command_code = command::device_watchdog;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = end_to_end;
  message_builder b(out, h);
  add_origin(b, origin_host);
  b.add_unsigned32(avp_code::origin_state_id, 1);
  b.finish();
  return out;
}

/// The answer to a request from freeDiameter (DWA, or DPA): same command, ids copied.
bytes make_answer(const owned_message& request, std::string_view origin_host) {
  bytes out;
  message_header h{};
  h.flags = 0;
  h.command_code = request.header.command_code;
  h.application_id = request.header.application_id;
  h.hop_by_hop = request.header.hop_by_hop;
  h.end_to_end = request.header.end_to_end;
  message_builder b(out, h);
  b.add_unsigned32(avp_code::result_code, result_code::success);
  add_origin(b, origin_host);
  b.finish();
  return out;
}

bytes make_dpr(std::string_view origin_host, std::uint32_t hop_by_hop, std::uint32_t end_to_end) {
  bytes out;
  message_header h{};
  h.flags = cmd_flags::request;
  h.command_code = command::disconnect_peer;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = end_to_end;
  message_builder b(out, h);
  add_origin(b, origin_host);
  b.add_integer32(avp_code::disconnect_cause, disconnect_cause::rebooting);
  b.finish();
  return out;
}

/// Appends one request of the unserved application to `batch`.
void append_app_request(bytes& batch, std::string_view origin_host, std::string_view dest_realm,
                        std::uint32_t hop_by_hop, std::uint32_t end_to_end,
                        std::string_view session_id) {
  message_header h{};
  h.flags = request_proxiable;
  h.command_code = unserved_command;
  h.application_id = unserved_application;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = end_to_end;
  message_builder b(batch, h);
  b.add_string(avp_code::session_id, session_id);
  add_origin(b, origin_host);
  b.add_string(avp_code::destination_realm, dest_realm)
      .add_unsigned32(avp_code::auth_application_id, unserved_application);
  b.finish();
}

// ---- a tiny blocking client --------------------------------------------------------------------

enum class read_status { message, closed, reset, timed_out, error };

const char* to_string(read_status s) {
  switch (s) {
    case read_status::message:
      return "message";
    case read_status::closed:
      return "closed (EOF)";
    case read_status::reset:
      return "reset (ECONNRESET)";
    case read_status::timed_out:
      return "timed out";
    case read_status::error:
      return "error";
  }
  return "?";
}

struct read_result {
  read_status status = read_status::error;
  owned_message message;
  std::string error;
};

class client {
 public:
  explicit client(const fd_env& env) {
    fd_ = ::socket(env.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      error_ = std::string("socket: ") + std::strerror(errno);
      return;
    }
    // Every blocking call is bounded: a send can never wait more than this, nor can a recv
    // (reads also poll() against their own deadline first).
    timeval tv{};
    tv.tv_sec = 5;
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&env.address), env.address_size) != 0) {
      error_ = "connect to " + env.address_text + ": " + std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      return;
    }
    sockaddr_storage local{};
    socklen_t size = sizeof local;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &size) == 0) {
      if (local.ss_family == AF_INET) {
        std::array<std::uint8_t, 4> a{};
        std::memcpy(a.data(), &reinterpret_cast<sockaddr_in*>(&local)->sin_addr, 4);
        local_ip_ = ip_address::v4(a);
      } else if (local.ss_family == AF_INET6) {
        std::array<std::uint8_t, 16> a{};
        std::memcpy(a.data(), &reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr, 16);
        local_ip_ = ip_address::v6(a);
      }
    }
    std::random_device rd;
    next_id_ = rd();
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() { close(); }

  bool connected() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }
  const ip_address& local_ip() const { return local_ip_; }
  std::uint32_t next_id() { return next_id_++; }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// Writes all of `data` (bounded by SO_SNDTIMEO).
  bool send(std::span<const std::uint8_t> data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        error_ = std::string("send: ") + std::strerror(errno);
        return false;
      }
      data = data.subspan(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// The next message, or why there is none before `timeout`.
  read_result read(milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    read_result out;
    for (;;) {
      if (!pending_.empty()) {
        std::error_code ec;
        const auto r = decoder_.put(pending_, ec);
        if (r.status == decode_status::error) {
          out.status = read_status::error;
          out.error = "decode: " + ec.message();
          return out;
        }
        if (r.status == decode_status::message) {
          const message_view& m = decoder_.message();
          out.status = read_status::message;
          out.message.header = m.header();
          out.message.data.assign(m.bytes().begin(), m.bytes().end());
          pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(r.consumed));
          return out;
        }
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(r.consumed));
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now());
      if (left <= 0ms) {
        out.status = read_status::timed_out;
        return out;
      }
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) continue;  // the deadline check above ends the loop
      std::uint8_t buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) {
        out.status = read_status::closed;
        return out;
      }
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        out.status = errno == ECONNRESET ? read_status::reset : read_status::error;
        out.error = std::string("recv: ") + std::strerror(errno);
        return out;
      }
      pending_.insert(pending_.end(), buf, buf + n);
    }
  }

  /// Like read(), but answers (with DWA 2001) any DWR freeDiameter sends meanwhile: a client
  /// must answer peer DWRs at any moment (after a reconnect freeDiameter sends three at once).
  read_result read_skipping_peer_dwr(milliseconds timeout, std::string_view origin_host) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now());
      auto r = read(std::max(left, 0ms));
      if (r.status != read_status::message || !r.message.is(command::device_watchdog, true)) {
        return r;
      }
      if (!send(make_answer(r.message, origin_host))) {
        r.status = read_status::error;
        r.error = error_;
        return r;
      }
    }
  }

 private:
  int fd_ = -1;
  std::string error_;
  ip_address local_ip_{};
  std::uint32_t next_id_ = 0;
  frame_decoder decoder_;
  bytes pending_;
};

// ---- the fixture -------------------------------------------------------------------------------

class freediameter : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* address = std::getenv("DIAMPOOL_FD_ADDRESS");
    const char* host = std::getenv("DIAMPOOL_FD_HOST");
    const char* realm = std::getenv("DIAMPOOL_FD_REALM");
    if (address == nullptr || host == nullptr || realm == nullptr) {
      GTEST_FAIL() << "DIAMPOOL_FD_ADDRESS, DIAMPOOL_FD_HOST and DIAMPOOL_FD_REALM must be set: "
                      "run this binary as `tests/interop/freediameter/run.sh -- BINARY` (as "
                      "root), or through ctest";
    }
    env_.address_text = address;
    env_.host = host;
    env_.realm = realm;
    ASSERT_TRUE(parse_address(env_.address_text, env_))
        << "DIAMPOOL_FD_ADDRESS is not ip:port: " << env_.address_text;
  }

  /// Sends a CER and returns what came back (CEA, or closed/reset/timeout).
  read_result exchange_capabilities(client& c, cer_fields f) {
    f.host_ip = c.local_ip();
    const auto id = c.next_id();
    if (!c.send(make_cer(f, id, id))) return {read_status::error, {}, c.error()};
    return c.read(must_happen);
  }

  /// Connects and completes CER/CEA 2001 as `origin_host` (fatal failure otherwise).
  void open(client& c, const std::string& origin_host) {
    ASSERT_TRUE(c.connected()) << c.error();
    cer_fields f;
    f.origin_host = origin_host;
    const auto r = exchange_capabilities(c, f);
    ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
    ASSERT_TRUE(r.message.is(command::capabilities_exchange, false)) << r.message.text();
    ASSERT_EQ(r.message.u32(avp_code::result_code), result_code::success) << r.message.text();
  }

  /// Sends DWR and expects DWA 2001 with matching ids (copied to `dwa` if given).
  void expect_watchdog(client& c, const std::string& origin_host, owned_message* dwa = nullptr) {
    const auto id = c.next_id();
    ASSERT_TRUE(c.send(make_dwr(origin_host, id, id ^ 0x5a5a5a5aU))) << c.error();
    const auto r = c.read_skipping_peer_dwr(must_happen, origin_host);
    ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
    ASSERT_TRUE(r.message.is(command::device_watchdog, false)) << r.message.text();
    EXPECT_EQ(r.message.header.hop_by_hop, id);
    EXPECT_EQ(r.message.header.end_to_end, id ^ 0x5a5a5a5aU);
    EXPECT_FALSE(r.message.header.is_error());
    EXPECT_EQ(r.message.u32(avp_code::result_code), result_code::success) << r.message.text();
    EXPECT_EQ(r.message.str(avp_code::origin_host), env_.host);
    EXPECT_EQ(r.message.str(avp_code::origin_realm), env_.realm);
    if (dwa != nullptr) *dwa = r.message;
  }

  /// DPR (REBOOTING) -> DPA 2001, then waits for the close (either side may close).
  /// Returns whether freeDiameter closed first.
  bool disconnect(client& c, const std::string& origin_host) {
    const auto id = c.next_id();
    EXPECT_TRUE(c.send(make_dpr(origin_host, id, id))) << c.error();
    const auto r = c.read_skipping_peer_dwr(must_happen, origin_host);
    EXPECT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
    EXPECT_TRUE(r.message.is(command::disconnect_peer, false)) << r.message.text();
    EXPECT_EQ(r.message.header.hop_by_hop, id);
    EXPECT_EQ(r.message.u32(avp_code::result_code), result_code::success) << r.message.text();
    const auto after = c.read(2000ms);
    c.close();
    return after.status == read_status::closed || after.status == read_status::reset;
  }

  /// Connects as `origin_host` until a CEA 2001, for at most must_happen. Right after the
  /// previous connection with the same Origin-Host ended, freeDiameter may still hold it (CEA
  /// 5012) or be cleaning it up (closes the new one unanswered): those outcomes are transient
  /// and retried 50 ms later; anything else fails. `outcomes` records every attempt.
  void reconnect_until_open(const std::string& origin_host, std::optional<client>& c,
                            std::vector<std::string>& outcomes) {
    const auto deadline = steady::now() + must_happen;
    while (steady::now() < deadline) {
      c.emplace(env_);
      ASSERT_TRUE(c->connected()) << c->error();
      cer_fields f;
      f.origin_host = origin_host;
      const auto r = exchange_capabilities(*c, f);
      if (r.status == read_status::message && r.message.is(command::capabilities_exchange, false)) {
        const auto code = r.message.u32(avp_code::result_code).value_or(0);
        outcomes.push_back("CEA " + std::to_string(code));
        if (code == result_code::success) return;
        ASSERT_EQ(code, result_code::unable_to_comply) << r.message.text();
      } else {
        ASSERT_TRUE(r.status == read_status::closed || r.status == read_status::reset)
            << to_string(r.status) << " " << r.message.text() << r.error;
        outcomes.push_back(to_string(r.status));
      }
      c.reset();
      ::usleep(50'000);
    }
    FAIL() << "no CEA 2001 within the deadline";
  }

  fd_env env_;
};

// ---- the cases ---------------------------------------------------------------------------------

// CER -> CEA 2001. Seen from freeDiameter 1.2.1 (relay on, only acl_wl and dbg_msg_dumps
// loaded), in this order: Result-Code 2001, Origin-Host server.example.net, Origin-Realm
// example.net, Origin-State-Id (its start time; the same in its DWRs), Host-IP-Address (the
// veth address 198.18.0.1: loopback is never advertised), Vendor-Id 0, Product-Name
// "freeDiameter" (no M flag), Firmware-Revision 10201 (no M flag), Auth-Application-Id
// 0xFFFFFFFF (Relay) and nothing else: no Supported-Vendor-Id, no Inband-Security-Id, no
// Acct-Application-Id. Our CER offered only Auth-Application-Id 4 and was accepted: with relay
// on there is no common-application check. Hop-by-Hop and End-to-End ids are echoed; no flag
// is set (no E, no P).
TEST_F(freediameter, capabilities_exchange_answers_2001) {
  client c(env_);
  ASSERT_TRUE(c.connected()) << c.error();
  cer_fields f;  // client.example.com / example.com, Auth-Application-Id 4
  f.host_ip = c.local_ip();
  const auto id = c.next_id();
  ASSERT_TRUE(c.send(make_cer(f, id, id ^ 0xffff0000U))) << c.error();
  const auto r = c.read(must_happen);
  ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
  const owned_message& cea = r.message;
  note("CEA:\n" + cea.text());
  EXPECT_TRUE(cea.is(command::capabilities_exchange, false));
  EXPECT_EQ(cea.header.flags, 0);
  EXPECT_EQ(cea.header.application_id, 0U);
  EXPECT_EQ(cea.header.hop_by_hop, id);
  EXPECT_EQ(cea.header.end_to_end, id ^ 0xffff0000U);
  EXPECT_EQ(cea.u32(avp_code::result_code), result_code::success);
  EXPECT_EQ(cea.str(avp_code::origin_host), env_.host);
  EXPECT_EQ(cea.str(avp_code::origin_realm), env_.realm);
  EXPECT_TRUE(cea.u32(avp_code::origin_state_id).has_value());
  // Host-IP-Address: present and a well-formed IP address; its value is freeDiameter's own
  // interface address, never compared with the address dialled.
  const auto hip = cea.view().find(avp_code::host_ip_address);
  ASSERT_TRUE(hip.has_value()) << cea.text();
  std::error_code ec;
  const auto address = hip->as_address(ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(address.ip().has_value());
  EXPECT_EQ(cea.u32(avp_code::vendor_id), 0U);
  EXPECT_EQ(cea.str(avp_code::product_name), "freeDiameter");
  EXPECT_EQ(cea.u32(avp_code::auth_application_id), application::relay);
  // Every AVP is well formed for the codec.
  auto all = cea.view().avps();
  for (const avp& a : all)
    (void)a;
  EXPECT_FALSE(all.error()) << all.error().message();
  disconnect(c, "client.example.com");
}

// DWR -> DWA: Result-Code 2001, Origin-Host, Origin-Realm, Origin-State-Id (the CEA's), ids
// echoed, no flag set.
TEST_F(freediameter, device_watchdog_answers_2001) {
  const std::string me = "dwr.example.com";
  client c(env_);
  ASSERT_NO_FATAL_FAILURE(open(c, me));
  owned_message dwa;
  ASSERT_NO_FATAL_FAILURE(expect_watchdog(c, me, &dwa));
  note("DWA:\n" + dwa.text());
  EXPECT_EQ(dwa.header.flags, 0);
  EXPECT_TRUE(dwa.u32(avp_code::origin_state_id).has_value());
  disconnect(c, me);
}

// freeDiameter's own DWR. Its watchdog timer is Tw - 2 s + random() % 4 s + a random fraction
// of a second (fd_psm_next_timeout), i.e. 4 to 8 s with TwTimer 6, counted from the last
// message it received. Seen here: 6.35 s or 5.19 s, the same values run after run (its
// random() sequence repeats). The DWR carries Origin-Host, Origin-Realm and
// Origin-State-Id; a DWA with just Result-Code 2001, Origin-Host and Origin-Realm satisfies
// it, and the connection stays open (our DWR afterwards is answered).
TEST_F(freediameter, peer_watchdog_arrives_after_silence_and_is_answered) {
  const std::string me = "watchdog.example.com";
  client c(env_);
  ASSERT_NO_FATAL_FAILURE(open(c, me));
  const auto start = steady::now();
  const auto r = c.read(15000ms);
  const auto waited = std::chrono::duration_cast<milliseconds>(steady::now() - start);
  ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
  ASSERT_TRUE(r.message.is(command::device_watchdog, true)) << r.message.text();
  note("freeDiameter's DWR after " + std::to_string(waited.count()) + " ms of silence:\n" +
       r.message.text());
  EXPECT_GE(waited, 3500ms);  // not before Tw - 2 s (minus scheduling slack)
  EXPECT_EQ(r.message.str(avp_code::origin_host), env_.host);
  EXPECT_EQ(r.message.str(avp_code::origin_realm), env_.realm);
  EXPECT_TRUE(r.message.u32(avp_code::origin_state_id).has_value());
  ASSERT_TRUE(c.send(make_answer(r.message, me))) << c.error();
  ASSERT_NO_FATAL_FAILURE(expect_watchdog(c, me));
  disconnect(c, me);
}

// 100 requests of an application nobody serves, pipelined in one write(): 100 answers, each
// Result-Code 3002 DIAMETER_UNABLE_TO_DELIVER with flags E only (freeDiameter does NOT copy
// the request's P flag into these answers), Error-Message "No suitable candidate to route the
// message to", Session-Id echoed (first AVP), Origin-Host/Origin-Realm its own; command code,
// application id, Hop-by-Hop and End-to-End ids echoed. Each request is matched by Hop-by-Hop
// id (and its End-to-End id and Session-Id checked): none missing, none duplicated. Seen: the
// answers come back in request order (noted, not required); freeDiameter logs a ROUTING ERROR
// line per request.
TEST_F(freediameter, hundred_pipelined_requests_each_answered_once_3002) {
  const std::string me = "pipeline.example.com";
  client c(env_);
  ASSERT_NO_FATAL_FAILURE(open(c, me));

  constexpr std::size_t count = 100;
  struct sent {
    std::uint32_t end_to_end;
    std::string session_id;
  };
  std::map<std::uint32_t, sent> by_hop_by_hop;
  std::vector<std::uint32_t> order;
  bytes batch;
  std::mt19937 rng(std::random_device{}());
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t hbh = c.next_id();
    const std::uint32_t e2e = static_cast<std::uint32_t>(rng());
    std::string session = me + ";" + std::to_string(hbh) + ";" + std::to_string(i);
    append_app_request(batch, me, env_.realm, hbh, e2e, session);
    by_hop_by_hop[hbh] = {e2e, std::move(session)};
    order.push_back(hbh);
  }
  ASSERT_EQ(by_hop_by_hop.size(), count);
  ASSERT_TRUE(c.send(batch)) << c.error();  // one write of all 100

  std::set<std::uint32_t> answered;
  std::vector<std::uint32_t> answer_order;
  const auto deadline = steady::now() + 10s;
  while (answered.size() < count) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now());
    const auto r = c.read_skipping_peer_dwr(std::max(left, 0ms), me);
    ASSERT_EQ(r.status, read_status::message)
        << to_string(r.status) << " " << r.error << " after " << answered.size() << " answers";
    const owned_message& a = r.message;
    if (answered.empty()) note("first answer:\n" + a.text());
    ASSERT_FALSE(a.header.is_request()) << a.text();
    EXPECT_EQ(a.header.command_code, unserved_command);
    EXPECT_EQ(a.header.application_id, unserved_application);
    EXPECT_EQ(a.header.flags, cmd_flags::error) << a.text();
    EXPECT_EQ(a.u32(avp_code::result_code), result_code::unable_to_deliver) << a.text();
    EXPECT_EQ(a.str(avp_code::origin_host), env_.host);
    const auto it = by_hop_by_hop.find(a.header.hop_by_hop);
    ASSERT_NE(it, by_hop_by_hop.end()) << "answer to no request: " << a.text();
    EXPECT_EQ(a.header.end_to_end, it->second.end_to_end);
    EXPECT_EQ(a.str(avp_code::session_id), it->second.session_id);
    EXPECT_TRUE(answered.insert(a.header.hop_by_hop).second) << "duplicate answer: " << a.text();
    answer_order.push_back(a.header.hop_by_hop);
  }
  EXPECT_EQ(answered.size(), count);
  note(std::string("answers in request order: ") + (answer_order == order ? "yes" : "no"));
  // Nothing more arrives (no duplicate after the 100th).
  const auto extra = c.read_skipping_peer_dwr(300ms, me);
  EXPECT_EQ(extra.status, read_status::timed_out)
      << to_string(extra.status) << " " << extra.message.text();
  disconnect(c, me);
}

// DPR (REBOOTING) -> DPA: Origin-Host, Origin-Realm, Result-Code 2001 (in that order), ids
// echoed; then freeDiameter closes the socket itself at once (EOF seen within a few ms; the
// log says "Going to ZOMBIE state"). RFC 6733 leaves the close to the DPR sender, so a client
// must accept either side closing.
TEST_F(freediameter, disconnect_peer_answered_then_closed) {
  const std::string me = "dpr.example.com";
  client c(env_);
  ASSERT_NO_FATAL_FAILURE(open(c, me));
  const auto id = c.next_id();
  ASSERT_TRUE(c.send(make_dpr(me, id, id + 1))) << c.error();
  const auto r = c.read_skipping_peer_dwr(must_happen, me);
  ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
  note("DPA:\n" + r.message.text());
  EXPECT_TRUE(r.message.is(command::disconnect_peer, false));
  EXPECT_EQ(r.message.header.hop_by_hop, id);
  EXPECT_EQ(r.message.header.end_to_end, id + 1);
  EXPECT_EQ(r.message.u32(avp_code::result_code), result_code::success);
  EXPECT_EQ(r.message.str(avp_code::origin_host), env_.host);
  const auto start = steady::now();
  const auto after = c.read(3000ms);
  const auto waited = std::chrono::duration_cast<milliseconds>(steady::now() - start);
  note(std::string("after DPA: ") + to_string(after.status) + " after " +
       std::to_string(waited.count()) + " ms");
  // Either side may close after DPA; another message is the only wrong outcome. (If
  // freeDiameter ever stops closing, the read times out and we close: also fine.)
  EXPECT_NE(after.status, read_status::message) << after.message.text();
  EXPECT_NE(after.status, read_status::error) << after.error;
}

// A CER from an Origin-Host acl_wl does not allow: freeDiameter answers CEA 3010
// DIAMETER_UNKNOWN_PEER with the E flag, Error-Message "DIAMETER_UNKNOWN_PEER", Origin-Host,
// Origin-Realm and Origin-State-Id only (no Host-IP-Address, Vendor-Id or Product-Name), and
// closes the connection right after (EOF within a few ms). Log: "Rejected CER from peer
// 'other.example.org', validation failed (returning DIAMETER_UNKNOWN_PEER)".
TEST_F(freediameter, unknown_origin_host_gets_3010_then_close) {
  client c(env_);
  ASSERT_TRUE(c.connected()) << c.error();
  cer_fields f;
  f.origin_host = "other.example.org";
  f.origin_realm = "example.org";
  const auto r = exchange_capabilities(c, f);
  ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
  note("CEA to other.example.org:\n" + r.message.text());
  EXPECT_TRUE(r.message.is(command::capabilities_exchange, false));
  EXPECT_EQ(r.message.header.flags, cmd_flags::error);
  EXPECT_EQ(r.message.u32(avp_code::result_code), result_code::unknown_peer);
  EXPECT_EQ(r.message.str(avp_code::origin_host), env_.host);
  EXPECT_TRUE(r.message.str(avp_code::error_message).has_value());
  const auto after = c.read(must_happen);
  EXPECT_TRUE(after.status == read_status::closed || after.status == read_status::reset)
      << to_string(after.status);
}

// A second connection with the Origin-Host of an open one: CEA 5012 DIAMETER_UNABLE_TO_COMPLY
// WITHOUT the E flag (5xxx is a permanent failure, not a protocol error), Error-Message
// "Invalid state to receive a new connection attempt.", followed by the full capabilities
// (Host-IP-Address, Vendor-Id, Product-Name, Firmware-Revision, Auth-Application-Id relay);
// then freeDiameter closes that second connection. The first one stays OPEN and answers DWR.
// Log: "Rejecting new connection attempt while our state machine is in state 'STATE_OPEN'".
TEST_F(freediameter, second_connection_with_same_origin_host_gets_5012) {
  const std::string me = "dup.example.com";
  client first(env_);
  ASSERT_NO_FATAL_FAILURE(open(first, me));
  client second(env_);
  ASSERT_TRUE(second.connected()) << second.error();
  cer_fields f;
  f.origin_host = me;
  const auto r = exchange_capabilities(second, f);
  ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " " << r.error;
  note("CEA to the second connection:\n" + r.message.text());
  EXPECT_TRUE(r.message.is(command::capabilities_exchange, false));
  EXPECT_EQ(r.message.header.flags, 0);
  EXPECT_EQ(r.message.u32(avp_code::result_code), result_code::unable_to_comply);
  EXPECT_EQ(r.message.str(avp_code::origin_host), env_.host);
  const auto after = second.read(must_happen);
  EXPECT_TRUE(after.status == read_status::closed || after.status == read_status::reset)
      << to_string(after.status);
  ASSERT_NO_FATAL_FAILURE(expect_watchdog(first, me));
  disconnect(first, me);
}

// A CER without Origin-Host is not answered: freeDiameter's dictionary rules reject it
// ("Conflicting rule: the number of occurrences (0) is < the rule min (1) for 'Origin-Host'",
// "PARSING ERROR: 'DIAMETER_MISSING_AVP'") and it closes the TCP connection (EOF within a few
// ms). A client must turn EOF while waiting for CEA into a handshake failure, quickly.
TEST_F(freediameter, cer_without_origin_host_is_closed_unanswered) {
  client c(env_);
  ASSERT_TRUE(c.connected()) << c.error();
  cer_fields f;
  f.origin_host.clear();
  const auto start = steady::now();
  const auto r = exchange_capabilities(c, f);
  const auto waited = std::chrono::duration_cast<milliseconds>(steady::now() - start);
  note(std::string("CER without Origin-Host: ") + to_string(r.status) + " after " +
       std::to_string(waited.count()) + " ms");
  EXPECT_TRUE(r.status == read_status::closed || r.status == read_status::reset)
      << to_string(r.status) << (r.status == read_status::message ? r.message.text() : r.error);
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : ", ") + p;
  return out;
}

// Reconnecting with the same Origin-Host right after a DPR/DPA close: CEA 2001 (at once when
// freeDiameter is idle; under load it may still be cleaning the old peer entry up and close the
// first new attempt, so attempts are retried as after an abrupt close), and no DWR burst (the
// peer entry went to ZOMBIE cleanly).
TEST_F(freediameter, same_origin_host_reconnects_after_dpr) {
  const std::string me = "again.example.com";
  {
    client c(env_);
    ASSERT_NO_FATAL_FAILURE(open(c, me));
    disconnect(c, me);
  }
  std::optional<client> c;
  std::vector<std::string> outcomes;
  ASSERT_NO_FATAL_FAILURE(reconnect_until_open(me, c, outcomes));
  note("reconnect attempts after a DPR close: " + join(outcomes));
  const auto r = c->read(500ms);
  EXPECT_EQ(r.status, read_status::timed_out)
      << to_string(r.status) << " " << r.message.text() << r.error;
  disconnect(*c, me);
}

// Reconnecting with the same Origin-Host right after an ABRUPT close (no DPR): until
// freeDiameter has processed the EOF of the old connection, a new CER gets CEA 5012 (old peer
// still OPEN) or, while it cleans the peer up, no answer at all: the connection is closed
// ("Message discarded while cleaning peer state machine queue"). Both are transient, seen
// within the first few ms; a retry 50 ms later gets CEA 2001, and freeDiameter then sends
// THREE DWRs back to back at once (RFC 3539 REOPEN; log 'STATE_REOPEN' -> 'STATE_OPEN' after
// the third DWA). A client must answer peer DWRs at any moment, right after CEA included.
TEST_F(freediameter, same_origin_host_after_abrupt_close_reopens_with_three_dwrs) {
  const std::string me = "abrupt.example.com";
  {
    client c(env_);
    ASSERT_NO_FATAL_FAILURE(open(c, me));
  }  // closed without DPR
  std::vector<std::string> outcomes;
  std::optional<client> c;
  ASSERT_NO_FATAL_FAILURE(reconnect_until_open(me, c, outcomes));
  note("reconnect attempts after an abrupt close: " + join(outcomes));
  ASSERT_FALSE(outcomes.empty());
  ASSERT_EQ(outcomes.back(), "CEA 2001");
  int dwrs = 0;
  for (; dwrs < 3; ++dwrs) {
    const auto r = c->read(must_happen);
    ASSERT_EQ(r.status, read_status::message) << to_string(r.status) << " after " << dwrs;
    ASSERT_TRUE(r.message.is(command::device_watchdog, true)) << r.message.text();
    ASSERT_TRUE(c->send(make_answer(r.message, me))) << c->error();
  }
  EXPECT_EQ(dwrs, 3);
  ASSERT_NO_FATAL_FAILURE(expect_watchdog(*c, me));
  disconnect(*c, me);
}

}  // namespace
}  // namespace diampool
