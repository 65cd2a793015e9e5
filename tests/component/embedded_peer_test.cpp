#include "diampool/embedded_peer.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/print.hpp"

// g++ 12 warns about designated initializers that leave members to their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace diampool {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
using steady = std::chrono::steady_clock;

// How long to wait for something that must happen (only reached when a test fails), and for
// something that must not (the test's cost when it passes).
constexpr auto must_happen = 3000ms;
constexpr auto must_not_happen = 200ms;

constexpr std::uint32_t tgpp_user_data = 1000;  // a made-up vendor-specific AVP code
constexpr std::uint8_t request_proxiable =
    static_cast<std::uint8_t>(cmd_flags::request | cmd_flags::proxiable);

// ---- messages ---------------------------------------------------------------------------------

bytes make_cer(std::uint32_t hop_by_hop = 1) {
  bytes out;
  message_header h{.flags = cmd_flags::request,
                   .command_code = command::capabilities_exchange,
                   .hop_by_hop = hop_by_hop,
                   .end_to_end = hop_by_hop + 1000};
  message_builder b(out, h);
  b.add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "client.realm")
      .add_address(avp_code::host_ip_address, ip_address::v4({127, 0, 0, 1}))
      .add_unsigned32(avp_code::vendor_id, 0)
      .add_string(avp_code::product_name, "peer-test", 0)
      .add_unsigned32(avp_code::auth_application_id, application::credit_control);
  b.finish();
  return out;
}

bytes make_base_request(std::uint32_t command_code, std::uint32_t hop_by_hop,
                        std::optional<std::int32_t> disconnect_cause = std::nullopt) {
  bytes out;
  message_header h{.flags = cmd_flags::request,
                   .command_code = command_code,
                   .hop_by_hop = hop_by_hop,
                   .end_to_end = hop_by_hop};
  message_builder b(out, h);
  b.add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "client.realm");
  if (disconnect_cause) b.add_integer32(avp_code::disconnect_cause, *disconnect_cause);
  b.finish();
  return out;
}

// An answer from the client to a request the peer sent.
bytes make_answer_to(const message_header& request, std::uint32_t result_code) {
  bytes out;
  message_header h = request;
  h.length = 0;
  h.flags = static_cast<std::uint8_t>(request.flags & cmd_flags::proxiable);
  message_builder b(out, h);
  b.add_unsigned32(avp_code::result_code, result_code)
      .add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "client.realm");
  b.finish();
  return out;
}

// A credit-control-like request; appends to `out` so several can share one write.
void append_request(bytes& out, std::uint32_t hop_by_hop, bool with_session = true) {
  message_header h{.flags = request_proxiable,
                   .command_code = 272,
                   .application_id = application::credit_control,
                   .hop_by_hop = hop_by_hop,
                   .end_to_end = 0xE0000000U + hop_by_hop};
  message_builder b(out, h);
  if (with_session)
    b.add_string(avp_code::session_id, "client.example.com;1;" + std::to_string(hop_by_hop));
  b.add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "client.realm")
      .add_string(avp_code::destination_realm, "example.net")
      .add_string(avp_code::user_name, "alice")
      .add_unsigned32(tgpp_user_data, 77, avp_flags::mandatory, vendor::tgpp)
      .add_string(avp_code::user_name, "bob", 0);
  b.finish();
}

bytes make_request(std::uint32_t hop_by_hop, bool with_session = true) {
  bytes out;
  append_request(out, hop_by_hop, with_session);
  return out;
}

message_view view(const bytes& b) {
  std::error_code ec;
  auto v = message_view::parse(b, ec);
  if (ec) throw std::runtime_error("test received a malformed message: " + ec.message());
  return v;
}

std::vector<avp> avps_of(const bytes& b) {
  std::vector<avp> all;
  auto range = view(b).avps();
  for (const avp& a : range)
    all.push_back(a);
  EXPECT_FALSE(range.error()) << range.error().message();
  return all;
}

std::uint32_t u32(const bytes& b, std::uint32_t code) {
  auto a = view(b).find(code);
  if (!a) throw std::runtime_error("AVP " + std::to_string(code) + " missing");
  return a->as_unsigned32();
}

std::string str(const bytes& b, std::uint32_t code) {
  auto a = view(b).find(code);
  return a ? std::string(a->as_string()) : std::string("<missing>");
}

// ---- a blocking client on POSIX sockets ---------------------------------------------------

enum class io_status { ok, timeout, eof, error };

