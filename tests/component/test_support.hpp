// Shared by the component tests: requests, unreachable addresses on loopback, bounded waits.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/message.hpp"

namespace diampool::test {

using bytes = std::vector<std::uint8_t>;

/// A ~100-byte application request (command 272, application 4) with the caller's Hop-by-Hop
/// id and Session-Id, and `padding` more bytes in an AVP peers ignore.
inline bytes make_request(std::uint32_t hbh, const std::string& session = "client;1",
                          std::size_t padding = 0) {
  message_header h;
  h.flags = cmd_flags::request | cmd_flags::proxiable;
  h.command_code = 272;
  h.application_id = 4;
  h.hop_by_hop = hbh;
  bytes out;
  message_builder b(out, h);
  b.add_string(avp_code::session_id, session)
      .add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, "example.net");
  if (padding > 0) b.add_octets(0xfff0, bytes(padding, 0xab));
  b.finish();
  return out;
}

inline message_view view(const bytes& b) {
  std::error_code ec;
  auto v = message_view::parse(b, ec);
  EXPECT_FALSE(ec) << ec.message();
  return v;
}

/// Polls `pred` until it holds or `timeout` passes, for state that changes on other threads
/// with nothing to wait on (counters after a background reconnection, ...).
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// A TCP socket on 127.0.0.1, bound to an ephemeral port and held for the object's life.
class loopback_socket {
 public:
  loopback_socket() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_), 0);
    socklen_t len = sizeof addr_;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len);
    address_ = "127.0.0.1:" + std::to_string(ntohs(addr_.sin_port));
  }
  ~loopback_socket() { ::close(fd_); }
  loopback_socket(const loopback_socket&) = delete;
  loopback_socket& operator=(const loopback_socket&) = delete;
  const std::string& address() const { return address_; }

 protected:
  int fd_ = -1;
  sockaddr_in addr_{};
  std::string address_;
};

/// Bound but not listening: connections are refused, and no other process can take the port
/// while the object lives.
class refused_port : public loopback_socket {};

/// A listener whose accept queue is full: further SYNs are dropped (a black hole), though the
/// kernel may still complete one more handshake into the queue, after which nothing answers.
class black_hole : public loopback_socket {
 public:
  black_hole() {
    EXPECT_EQ(::listen(fd_, 0), 0);
    for (int i = 0; i < 4; ++i) {  // fill the queue (never accepted)
      const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(c, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);
      fillers_.push_back(c);
    }
  }
  ~black_hole() {
    for (int c : fillers_)
      ::close(c);
  }

 private:
  std::vector<int> fillers_;
};

}  // namespace diampool::test
