// raw_peer: the answering side of bench/compare.sh. One thread, one epoll loop, any number of
// listeners, so that the peer costs less per answer than the clients it serves.
//
// It answers CER with a CEA (Result-Code 2001, Auth-Application-Id 4 and Relay), DWR with a
// DWA, DPR with a DPA (then closes), and every other request with the answer the embedded peer
// sends: the request's header with R cleared, its Session-Id, Result-Code 2001, Origin-Host,
// Origin-Realm. Sockets are read in 64 KiB chunks; the answers to one chunk go out in one
// send(). It prints one line, `listening on ADDR[,ADDR...]` (ready for --to), runs until
// SIGINT or SIGTERM, then prints its counters and CPU time per answer.
//
//   raw_peer [--listen HOST:PORT] [--count N]
// With --count N it opens N listeners: on port 0 each gets a port of its own from the system;
// on port P they take P, P+1, ..., P+N-1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/message.hpp"
#include "diampool/types.hpp"

namespace {

using namespace diampool;

constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::uint32_t max_message = 1 << 20;
constexpr const char* origin_host = "peer.example.net";  // as `diampool peer`
constexpr const char* origin_realm = "example.net";
constexpr std::uint32_t signal_id = ~std::uint32_t{0};  // epoll data of the signalfd

[[noreturn]] void fail(const std::string& why, int status = 1) {
  std::fprintf(stderr, "raw_peer: %s\n", why.c_str());
  std::exit(status);
}

std::uint32_t get24(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 16 | std::uint32_t{p[1]} << 8 | p[2];
}
std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | get24(p + 1);
}

// The first top-level AVP with this code: its offset in the message and padded length.
bool find_avp(const std::uint8_t* m, std::size_t len, std::uint32_t code, std::size_t& at,
              std::size_t& size) {
  for (std::size_t off = 20; off + 8 <= len;) {
    const std::size_t avp_len = get24(m + off + 5);
    const std::size_t padded = (avp_len + 3) & ~std::size_t{3};
    if (avp_len < 8 || off + padded > len) return false;
    if (get32(m + off) == code) {
      at = off;
      size = padded;
      return true;
    }
    off += padded;
  }
  return false;
}

// Result-Code 2001, Origin-Host, Origin-Realm: the part every answer shares.
std::vector<std::uint8_t> answer_tail() {
  std::vector<std::uint8_t> out;
  message_builder b(out, message_header{});
  b.add_unsigned32(avp_code::result_code, result_code::success)
      .add_string(avp_code::origin_host, origin_host)
      .add_string(avp_code::origin_realm, origin_realm);
  b.finish();
  out.erase(out.begin(), out.begin() + 20);
  return out;
}

struct connection {
  int fd = -1;
  ip_address local;
  std::vector<std::uint8_t> in = std::vector<std::uint8_t>(2 * read_chunk);
  std::size_t have = 0;
  std::vector<std::uint8_t> out;
  std::size_t out_off = 0;
  bool polling_out = false;
  bool close_when_written = false;  // after the DPA
};