class client {
 public:
  /// Connects to host:port (an IPv4 or IPv6 literal). Throws on failure.
  client(const std::string& host, std::uint16_t port) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
      len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port);
      len = sizeof(sockaddr_in6);
    } else {
      throw std::invalid_argument("bad host " + host);
    }
    fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
    // Belt and braces: no blocking call of this client can outlive this.
    timeval tv{.tv_sec = 5, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      const int e = errno;
      ::close(fd_);
      fd_ = -1;
      throw std::system_error(e, std::generic_category(), "connect");
    }
  }
  explicit client(const embedded_peer& peer) : client("127.0.0.1", peer.port()) {}

  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() { close(); }

  int fd() const noexcept { return fd_; }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// Writes all of `data` (blocking).
  void send(std::span<const std::uint8_t> data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::system_error(errno, std::generic_category(), "send");
      data = data.subspan(static_cast<std::size_t>(n));
    }
  }

  /// The next message, or nullopt with status() saying why (timeout, eof, error).
  std::optional<bytes> read_message(std::chrono::milliseconds timeout = must_happen) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      while (!rest_.empty()) {
        std::error_code ec;
        const auto r = decoder_.put(rest_, ec);
        if (r.status == decode_status::error) {
          status_ = io_status::error;
          return std::nullopt;
        }
        std::optional<bytes> msg;
        if (r.status == decode_status::message) {
          const auto m = decoder_.message().bytes();
          msg.emplace(m.begin(), m.end());
        }
        rest_.erase(rest_.begin(), rest_.begin() + static_cast<std::ptrdiff_t>(r.consumed));
        if (msg) {
          status_ = io_status::ok;
          return msg;
        }
      }
      status_ = receive(deadline);
      if (status_ != io_status::ok) return std::nullopt;
    }
  }

  /// Exactly `n` raw bytes (no framing), or what arrived before the timeout or EOF.
  bytes read_raw(std::size_t n, std::chrono::milliseconds timeout = must_happen) {
    const auto deadline = steady::now() + timeout;
    while (rest_.size() < n) {
      status_ = receive(deadline);
      if (status_ != io_status::ok) break;
    }
    const std::size_t take = std::min(n, rest_.size());
    bytes out(rest_.begin(), rest_.begin() + static_cast<std::ptrdiff_t>(take));
    rest_.erase(rest_.begin(), rest_.begin() + static_cast<std::ptrdiff_t>(take));
    return out;
  }

  /// Reads (and discards) until EOF or error; returns how the wait ended.
  io_status wait_closed(std::chrono::milliseconds timeout = must_happen) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      rest_.clear();
      const io_status s = receive(deadline);
      if (s != io_status::ok) return s;
    }
  }

  /// True when nothing at all arrives within `timeout`.
  bool silent_for(std::chrono::milliseconds timeout = must_not_happen) {
    if (!rest_.empty()) return false;
    const io_status s = receive(steady::now() + timeout);
    return s == io_status::timeout;
  }

  io_status status() const noexcept { return status_; }

  /// Connects, sends a CER and returns the CEA (empty on failure).
  bytes handshake() {
    send(make_cer());
    auto cea = read_message();
    return cea ? *cea : bytes{};
  }

 private:
  io_status receive(steady::time_point deadline) {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return io_status::error;
      if (r == 0) return io_status::timeout;
      std::uint8_t buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n < 0) return io_status::error;
      if (n == 0) return io_status::eof;
      rest_.insert(rest_.end(), buf, buf + n);
      return io_status::ok;
    }
  }

  int fd_ = -1;
  frame_decoder decoder_{std::size_t{1} << 20};
  bytes rest_;
  io_status status_ = io_status::ok;
};

// Connects and completes the capability exchange (asserting a 2001 CEA).
std::unique_ptr<client> connected(const embedded_peer& peer) {
  auto c = std::make_unique<client>(peer);
  const bytes cea = c->handshake();
  EXPECT_FALSE(cea.empty()) << "no CEA";
  if (!cea.empty()) {
    EXPECT_EQ(u32(cea, avp_code::result_code), result_code::success);
  }
  return c;
}

bool wait(const embedded_peer& peer, const std::function<bool(const embedded_peer_stats&)>& pred) {
  return peer.wait_for(pred, must_happen);
}

// ---- capability exchange ----------------------------------------------------------------------

TEST(EmbeddedPeer, CerGetsCeaWithConfiguredFields) {
  embedded_peer peer({.origin_host = "hss.example.net",
                      .origin_realm = "example.net",
                      .product_name = "test-peer",
                      .vendor_id = vendor::tgpp,
                      .auth_application_ids = {application::credit_control, 16777238},
                      .acct_application_ids = {application::base_accounting}});
  client c(peer);
  c.send(make_cer(42));
  const auto cea = c.read_message();
  ASSERT_TRUE(cea) << "no CEA";
  const message_header h = view(*cea).header();
  EXPECT_EQ(h.command_code, command::capabilities_exchange);
  EXPECT_EQ(h.flags, 0);
  EXPECT_EQ(h.application_id, 0U);
  EXPECT_EQ(h.hop_by_hop, 42U);
  EXPECT_EQ(h.end_to_end, 1042U);
  EXPECT_EQ(u32(*cea, avp_code::result_code), result_code::success);
  EXPECT_EQ(str(*cea, avp_code::origin_host), "hss.example.net");
  EXPECT_EQ(str(*cea, avp_code::origin_realm), "example.net");
  EXPECT_EQ(u32(*cea, avp_code::vendor_id), vendor::tgpp);
  EXPECT_EQ(str(*cea, avp_code::product_name), "test-peer");
  EXPECT_FALSE(view(*cea).find(avp_code::error_message));
  const auto ip = view(*cea).find(avp_code::host_ip_address)->as_address().ip();
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->to_string(), "127.0.0.1");
  std::vector<std::uint32_t> auth;
  std::vector<std::uint32_t> acct;
  for (const avp& a : avps_of(*cea)) {
    if (a.code() == avp_code::auth_application_id) auth.push_back(a.as_unsigned32());
    if (a.code() == avp_code::acct_application_id) acct.push_back(a.as_unsigned32());
  }
  EXPECT_EQ(auth, (std::vector<std::uint32_t>{application::credit_control, 16777238}));
  EXPECT_EQ(acct, (std::vector<std::uint32_t>{application::base_accounting}));
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.cers == 1 && s.ceas_sent == 1; }));
  const auto s = peer.stats();
  EXPECT_EQ(s.connections_accepted, 1U);
  EXPECT_EQ(s.connections_open, 1U);
}

TEST(EmbeddedPeer, CeaAdvertisesRelayWithoutApplications) {
  embedded_peer peer;
  client c(peer);
  const bytes cea = c.handshake();
  ASSERT_FALSE(cea.empty());
  EXPECT_EQ(u32(cea, avp_code::auth_application_id), application::relay);
  EXPECT_FALSE(view(cea).find(avp_code::acct_application_id));
}

TEST(EmbeddedPeer, CeaPassesTheDictionaryCheck) {
  embedded_peer peer;
  client c(peer);
  const bytes cea = c.handshake();
  ASSERT_FALSE(cea.empty());
  EXPECT_FALSE(check_avps(view(cea), dictionary::base())) << to_text(view(cea));
}

TEST(EmbeddedPeer, RequestBeforeCeaClosesTheConnection) {
  embedded_peer peer;
  client c(peer);
  c.send(make_request(1));
  EXPECT_EQ(c.wait_closed(), io_status::eof);
  EXPECT_TRUE(wait(
      peer, [](const auto& s) { return s.unexpected_before_cea == 1 && s.connections_open == 0; }));
  EXPECT_EQ(peer.stats().answers_sent, 0U);
}

// ---- base protocol ----------------------------------------------------------------------------

TEST(EmbeddedPeer, DwrGetsDwa) {
  embedded_peer peer;
  auto c = connected(peer);
  c->send(make_base_request(command::device_watchdog, 7));
  const auto dwa = c->read_message();
  ASSERT_TRUE(dwa);
  const message_header h = view(*dwa).header();
  EXPECT_EQ(h.command_code, command::device_watchdog);
  EXPECT_FALSE(h.is_request());
  EXPECT_EQ(h.hop_by_hop, 7U);
  EXPECT_EQ(u32(*dwa, avp_code::result_code), result_code::success);
  EXPECT_EQ(str(*dwa, avp_code::origin_host), "peer.example.net");
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.dwrs == 1 && s.dwas_sent == 1; }));
}

TEST(EmbeddedPeer, DprGetsDpaThenPeerClosesWhenClientDoes) {
  embedded_peer peer;
  auto c = connected(peer);
  c->send(make_base_request(command::disconnect_peer, 9, disconnect_cause::rebooting));
  const auto dpa = c->read_message();
  ASSERT_TRUE(dpa);
  EXPECT_EQ(view(*dpa).header().command_code, command::disconnect_peer);
  EXPECT_FALSE(view(*dpa).header().is_request());
  EXPECT_EQ(view(*dpa).header().hop_by_hop, 9U);
  EXPECT_EQ(u32(*dpa, avp_code::result_code), result_code::success);
  c->close();
  EXPECT_TRUE(wait(peer, [](const auto& s) {
    return s.dprs == 1 && s.dpas_sent == 1 && s.connections_open == 0;
  }));
}

TEST(EmbeddedPeer, DprGetsDpaThenPeerClosesAfterALinger) {
  embedded_peer peer;
  auto c = connected(peer);
  const auto start = steady::now();
  c->send(make_base_request(command::disconnect_peer, 9, disconnect_cause::busy));
  ASSERT_TRUE(c->read_message());
  EXPECT_EQ(c->wait_closed(3000ms), io_status::eof);
  EXPECT_GE(steady::now() - start, 1s);  // the peer waits a second for the client to close
}

// ---- application requests ---------------------------------------------------------------------

TEST(EmbeddedPeer, RequestGetsAnswerWithMatchingIdsAndSessionFirst) {
  embedded_peer peer;
  auto c = connected(peer);
  c->send(make_request(0x11223344));
  const auto answer = c->read_message();
  ASSERT_TRUE(answer);
  const message_header h = view(*answer).header();
  EXPECT_EQ(h.command_code, 272U);
  EXPECT_EQ(h.application_id, application::credit_control);
  EXPECT_EQ(h.hop_by_hop, 0x11223344U);
  EXPECT_EQ(h.end_to_end, 0xE0000000U + 0x11223344U);
  EXPECT_EQ(h.flags, cmd_flags::proxiable);  // R cleared, P copied, no E
  const auto all = avps_of(*answer);
  ASSERT_EQ(all.size(), 4U);  // no echo configured
  EXPECT_EQ(all[0].code(), avp_code::session_id);
  EXPECT_EQ(all[0].as_string(), "client.example.com;1;" + std::to_string(0x11223344));
  EXPECT_EQ(all[1].code(), avp_code::result_code);
  EXPECT_EQ(all[1].as_unsigned32(), result_code::success);
  EXPECT_EQ(all[2].code(), avp_code::origin_host);
  EXPECT_EQ(all[2].as_string(), "peer.example.net");
  EXPECT_EQ(all[3].code(), avp_code::origin_realm);
  EXPECT_EQ(all[3].as_string(), "example.net");
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.requests == 1 && s.answers_sent == 1; }));
}

TEST(EmbeddedPeer, RequestWithoutSessionIdIsAnswered) {
  embedded_peer peer;
  auto c = connected(peer);
  c->send(make_request(5, /*with_session=*/false));
  const auto answer = c->read_message();
  ASSERT_TRUE(answer);
  const auto all = avps_of(*answer);
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].code(), avp_code::result_code);
  EXPECT_FALSE(view(*answer).find(avp_code::session_id));
}