class peer {
 public:
  peer(const std::string& listen, unsigned count) : tail_(answer_tail()) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &stop, nullptr);
    const int sfd = ::signalfd(-1, &stop, SFD_CLOEXEC);
    if (epfd_ < 0 || sfd < 0) fail(std::string("epoll/signalfd: ") + std::strerror(errno));
    add(sfd, signal_id);
    const std::size_t colon = listen.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    const int port = colon == std::string::npos ? -1 : std::atoi(listen.c_str() + colon + 1);
    if (port < 0 || port > 65535 ||
        ::inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sa.sin_addr) != 1) {
      fail("--listen expects IPV4:PORT, got '" + listen + "'", 2);
    }
    for (unsigned i = 0; i < count; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sa.sin_port = htons(static_cast<std::uint16_t>(port == 0 ? 0 : port + static_cast<int>(i)));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 1024) != 0) {
        fail("listen on " + listen + ": " + std::strerror(errno));
      }
      sockaddr_in bound{};
      socklen_t len = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      char host[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &bound.sin_addr, host, sizeof host);
      if (i > 0) addresses_ += ',';
      addresses_.append(host).append(":").append(std::to_string(ntohs(bound.sin_port)));
      listeners_.push_back(fd);
      add(fd, i);
    }
  }

  const std::string& addresses() const { return addresses_; }

  void run() {
    std::array<epoll_event, 256> events;
    for (;;) {
      const int n = ::epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0 && errno != EINTR) fail(std::string("epoll_wait: ") + std::strerror(errno));
      for (int i = 0; i < n; ++i) {
        const std::uint32_t id = events[i].data.u32;
        if (id == signal_id) return;
        if (id < listeners_.size()) {
          accept_all(listeners_[id]);
          continue;
        }
        const std::size_t ci = id - listeners_.size();
        if (!conns_[ci]) continue;
        if (events[i].events & EPOLLOUT) flush(ci);
        if (conns_[ci] && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) read_ready(ci);
      }
    }
  }

  void print_summary() const {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const double cpu = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                       static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    std::printf("raw_peer: %" PRIu64 " connections, %" PRIu64 " CERs, %" PRIu64
                " requests answered, %" PRIu64 " DWRs, %" PRIu64
                " DPRs; CPU %.3f s, %.3f us per answer\n",
                accepted_, cers_, answers_, dwrs_, dprs_, cpu,
                answers_ ? cpu * 1e6 / static_cast<double>(answers_) : 0.0);
  }

 private:
  void add(int fd, std::uint32_t id, std::uint32_t events = EPOLLIN) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = id;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      fail(std::string("epoll_ctl: ") + std::strerror(errno));
    }
  }

  void accept_all(int listener) {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or an error the next connection may not have
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<connection>();
      c->fd = fd;
      sockaddr_in local{};
      socklen_t len = sizeof local;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
      std::array<std::uint8_t, 4> b{};
      std::memcpy(b.data(), &local.sin_addr, 4);
      c->local = ip_address::v4(b);
      std::size_t ci = conns_.size();
      if (!free_.empty()) {
        ci = free_.back();
        free_.pop_back();
        conns_[ci] = std::move(c);
      } else {
        conns_.push_back(std::move(c));
      }
      add(fd, static_cast<std::uint32_t>(listeners_.size() + ci));
      ++accepted_;
    }
  }

  void read_ready(std::size_t ci) {
    connection& c = *conns_[ci];
    for (;;) {
      if (c.in.size() - c.have < read_chunk) c.in.resize(c.have + read_chunk);
      const std::size_t room = c.in.size() - c.have;
      const ssize_t n = ::read(c.fd, &c.in[c.have], room);
      if (n > 0) {
        c.have += static_cast<std::size_t>(n);
        if (!handle_input(c)) return close(ci);
        flush(ci);
        if (!conns_[ci] || static_cast<std::size_t>(n) < room) return;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        return close(ci);
      }
    }
  }

  // Answers the complete messages in c.in; false on a malformed one.
  bool handle_input(connection& c) {
    std::size_t off = 0;
    while (c.have - off >= 20) {
      const std::uint8_t* m = &c.in[off];
      const std::uint32_t len = get24(m + 1);
      if (m[0] != 1 || len < 20 || len % 4 != 0 || len > max_message) return false;
      if (c.have - off < len) break;
      off += len;
      if (!(m[4] & cmd_flags::request)) continue;  // answers (DWA, DPA) need nothing
      switch (get24(m + 5)) {
        case command::capabilities_exchange:
          append_cea(c, m);
          ++cers_;
          break;
        case command::device_watchdog:
          append_base_answer(c.out, m);
          ++dwrs_;
          break;
        case command::disconnect_peer:
          append_base_answer(c.out, m);
          c.close_when_written = true;
          ++dprs_;
          break;
        default:
          append_answer(c.out, m, len);
          ++answers_;
      }
    }
    c.have -= off;
    if (c.have > 0 && off > 0) std::memmove(c.in.data(), &c.in[off], c.have);
    return true;
  }

  // The request's header (R cleared, P kept), its Session-Id, then the shared tail.
  void append_answer(std::vector<std::uint8_t>& out, const std::uint8_t* m, std::size_t len) {
    const std::size_t at = out.size();
    out.insert(out.end(), m, m + 20);
    out[at + 4] = m[4] & cmd_flags::proxiable;
    std::size_t sid = 0;
    std::size_t sid_size = 0;
    if (find_avp(m, len, avp_code::session_id, sid, sid_size)) {
      out.insert(out.end(), m + sid, m + sid + sid_size);
    }
    out.insert(out.end(), tail_.begin(), tail_.end());
    const std::size_t total = out.size() - at;
    out[at + 1] = static_cast<std::uint8_t>(total >> 16);
    out[at + 2] = static_cast<std::uint8_t>(total >> 8);
    out[at + 3] = static_cast<std::uint8_t>(total);
  }

  static message_header answer_header(const std::uint8_t* request) {
    message_header h = message_header::read(request);
    h.length = 0;
    h.flags &= cmd_flags::proxiable;
    return h;
  }

  void append_base_answer(std::vector<std::uint8_t>& out, const std::uint8_t* request) {
    message_builder b(out, answer_header(request));
    b.add_unsigned32(avp_code::result_code, result_code::success)
        .add_string(avp_code::origin_host, origin_host)
        .add_string(avp_code::origin_realm, origin_realm);
    b.finish();
  }

  void append_cea(connection& c, const std::uint8_t* request) {
    message_builder b(c.out, answer_header(request));
    b.add_unsigned32(avp_code::result_code, result_code::success)
        .add_string(avp_code::origin_host, origin_host)
        .add_string(avp_code::origin_realm, origin_realm)
        .add_address(avp_code::host_ip_address, c.local)
        .add_unsigned32(avp_code::vendor_id, 0)
        .add_string(avp_code::product_name, "raw_peer", 0)
        .add_unsigned32(avp_code::auth_application_id, 4)
        .add_unsigned32(avp_code::auth_application_id, application::relay);
    b.finish();
  }

  void flush(std::size_t ci) {
    connection& c = *conns_[ci];
    while (c.out_off < c.out.size()) {
      const ssize_t n =
          ::send(c.fd, &c.out[c.out_off], c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out_off += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c.polling_out) set_polling_out(ci, true);
        return;
      } else {
        return close(ci);
      }
    }
    c.out.clear();
    c.out_off = 0;
    if (c.polling_out) set_polling_out(ci, false);
    if (c.close_when_written) close(ci);
  }

  void set_polling_out(std::size_t ci, bool on) {
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.u32 = static_cast<std::uint32_t>(listeners_.size() + ci);
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[ci]->fd, &ev);
    conns_[ci]->polling_out = on;
  }

  void close(std::size_t ci) {
    ::close(conns_[ci]->fd);
    conns_[ci].reset();
    free_.push_back(ci);
  }

  const std::vector<std::uint8_t> tail_;
  int epfd_ = -1;
  std::string addresses_;
  std::vector<int> listeners_;
  std::vector<std::unique_ptr<connection>> conns_;
  std::vector<std::size_t> free_;
  std::uint64_t accepted_ = 0, cers_ = 0, answers_ = 0, dwrs_ = 0, dprs_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  unsigned count = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("raw_peer [--listen IPV4:PORT] [--count N]\n");
      return 0;
    }
    if (i + 1 >= argc) fail(std::string(a) + ": missing value (or unknown option)", 2);
    if (a == "--listen") {
      listen = argv[++i];
    } else if (a == "--count") {
      const long n = std::atol(argv[++i]);
      if (n < 1 || n > 10000) fail("--count expects 1..10000", 2);
      count = static_cast<unsigned>(n);
    } else {
      fail("unknown option " + std::string(a), 2);
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  peer p(listen, count);
  std::printf("listening on %s\n", p.addresses().c_str());
  std::fflush(stdout);
  p.run();
  p.print_summary();
  return 0;
}