TEST(EmbeddedPeer, ConfiguredResultCodeAndEchoedAvps) {
  embedded_peer peer;
  embedded_peer_faults f;
  f.result_code = 4010;
  f.echo_avps = {avp_code::user_name, tgpp_user_data, avp_code::session_id};
  peer.set_faults(f);
  EXPECT_EQ(peer.faults().result_code, 4010U);
  auto c = connected(peer);
  c->send(make_request(1));
  const auto answer = c->read_message();
  ASSERT_TRUE(answer);
  EXPECT_FALSE(view(*answer).header().is_error());
  const auto all = avps_of(*answer);
  ASSERT_EQ(all.size(), 7U);
  EXPECT_EQ(all[0].code(), avp_code::session_id);  // once, first
  EXPECT_EQ(all[1].as_unsigned32(), 4010U);
  // Echoed in the request's order, with their flags and vendor.
  EXPECT_EQ(all[4].code(), avp_code::user_name);
  EXPECT_EQ(all[4].as_string(), "alice");
  EXPECT_EQ(all[4].flags(), avp_flags::mandatory);
  EXPECT_EQ(all[5].code(), tgpp_user_data);
  EXPECT_EQ(all[5].vendor_id(), vendor::tgpp);
  EXPECT_EQ(all[5].flags(), avp_flags::vendor | avp_flags::mandatory);
  EXPECT_EQ(all[5].as_unsigned32(), 77U);
  EXPECT_EQ(all[6].code(), avp_code::user_name);
  EXPECT_EQ(all[6].as_string(), "bob");
  EXPECT_EQ(all[6].flags(), 0);
}

TEST(EmbeddedPeer, ProtocolErrorResultCodeSetsTheEBit) {
  embedded_peer peer({.faults = {.result_code = result_code::unable_to_deliver}});
  auto c = connected(peer);
  c->send(make_request(1));
  const auto answer = c->read_message();
  ASSERT_TRUE(answer);
  EXPECT_EQ(view(*answer).header().flags, cmd_flags::proxiable | cmd_flags::error);
  EXPECT_EQ(u32(*answer, avp_code::result_code), result_code::unable_to_deliver);
}

TEST(EmbeddedPeer, HundredPipelinedRequestsInOneWrite) {
  embedded_peer peer;
  auto c = connected(peer);
  bytes batch;
  std::set<std::uint32_t> expected;
  for (std::uint32_t i = 0; i < 100; ++i) {
    append_request(batch, 1000 + i * 7);
    expected.insert(1000 + i * 7);
  }
  c->send(batch);
  std::set<std::uint32_t> seen;
  for (int i = 0; i < 100; ++i) {
    const auto answer = c->read_message();
    ASSERT_TRUE(answer) << "after " << i << " answers";
    const message_header h = view(*answer).header();
    EXPECT_FALSE(h.is_request());
    EXPECT_EQ(h.end_to_end, 0xE0000000U + h.hop_by_hop);
    EXPECT_TRUE(seen.insert(h.hop_by_hop).second) << "duplicate " << h.hop_by_hop;
    EXPECT_EQ(str(*answer, avp_code::session_id),
              "client.example.com;1;" + std::to_string(h.hop_by_hop));
  }
  EXPECT_EQ(seen, expected);
  EXPECT_TRUE(c->silent_for());
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.requests == 100 && s.answers_sent == 100; }));
}

TEST(EmbeddedPeer, MessagesSplitAcrossWritesAreReassembled) {
  embedded_peer peer;
  auto c = connected(peer);
  bytes batch;
  for (std::uint32_t i = 1; i <= 3; ++i)
    append_request(batch, i);
  for (std::size_t i = 0; i < batch.size(); i += 7) {
    c->send(std::span(batch).subspan(i, std::min<std::size_t>(7, batch.size() - i)));
  }
  for (std::uint32_t i = 1; i <= 3; ++i) {
    const auto answer = c->read_message();
    ASSERT_TRUE(answer);
    EXPECT_EQ(view(*answer).header().hop_by_hop, i);
  }
}

TEST(EmbeddedPeer, ManyClientsOnSeveralThreads) {
  embedded_peer peer({.threads = 3});
  constexpr int clients = 6;
  constexpr std::uint32_t per_client = 200;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      auto c = connected(peer);
      bytes batch;
      for (std::uint32_t i = 0; i < per_client; ++i)
        append_request(batch, i);
      c->send(batch);
      std::uint32_t answers = 0;
      while (answers < per_client && c->read_message())
        ++answers;
      if (answers == per_client) ++good;
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(good.load(), clients);
  const auto s = peer.stats();
  EXPECT_EQ(s.connections_accepted, static_cast<std::uint64_t>(clients));
  EXPECT_EQ(s.answers_sent, clients * per_client);
  EXPECT_GT(s.bytes_received, 0U);
  EXPECT_GT(s.bytes_sent, 0U);
}

// ---- fault knobs ------------------------------------------------------------------------------

TEST(EmbeddedPeerFaults, NoCeaWhenAnswerCerIsOff) {
  embedded_peer peer({.faults = {.answer_cer = false}});
  client c(peer);
  c.send(make_cer());
  EXPECT_TRUE(c.silent_for());
  const auto s = peer.stats();
  EXPECT_EQ(s.cers, 1U);
  EXPECT_EQ(s.ceas_sent, 0U);
  EXPECT_EQ(s.connections_open, 1U);
}

class CeaFailure : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(CeaFailure, CeaWithTheCodeThenThePeerCloses) {
  const std::uint32_t code = GetParam();
  embedded_peer peer({.faults = {.cea_result_code = code}});
  client c(peer);
  c.send(make_cer());
  const auto cea = c.read_message();
  ASSERT_TRUE(cea);
  EXPECT_EQ(u32(*cea, avp_code::result_code), code);
  EXPECT_EQ(view(*cea).header().is_error(), code >= 3000 && code < 4000);
  EXPECT_NE(str(*cea, avp_code::error_message), "<missing>");
  EXPECT_EQ(c.wait_closed(), io_status::eof);
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.connections_open == 0; }));
}

INSTANTIATE_TEST_SUITE_P(Codes, CeaFailure,
                         ::testing::Values(result_code::unknown_peer, result_code::election_lost,
                                           result_code::no_common_application,
                                           result_code::unable_to_comply));

TEST(EmbeddedPeerFaults, DwrNotAnswered) {
  embedded_peer peer({.faults = {.answer_dwr = false}});
  auto c = connected(peer);
  c->send(make_base_request(command::device_watchdog, 3));
  EXPECT_TRUE(c->silent_for());
  EXPECT_EQ(peer.stats().dwrs, 1U);
  EXPECT_EQ(peer.stats().dwas_sent, 0U);
  // The connection is still up: requests are answered.
  c->send(make_request(4));
  const auto answer = c->read_message();
  ASSERT_TRUE(answer);
  EXPECT_EQ(view(*answer).header().hop_by_hop, 4U);
}

TEST(EmbeddedPeerFaults, DropEverySecondAnswer) {
  embedded_peer peer({.faults = {.drop_every_nth_answer = 2}});
  auto c = connected(peer);
  bytes batch;
  for (std::uint32_t i = 1; i <= 10; ++i)
    append_request(batch, i);
  c->send(batch);
  std::vector<std::uint32_t> seen;
  for (int i = 0; i < 5; ++i) {
    const auto answer = c->read_message();
    ASSERT_TRUE(answer);
    seen.push_back(view(*answer).header().hop_by_hop);
  }
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{1, 3, 5, 7, 9}));
  EXPECT_TRUE(c->silent_for());
  const auto s = peer.stats();
  EXPECT_EQ(s.requests, 10U);
  EXPECT_EQ(s.answers_sent, 5U);
  EXPECT_EQ(s.answers_dropped, 5U);
}

TEST(EmbeddedPeerFaults, DuplicateEveryThirdAnswer) {
  embedded_peer peer({.faults = {.duplicate_every_nth_answer = 3}});
  auto c = connected(peer);
  bytes batch;
  for (std::uint32_t i = 1; i <= 3; ++i)
    append_request(batch, i);
  c->send(batch);
  std::vector<std::uint32_t> seen;
  for (int i = 0; i < 4; ++i) {
    const auto answer = c->read_message();
    ASSERT_TRUE(answer);
    seen.push_back(view(*answer).header().hop_by_hop);
  }
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{1, 2, 3, 3}));
  EXPECT_TRUE(c->silent_for());
  EXPECT_EQ(peer.stats().answers_duplicated, 1U);
  EXPECT_EQ(peer.stats().answers_sent, 4U);
}

TEST(EmbeddedPeerFaults, CloseAfterThreeMessages) {
  embedded_peer peer({.faults = {.close_after_messages = 3}});
  auto c = connected(peer);  // message 1
  bytes batch;
  for (std::uint32_t i = 1; i <= 3; ++i)
    append_request(batch, i);  // messages 2, 3, 4
  c->send(batch);
  const auto answer = c->read_message();
  ASSERT_TRUE(answer);
  EXPECT_EQ(view(*answer).header().hop_by_hop, 1U);  // message 2 is answered
  EXPECT_FALSE(c->read_message());                   // message 3 is not: the peer closes
  EXPECT_EQ(c->status(), io_status::eof);
  EXPECT_TRUE(wait(
      peer, [](const auto& s) { return s.closed_after_messages == 1 && s.connections_open == 0; }));
}

TEST(EmbeddedPeerFaults, StopReadingBlocksTheWriterUntilResumed) {
  embedded_peer peer;
  auto c = connected(peer);
  embedded_peer_faults f;
  f.stop_reading = true;
  peer.set_faults(f);

  bytes chunk;
  std::uint32_t hbh = 1;
  while (chunk.size() < 64 * 1024)
    append_request(chunk, hbh++);
  ASSERT_EQ(::fcntl(c->fd(), F_SETFL, ::fcntl(c->fd(), F_GETFL) | O_NONBLOCK), 0);
  std::size_t written = 0;
  bool blocked = false;
  std::size_t offset = 0;
  // The socket buffers on loopback hold a few MiB; 256 MiB means the peer kept reading.
  while (written < std::size_t{256} * 1024 * 1024) {
    const ssize_t n = ::send(c->fd(), chunk.data() + offset, chunk.size() - offset, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      blocked = true;
      break;
    }
    ASSERT_GT(n, 0) << std::strerror(errno) << " malformed=" << peer.stats().malformed
                    << " closed=" << peer.stats().connections_closed
                    << " requests=" << peer.stats().requests;
    written += static_cast<std::size_t>(n);
    offset = (offset + static_cast<std::size_t>(n)) % chunk.size();
  }
  EXPECT_TRUE(blocked) << "wrote " << written << " bytes without blocking";
  // The peer handled at most the one read (64 KiB) that was under way when it was told to stop.
  const std::uint64_t before = peer.stats().requests;
  const std::uint64_t request_size = make_request(1).size();
  EXPECT_LE(before * request_size, 64 * 1024 + request_size) << "the peer went on reading";

  f.stop_reading = false;
  peer.set_faults(f);
  EXPECT_TRUE(wait(peer, [before](const auto& s) { return s.requests > before; }));
}

TEST(EmbeddedPeerFaults, TrickleWritesOneByteAtATime) {
  embedded_peer peer;
  auto c = connected(peer);
  embedded_peer_faults f;
  f.trickle_interval = 2ms;
  peer.set_faults(f);
  const std::uint64_t sent_before = peer.stats().bytes_sent;

  const auto start = steady::now();
  c->send(make_request(7));
  const auto answer = c->read_message();
  ASSERT_TRUE(answer);
  EXPECT_EQ(view(*answer).header().hop_by_hop, 7U);
  // n bytes one at a time, 2 ms apart: at least (n - 1) intervals (timers never fire early).
  EXPECT_GE(steady::now() - start, (answer->size() - 1) * 2ms);
  EXPECT_TRUE(
      wait(peer, [&](const auto& s) { return s.bytes_sent >= sent_before + answer->size(); }));

  f.trickle_interval = 0ms;  // back to whole writes: a batch of answers arrives together
  peer.set_faults(f);
  bytes batch;
  for (std::uint32_t i = 10; i < 20; ++i)
    append_request(batch, i);
  c->send(batch);
  for (std::uint32_t i = 10; i < 20; ++i) {
    const auto a = c->read_message();
    ASSERT_TRUE(a);
    EXPECT_EQ(view(*a).header().hop_by_hop, i);
  }
}

TEST(EmbeddedPeerFaults, AnswerDelayDoesNotBlockTheReader) {
  embedded_peer peer({.faults = {.answer_delay = 150ms}});
  auto c = connected(peer);
  const auto start = steady::now();
  bytes batch;
  append_request(batch, 1);
  append_request(batch, 2);
  c->send(batch);
  c->send(make_base_request(command::device_watchdog, 3));
  // The DWA is not delayed, and the reader is not blocked by the pending answers.
  const auto first = c->read_message();
  ASSERT_TRUE(first);
  EXPECT_EQ(view(*first).header().hop_by_hop, 3U);
  for (std::uint32_t hbh = 1; hbh <= 2; ++hbh) {
    const auto answer = c->read_message();
    ASSERT_TRUE(answer);
    EXPECT_EQ(view(*answer).header().hop_by_hop, hbh);
    EXPECT_GE(steady::now() - start, 150ms);
  }
}

TEST(EmbeddedPeerFaults, ShortenedDelayOvertakesLongerOnes) {
  embedded_peer peer({.faults = {.answer_delay = 400ms}});
  auto c = connected(peer);
  c->send(make_request(1));
  ASSERT_TRUE(wait(peer, [](const auto& s) { return s.requests == 1; }));
  peer.set_faults({.answer_delay = 1ms});
  c->send(make_request(2));
  const auto first = c->read_message();
  ASSERT_TRUE(first);
  EXPECT_EQ(view(*first).header().hop_by_hop, 2U);
  const auto second = c->read_message();
  ASSERT_TRUE(second);
  EXPECT_EQ(view(*second).header().hop_by_hop, 1U);
}

TEST(EmbeddedPeerFaults, DelayedAnswersAreDroppedAndDuplicatedToo) {
  embedded_peer peer(
      {.faults = {
           .answer_delay = 20ms, .drop_every_nth_answer = 2, .duplicate_every_nth_answer = 3}});
  auto c = connected(peer);
  bytes batch;
  for (std::uint32_t i = 1; i <= 3; ++i)
    append_request(batch, i);
  c->send(batch);
  std::vector<std::uint32_t> seen;
  for (int i = 0; i < 3; ++i) {
    const auto answer = c->read_message();
    ASSERT_TRUE(answer);
    seen.push_back(view(*answer).header().hop_by_hop);
  }
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{1, 3, 3}));
  EXPECT_TRUE(c->silent_for());
}

// ---- actions ----------------------------------------------------------------------------------

TEST(EmbeddedPeerActions, SendDwr) {
  embedded_peer peer;
  auto c = connected(peer);
  peer.send_dwr();
  const auto dwr = c->read_message();
  ASSERT_TRUE(dwr);
  const message_header h = view(*dwr).header();
  EXPECT_EQ(h.command_code, command::device_watchdog);
  EXPECT_TRUE(h.is_request());
  EXPECT_EQ(str(*dwr, avp_code::origin_host), "peer.example.net");
  EXPECT_EQ(str(*dwr, avp_code::origin_realm), "example.net");
  c->send(make_answer_to(h, result_code::success));
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.dwrs_sent == 1 && s.dwas_received == 1; }));
}

TEST(EmbeddedPeerActions, SendDprWithCauseThenCloseOnDpa) {
  embedded_peer peer;
  auto c = connected(peer);
  peer.send_dpr(disconnect_cause::do_not_want_to_talk_to_you);
  const auto dpr = c->read_message();
  ASSERT_TRUE(dpr);
  const message_header h = view(*dpr).header();
  EXPECT_EQ(h.command_code, command::disconnect_peer);
  EXPECT_TRUE(h.is_request());
  EXPECT_EQ(view(*dpr).find(avp_code::disconnect_cause)->as_integer32(),
            disconnect_cause::do_not_want_to_talk_to_you);
  c->send(make_answer_to(h, result_code::success));
  EXPECT_EQ(c->wait_closed(), io_status::eof);
  EXPECT_TRUE(wait(peer, [](const auto& s) {
    return s.dprs_sent == 1 && s.dpas_received == 1 && s.connections_open == 0;
  }));
}

TEST(EmbeddedPeerActions, SendRequest) {
  embedded_peer peer;
  auto c = connected(peer);
  peer.send_request(8388620, 16777251);
  const auto req = c->read_message();
  ASSERT_TRUE(req);
  const message_header h = view(*req).header();
  EXPECT_EQ(h.command_code, 8388620U);
  EXPECT_EQ(h.application_id, 16777251U);
  EXPECT_EQ(h.flags, request_proxiable);
  const auto all = avps_of(*req);
  ASSERT_GE(all.size(), 4U);
  EXPECT_EQ(all[0].code(), avp_code::session_id);
  EXPECT_FALSE(all[0].as_string().empty());
  EXPECT_EQ(str(*req, avp_code::origin_host), "peer.example.net");
  EXPECT_EQ(str(*req, avp_code::origin_realm), "example.net");
  EXPECT_EQ(str(*req, avp_code::destination_realm), "client.realm");
  c->send(make_answer_to(h, result_code::command_unsupported));
  EXPECT_TRUE(
      wait(peer, [](const auto& s) { return s.requests_sent == 1 && s.answers_received == 1; }));
}

TEST(EmbeddedPeerActions, WriteRawArrivesVerbatim) {
  embedded_peer peer;
  auto c = connected(peer);
  // An oversized length header: version 1, length 0xFFFFFC, then a few bytes.
  const bytes raw = {0x01, 0xFF, 0xFF, 0xFC, 0x80, 0x00, 0x01, 0x01, 0xDE, 0xAD, 0xBE, 0xEF, 0x42};
  peer.write_raw(raw);
  EXPECT_EQ(c->read_raw(raw.size()), raw);
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.raw_writes == 1; }));
}

TEST(EmbeddedPeerActions, ActionsSkipConnectionsBeforeCea) {
  embedded_peer peer({.faults = {.answer_cer = false}});
  client c(peer);
  c.send(make_cer());
  ASSERT_TRUE(wait(peer, [](const auto& s) { return s.cers == 1; }));
  peer.send_dwr();
  peer.write_raw({1, 2, 3, 4});
  EXPECT_TRUE(c.silent_for());
  EXPECT_EQ(peer.stats().dwrs_sent, 0U);
}

TEST(EmbeddedPeerActions, CloseAllGivesEof) {
  embedded_peer peer;
  auto a = connected(peer);
  auto b = connected(peer);
  client not_yet_open(peer);  // closed too, whatever its state
  ASSERT_TRUE(wait(peer, [](const auto& s) { return s.connections_open == 3; }));
  peer.close_all();
  EXPECT_EQ(a->wait_closed(), io_status::eof);
  EXPECT_EQ(b->wait_closed(), io_status::eof);
  EXPECT_EQ(not_yet_open.wait_closed(), io_status::eof);
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.connections_open == 0; }));
  // Still listening.
  auto again = connected(peer);
}

TEST(EmbeddedPeerActions, StopListeningRefusesNewConnections) {
  embedded_peer peer;
  auto open = connected(peer);
  peer.stop_listening();
  EXPECT_THROW(client{peer}, std::system_error);
  // The open connection still works.
  open->send(make_request(1));
  EXPECT_TRUE(open->read_message());
}

// ---- bad input --------------------------------------------------------------------------------

TEST(EmbeddedPeerBadInput, BadVersionIsCountedAndCloses) {
  embedded_peer peer;
  auto c = connected(peer);
  bytes bad = make_request(1);
  bad[0] = 2;
  c->send(bad);
  EXPECT_EQ(c->wait_closed(), io_status::eof);
  EXPECT_TRUE(
      wait(peer, [](const auto& s) { return s.malformed == 1 && s.connections_open == 0; }));
}

TEST(EmbeddedPeerBadInput, OversizedLengthIsCountedAndCloses) {
  embedded_peer peer;
  auto c = connected(peer);
  // Claims 16 MiB - 4: over the 1 MiB limit, rejected from the header alone.
  c->send(
      bytes{0x01, 0xFF, 0xFF, 0xFC, 0x80, 0x00, 0x01, 0x10, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1});
  EXPECT_EQ(c->wait_closed(), io_status::eof);
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.malformed == 1; }));
}

TEST(EmbeddedPeerBadInput, GarbageBeforeCer) {
  embedded_peer peer;
  client c(peer);
  bytes junk(64, 0x47);
  c.send(junk);
  EXPECT_EQ(c.wait_closed(), io_status::eof);
  EXPECT_TRUE(wait(peer, [](const auto& s) { return s.malformed == 1; }));
}

// ---- construction, observation, destruction ---------------------------------------------------

TEST(EmbeddedPeerLifetime, AddressAndPort) {
  embedded_peer peer;
  EXPECT_NE(peer.port(), 0);
  EXPECT_EQ(peer.address(), "127.0.0.1:" + std::to_string(peer.port()));
}

TEST(EmbeddedPeerLifetime, Ipv6Loopback) {
  std::unique_ptr<embedded_peer> peer;
  try {
    peer = std::make_unique<embedded_peer>(embedded_peer_options{.listen = "[::1]:0"});
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  EXPECT_EQ(peer->address(), "[::1]:" + std::to_string(peer->port()));
  client c("::1", peer->port());
  const bytes cea = c.handshake();
  ASSERT_FALSE(cea.empty());
  const auto ip = view(cea).find(avp_code::host_ip_address)->as_address().ip();
  ASSERT_TRUE(ip);
  EXPECT_TRUE(ip->is_v6());
  EXPECT_EQ(ip->to_string(), "::1");
}

TEST(EmbeddedPeerLifetime, BadListenAddressesThrow) {
  for (const char* listen : {"127.0.0.1", "127.0.0.1:", ":3868", "[::1", "[::1]3868",
                             "127.0.0.1:70000", "127.0.0.1:x", "::1:0", "192.0.2.300:0"}) {
    EXPECT_THROW(embedded_peer({.listen = listen}), std::system_error) << listen;
  }
}

TEST(EmbeddedPeerLifetime, PortInUseThrows) {
  embedded_peer first;
  EXPECT_THROW(embedded_peer({.listen = first.address()}), std::system_error);
}

TEST(EmbeddedPeerLifetime, WaitForTimesOutAndWakesUp) {
  embedded_peer peer;
  const auto start = steady::now();
  EXPECT_FALSE(peer.wait_for([](const auto& s) { return s.connections_accepted > 0; }, 50ms));
  EXPECT_GE(steady::now() - start, 50ms);
  EXPECT_TRUE(peer.wait_for([](const auto& s) { return s.connections_accepted == 0; }, 0ms));

  std::atomic<bool> woke{false};
  std::thread waiter(
      [&] { woke = peer.wait_for([](const auto& s) { return s.cers == 1; }, must_happen); });
  client c(peer);
  c.send(make_cer());
  waiter.join();
  EXPECT_TRUE(woke.load());
}

TEST(EmbeddedPeerLifetime, ObserverSeesEveryMessage) {
  std::atomic<int> cers{0};
  std::atomic<int> requests{0};
  embedded_peer peer({.on_message = [&](const message_view& m) {
    if (m.header().command_code == command::capabilities_exchange) ++cers;
    if (m.header().command_code == 272) ++requests;
  }});
  auto c = connected(peer);
  c->send(make_request(1));
  ASSERT_TRUE(c->read_message());
  EXPECT_EQ(cers.load(), 1);
  EXPECT_EQ(requests.load(), 1);
}

// Collects on_event calls (they come from the I/O threads).
struct event_log {
  std::mutex mutex;
  std::vector<embedded_peer_event> events;
  std::function<void(const embedded_peer_event&)> observer() {
    return [this](const embedded_peer_event& e) {
      std::lock_guard lk(mutex);
      events.push_back(e);
    };
  }
  std::vector<embedded_peer_event> snapshot() {
    std::lock_guard lk(mutex);
    return events;
  }
};

std::string local_address_of(const client& c) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

TEST(EmbeddedPeerLifetime, EventsTellAConnectionsLife) {
  event_log log;
  embedded_peer peer({.on_event = log.observer()});
  auto c = connected(peer);
  const std::string remote = local_address_of(*c);
  c->send(make_base_request(command::disconnect_peer, 9, disconnect_cause::busy));
  ASSERT_TRUE(c->read_message());
  c->close();
  // `closed` is reported before the counters show it.
  ASSERT_TRUE(wait(peer, [](const auto& s) { return s.connections_closed == 1; }));
  const auto events = log.snapshot();
  ASSERT_EQ(events.size(), 4U);
  EXPECT_EQ(events[0].kind, embedded_peer_event_kind::accepted);
  EXPECT_EQ(events[0].origin_host, "");
  EXPECT_EQ(events[1].kind, embedded_peer_event_kind::capabilities_exchange);
  EXPECT_EQ(events[1].result_code, result_code::success);
  EXPECT_EQ(events[2].kind, embedded_peer_event_kind::disconnect_request);
  EXPECT_EQ(events[2].disconnect_cause, disconnect_cause::busy);
  EXPECT_EQ(events[3].kind, embedded_peer_event_kind::closed);
  EXPECT_EQ(events[3].reason, "closed by the client");
  for (const auto& e : events) {
    EXPECT_EQ(e.connection, events[0].connection);
    EXPECT_EQ(e.remote_address, remote);
  }
  for (std::size_t i = 1; i < events.size(); ++i)
    EXPECT_EQ(events[i].origin_host, "client.example.com");
}

TEST(EmbeddedPeerLifetime, EventsForARefusedCerAndForTheDestructor) {
  event_log log;
  auto peer = std::make_unique<embedded_peer>(embedded_peer_options{
      .faults = {.cea_result_code = result_code::unable_to_comply}, .on_event = log.observer()});
  client refused(*peer);
  const bytes cea = refused.handshake();
  ASSERT_FALSE(cea.empty());
  EXPECT_EQ(refused.wait_closed(), io_status::eof);
  ASSERT_TRUE(wait(*peer, [](const auto& s) { return s.connections_closed == 1; }));
  client idle(*peer);  // no CER: closed by the destructor
  ASSERT_TRUE(wait(*peer, [](const auto& s) { return s.connections_accepted == 2; }));
  peer.reset();
  const auto events = log.snapshot();
  ASSERT_EQ(events.size(), 5U);
  EXPECT_EQ(events[1].kind, embedded_peer_event_kind::capabilities_exchange);
  EXPECT_EQ(events[1].result_code, result_code::unable_to_comply);
  EXPECT_EQ(events[2].kind, embedded_peer_event_kind::closed);
  EXPECT_EQ(events[2].reason, "CEA Result-Code 5012 sent");
  EXPECT_EQ(events[3].kind, embedded_peer_event_kind::accepted);
  EXPECT_NE(events[3].connection, events[0].connection);
  EXPECT_EQ(events[4].kind, embedded_peer_event_kind::closed);
  EXPECT_EQ(events[4].reason, "peer stopping");
  EXPECT_EQ(events[4].origin_host, "");
}

TEST(EmbeddedPeerLifetime, DestructionWithOpenConnectionsIsPrompt) {
  auto peer = std::make_unique<embedded_peer>(
      embedded_peer_options{.threads = 2, .faults = {.answer_delay = 10s}});
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 4; ++i)
    clients.push_back(connected(*peer));
  clients.push_back(std::make_unique<client>(*peer));  // before CER
  for (int i = 0; i < 4; ++i)
    clients[i]->send(make_request(1));  // delayed answers pending
  ASSERT_TRUE(wait(*peer, [](const auto& s) { return s.requests == 4; }));
  const auto start = steady::now();
  peer.reset();
  EXPECT_LT(steady::now() - start, 2s);  // a hang detector, not a performance bound
  for (auto& c : clients)
    EXPECT_EQ(c->wait_closed(), io_status::eof);
}

}  // namespace
}  // namespace diampool
