// raw_client: the baseline `diampool bench` is compared with. One thread, one epoll loop over
// plain non-blocking TCP sockets, nothing else between the program and the kernel.
//
// Each connection does one CER/CEA exchange (blocking), then the loop keeps --inflight requests
// in flight in total, spread over the connections: the same 228-byte Credit-Control-Request as
// `diampool bench` (same AVPs, same values), with a fresh Hop-by-Hop id each. An answer finds
// its request through a flat table indexed by the low bits of its Hop-by-Hop id, and frees the
// slot for the next request. Sockets are read in 64 KiB chunks; the requests a read gives rise
// to are written with one send() per connection. DWRs from the peer are answered.
//
// It prints answers/s, errors, latency quantiles (the same log-linear histogram as `diampool
// bench`, in ns) and CPU time per request; with --json one object with bench's field names.
//
//   raw_client --to HOST:PORT[,HOST:PORT...] [--connections-per-address N] [--inflight W]
//              [--requests N] [--duration S] [--timeout S] [--json]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/histogram.hpp"
#include "diampool/message.hpp"
#include "diampool/types.hpp"

namespace {

using namespace diampool;

constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::uint32_t max_message = 1 << 20;
constexpr std::uint64_t never = ~std::uint64_t{0};
constexpr const char* origin_host = "bench.example.com";  // as `diampool bench`
constexpr const char* origin_realm = "example.com";

// ---------------------------------------------------------------------------------------------
// Small helpers.

[[noreturn]] void fail(const std::string& why, int status = 1) {
  std::fprintf(stderr, "raw_client: %s\n", why.c_str());
  std::exit(status);
}

std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::uint32_t get24(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 16 | std::uint32_t{p[1]} << 8 | p[2];
}
std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | get24(p + 1);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  v = __builtin_bswap32(v);  // to network order (little-endian host)
  std::memcpy(p, &v, 4);
}

// The Result-Code of a message (a top-level AVP), 0 when it has none.
std::uint32_t result_code_of(const std::uint8_t* m, std::size_t len) {
  std::size_t off = 20;
  while (off + 8 <= len) {
    const std::uint32_t code = get32(m + off);
    const std::size_t header = (m[off + 4] & avp_flags::vendor) ? 12 : 8;
    const std::size_t avp_len = get24(m + off + 5);
    if (avp_len < header || off + avp_len > len) return 0;
    if (code == avp_code::result_code && avp_len == header + 4) return get32(m + off + header);
    off += (avp_len + 3) & ~std::size_t{3};
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Messages, built once with diampool's codec (the loop copies the request and patches its ids).

// `diampool bench`'s request (apps/diampool/bench.cpp, build_request), byte for byte.
std::vector<std::uint8_t> build_request() {
  std::vector<std::uint8_t> out;
  message_header h;
  h.flags = cmd_flags::request | cmd_flags::proxiable;
  h.command_code = 272;  // Credit-Control
  h.application_id = 4;  // Diameter Credit Control
  message_builder b(out, h);
  b.add_string(avp_code::session_id, "bench.example.com;1234567890;1;bench")
      .add_string(avp_code::origin_host, origin_host)
      .add_string(avp_code::origin_realm, origin_realm)
      .add_string(avp_code::destination_realm, "example.net")
      .add_unsigned32(avp_code::auth_application_id, 4)
      .add_unsigned32(416, 1)  // CC-Request-Type INITIAL_REQUEST
      .add_unsigned32(415, 0)  // CC-Request-Number
      .add_string(avp_code::user_name, "user@example.com")
      .add_unsigned32(avp_code::origin_state_id, 1)
      .add_string(avp_code::destination_host, "peer.example.net");
  b.finish();
  return out;
}

std::vector<std::uint8_t> build_cer(const ip_address& local) {
  std::vector<std::uint8_t> out;
  message_header h;
  h.flags = cmd_flags::request;
  h.command_code = command::capabilities_exchange;
  h.hop_by_hop = 1;
  h.end_to_end = 1;
  message_builder b(out, h);
  b.add_string(avp_code::origin_host, origin_host)
      .add_string(avp_code::origin_realm, origin_realm)
      .add_address(avp_code::host_ip_address, local)
      .add_unsigned32(avp_code::vendor_id, 0)
      .add_string(avp_code::product_name, "raw_client", 0)
      .add_unsigned32(avp_code::auth_application_id, 4);
  b.finish();
  return out;
}

// Appends the answer to a DWR or DPR: same command and ids, Result-Code 2001.
void append_base_answer(std::vector<std::uint8_t>& out, const std::uint8_t* request) {
  message_header h = message_header::read(request);
  h.flags = 0;
  message_builder b(out, h);
  b.add_unsigned32(avp_code::result_code, result_code::success)
      .add_string(avp_code::origin_host, origin_host)
      .add_string(avp_code::origin_realm, origin_realm);
  b.finish();
}

// ---------------------------------------------------------------------------------------------
// Latency: `diampool bench`'s histogram layout (ns, 5 sub-bucket bits: within 3.1 %), with
// plain counters, read through the library's snapshot for the same quantile definition.

struct latency_counts {
  using layout = basic_histogram<5, 32>;
  std::vector<std::uint64_t> buckets = std::vector<std::uint64_t>(layout::size);
  std::uint64_t count = 0, sum = 0, max = 0, min = std::numeric_limits<std::uint64_t>::max();

  void record(std::uint64_t v) {
    ++buckets[layout::index(v)];
    ++count;
    sum += v;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  histogram_snapshot snapshot() const {
    histogram_snapshot s;
    s.sub_bits = 5;
    s.buckets = buckets;
    s.count = count;
    s.sum = sum;
    s.max = max;
    s.min = count == 0 ? 0 : min;
    return s;
  }
};

// ---------------------------------------------------------------------------------------------
// Options.

struct options {
  std::vector<std::string> to;
  unsigned per_address = 1;
  std::uint64_t inflight = 64;
  std::uint64_t requests = 100000;  // the default, as bench: unless --duration is given
  bool by_count = false;
  double duration = 0;  // seconds; 0: none
  double timeout = 5;   // seconds without any answer before giving up
  bool json = false;
};

options parse_options(int argc, char** argv) {
  options o;
  const auto number = [](std::string_view name, const char* v, double lo, double hi) {
    char* end = nullptr;
    const double x = std::strtod(v, &end);
    if (end == v || *end != '\0' || !(x >= lo && x <= hi)) {
      char why[160];
      std::snprintf(why, sizeof why, "%s expects a number from %g to %g, got '%.40s'",
                    std::string(name).c_str(), lo, hi, v);
      fail(why, 2);
    }
    return x;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      std::printf(
          "raw_client --to HOST:PORT[,HOST:PORT...] [--connections-per-address N]\n"
          "           [--inflight W] [--requests N] [--duration S] [--timeout S] [--json]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) fail(std::string(a) + ": missing value (or unknown option)", 2);
    const char* v = argv[++i];
    if (a == "--to") {
      for (std::string_view s = v; !s.empty();) {
        const std::size_t comma = s.find(',');
        o.to.emplace_back(s.substr(0, comma));
        s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
      }
    } else if (a == "--connections-per-address") {
      o.per_address = static_cast<unsigned>(number(a, v, 1, 1000));
    } else if (a == "--inflight") {
      o.inflight = static_cast<std::uint64_t>(number(a, v, 1, 1 << 20));
    } else if (a == "--requests") {
      o.requests = static_cast<std::uint64_t>(number(a, v, 1, 1e15));
      o.by_count = true;
    } else if (a == "--duration") {
      o.duration = number(a, v, 0.001, 7 * 86400.0);
    } else if (a == "--timeout") {
      o.timeout = number(a, v, 0.001, 3600);
    } else {
      fail("unknown option " + std::string(a), 2);
    }
  }
  if (o.to.empty()) fail("--to HOST:PORT[,HOST:PORT...] is required", 2);
  if (o.duration > 0 && !o.by_count) o.requests = std::numeric_limits<std::uint64_t>::max();
  return o;
}

// ---------------------------------------------------------------------------------------------
// Connections.

struct connection {
  int fd = -1;
  std::string address;
  std::vector<std::uint8_t> in = std::vector<std::uint8_t>(2 * read_chunk);
  std::size_t have = 0;           // bytes in `in`
  std::vector<std::uint8_t> out;  // requests not yet written, from out_off on
  std::size_t out_off = 0;
  bool dirty = false;        // has output to flush this round
  bool polling_out = false;  // EPOLLOUT requested (the socket buffer was full)
  std::uint64_t in_flight = 0;
};

// Connects (blocking), sends a CER and checks the CEA's Result-Code; the socket is then made
// non-blocking. Bytes read after the CEA stay in c.in.
void open_connection(connection& c, double timeout) {
  const std::size_t colon = c.address.rfind(':');
  if (colon == std::string::npos) fail("bad address '" + c.address + "' (HOST:PORT)", 2);
  std::string host = c.address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = c.address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* ai = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &ai); rc != 0) {
    fail(c.address + ": " + ::gai_strerror(rc), 2);
  }
  c.fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int r = c.fd < 0 ? -1 : ::connect(c.fd, ai->ai_addr, ai->ai_addrlen);
  ::freeaddrinfo(ai);
  if (r != 0) fail("connect " + c.address + ": " + std::strerror(errno));
  const int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{static_cast<time_t>(timeout), static_cast<suseconds_t>(timeout * 1e6) % 1000000};
  ::setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  sockaddr_storage local{};  // for Host-IP-Address
  socklen_t len = sizeof local;
  ::getsockname(c.fd, reinterpret_cast<sockaddr*>(&local), &len);
  char text[INET6_ADDRSTRLEN] = "0.0.0.0";
  ::inet_ntop(local.ss_family,
              local.ss_family == AF_INET6
                  ? static_cast<void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                  : static_cast<void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr),
              text, sizeof text);
  const std::vector<std::uint8_t> cer = build_cer(ip_address::parse(text).value_or(ip_address()));
  if (::send(c.fd, cer.data(), cer.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(cer.size())) {
    fail("CER to " + c.address + ": " + std::strerror(errno));
  }
  while (c.have < 20 || c.have < get24(&c.in[1])) {
    const ssize_t n = ::read(c.fd, &c.in[c.have], c.in.size() - c.have);
    if (n <= 0) {
      fail("CEA from " + c.address + ": " +
           (n == 0            ? "connection closed"
            : errno == EAGAIN ? "timed out"
                              : std::strerror(errno)));
    }
    c.have += static_cast<std::size_t>(n);
  }
  const std::uint32_t length = get24(&c.in[1]);
  const std::uint32_t rc = result_code_of(c.in.data(), length);
  if (get24(&c.in[5]) != command::capabilities_exchange || (c.in[4] & cmd_flags::request) ||
      rc != result_code::success) {
    fail("CEA from " + c.address + ": Result-Code " + std::to_string(rc));
  }
  c.have -= length;
  std::memmove(c.in.data(), &c.in[length], c.have);
  ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
}

// ---------------------------------------------------------------------------------------------
// The load. A chain is one of the --inflight slots: it has at most one request in flight, and
// its index is the low bits of that request's Hop-by-Hop id (the high bits count requests).

struct chain {
  std::uint64_t sent_ns = 0;
  std::uint32_t hop_by_hop = 0;
  std::uint32_t conn = 0;
  bool busy = false;
};

class load {
 public:
  load(const options& o, std::vector<connection>& conns, int epfd)
      : o_(o),
        conns_(conns),
        epfd_(epfd),
        request_(build_request()),
        chains_(o.inflight),
        chain_bits_(std::max(1, static_cast<int>(std::bit_width(o.inflight - 1)))),
        // Fewer chains than connections: each chain moves on by `inflight` connections per
        // request, so that every connection gets its share (as `diampool bench` does).
        step_(o.inflight < conns.size() ? o.inflight : 0) {}

  void run() {
    now_ = now_ns();
    t0_ = t_end_ = last_answer_ = now_;
    cpu0_ = cpu_seconds();
    end_ = o_.duration > 0 ? t0_ + static_cast<std::uint64_t>(o_.duration * 1e9) : never;
    for (std::size_t i = 0; i < chains_.size(); ++i) {
      issue(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i % conns_.size()));
    }
    flush_dirty();
    for (std::uint32_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].have > 0) handle_input(i);  // bytes that came with the CEA
    }
    std::vector<epoll_event> events(std::min<std::size_t>(conns_.size(), 1024));
    const auto timeout = static_cast<std::uint64_t>(o_.timeout * 1e9);
    while (in_flight_ > 0) {
      // Wake up for the end of --duration and for --timeout without answers; now_ is fresh.
      const std::uint64_t deadline = std::min(stopping_ ? never : end_, last_answer_ + timeout);
      const int wait_ms = deadline <= now_
                              ? 0
                              : int(std::min<std::uint64_t>((deadline - now_) / 1000000 + 1, 1000));
      const int n = ::epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), wait_ms);
      if (n < 0 && errno != EINTR) fail(std::string("epoll_wait: ") + std::strerror(errno));
      for (int i = 0; i < n; ++i) {
        const std::uint32_t ci = events[i].data.u32;
        if (conns_[ci].fd < 0) continue;
        if (events[i].events & EPOLLOUT) flush(ci);
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_ready(ci);
      }
      flush_dirty();
      now_ = now_ns();
      if (now_ >= end_) stopping_ = true;
      if (in_flight_ > 0 && now_ >= last_answer_ + timeout) {
        timed_out_ = in_flight_;  // nothing answered for --timeout: give up on the rest
        break;
      }
    }
    cpu_ = cpu_seconds() - cpu0_;
  }

  void report(bool json) const {
    using ull = unsigned long long;
    const histogram_snapshot l = latency_.snapshot();
    const ull answers = latency_.count, errors = closed_ + timed_out_, requests = answers + errors;
    const double wall = static_cast<double>(t_end_ - t0_) / 1e9;
    const double rate = wall > 0 ? static_cast<double>(answers) / wall : 0;
    const double cpu_per_request = requests ? cpu_ * 1e6 / static_cast<double>(requests) : 0;
    const double cpu_per_answer = answers ? cpu_ * 1e6 / static_cast<double>(answers) : 0;
    const auto us = [&l](double q) { return static_cast<double>(l.quantile(q)) / 1e3; };
    if (json) {
      std::string a;  // addresses are HOST:PORT, checked by getaddrinfo: nothing to escape
      for (const std::string& s : o_.to)
        a += (a.empty() ? "\"" : ",\"") + s + "\"";
      std::printf(
          "{\"requests\":%llu,\"answers\":%llu,\"answers_2001\":%llu,\"answers_per_second\":%.1f,"
          "\"errors\":%llu,\"errors_by_kind\":{\"connection_closed\":%llu,\"timed_out\":%llu},"
          "\"diameter_errors\":%llu,\"latency_us\":{\"count\":%llu,\"min\":%.3f,\"p50\":%.3f,"
          "\"p90\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f,\"mean\":%.3f},"
          "\"wall_seconds\":%.6f,\"client_cpu_seconds\":%.6f,\"client_cpu_us_per_request\":%.3f,"
          "\"client_cpu_us_per_answer\":%.3f,\"addresses\":[%s],\"connections\":%zu,"
          "\"inflight\":%llu,\"request_bytes\":%zu,\"unmatched_answers\":%llu}\n",
          requests, answers, answers - diameter_errors_, rate, errors, ull{closed_},
          ull{timed_out_}, ull{diameter_errors_}, answers, l.min / 1e3, us(0.5), us(0.9), us(0.99),
          us(0.999), l.max / 1e3, l.mean() / 1e3, wall, cpu_, cpu_per_request, cpu_per_answer,
          a.c_str(), conns_.size(), ull{o_.inflight}, request_.size(), ull{unmatched_});
      return;
    }
    std::string to = conns_.front().address;
    if (o_.to.size() > 1) to += " and " + std::to_string(o_.to.size() - 1) + " more";
    std::printf(
        "raw_client: %s, %zu connection(s), %llu in flight, %zu-byte requests\n"
        "requests:          %llu\n"
        "answers:           %llu (Result-Code 2001: %llu)\n"
        "answers/s:         %.0f\n"
        "errors:            %llu (connection closed %llu, timed out %llu)\n"
        "diameter errors:   %llu\n"
        "unmatched answers: %llu\n"
        "latency (us):      p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n"
        "wall time:         %.3f s\n"
        "client CPU:        %.3f s, %.2f us per request, %.2f us per answer\n",
        to.c_str(), conns_.size(), ull{o_.inflight}, request_.size(), requests, answers,
        answers - diameter_errors_, rate, errors, ull{closed_}, ull{timed_out_},
        ull{diameter_errors_}, ull{unmatched_}, us(0.5), us(0.9), us(0.99), us(0.999), l.max / 1e3,
        l.mean() / 1e3, wall, cpu_, cpu_per_request, cpu_per_answer);
  }

  bool all_ok() const {
    return latency_.count > 0 && closed_ + timed_out_ + diameter_errors_ + unmatched_ == 0;
  }

 private:
  // Queues the chain's next request on connection `ci` (unless the run is ending).
  void issue(std::uint32_t chain_index, std::uint32_t ci) {
    if (stopping_ || sent_ >= o_.requests) {
      stopping_ = true;
      return;
    }
    connection& c = conns_[ci];
    if (c.fd < 0) return;  // that connection is gone: so is this chain
    ++sent_;
    chain& ch = chains_[chain_index];
    ch.hop_by_hop = static_cast<std::uint32_t>(sent_ << chain_bits_) | chain_index;
    ch.sent_ns = now_;
    ch.conn = ci;
    ch.busy = true;
    const std::size_t at = c.out.size();
    c.out.insert(c.out.end(), request_.begin(), request_.end());
    put32(&c.out[at + 12], ch.hop_by_hop);
    put32(&c.out[at + 16], static_cast<std::uint32_t>(sent_));  // End-to-End
    ++c.in_flight;
    ++in_flight_;
    mark_dirty(ci);
  }

  void mark_dirty(std::uint32_t ci) {
    if (!std::exchange(conns_[ci].dirty, true)) dirty_.push_back(ci);
  }

  // Reads until the socket is drained, handling each chunk as it comes, then writes what the
  // answers gave rise to.
  void read_ready(std::uint32_t ci) {
    connection& c = conns_[ci];
    for (;;) {
      if (c.in.size() - c.have < read_chunk) c.in.resize(c.have + read_chunk);
      const std::size_t room = c.in.size() - c.have;
      const ssize_t n = ::read(c.fd, &c.in[c.have], room);
      if (n > 0) {
        now_ = now_ns();
        c.have += static_cast<std::size_t>(n);
        if (!handle_input(ci)) return;
        if (static_cast<std::size_t>(n) < room) break;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        close_connection(ci);
        return;
      }
    }
    if (c.dirty) flush(ci);
  }

  // Handles the complete messages in c.in; false if the connection had to be closed.
  bool handle_input(std::uint32_t ci) {
    connection& c = conns_[ci];
    std::size_t off = 0;
    while (c.have - off >= 20) {
      const std::uint8_t* m = &c.in[off];
      const std::uint32_t len = get24(m + 1);
      if (m[0] != 1 || len < 20 || len % 4 != 0 || len > max_message) {
        std::fprintf(stderr, "raw_client: %s: malformed message, closing\n", c.address.c_str());
        close_connection(ci);
        return false;
      }
      if (c.have - off < len) break;
      off += len;
      const std::uint32_t command = get24(m + 5);
      if (m[4] & cmd_flags::request) {
        if (command == command::device_watchdog || command == command::disconnect_peer) {
          append_base_answer(c.out, m);
          mark_dirty(ci);
        }
        continue;
      }
      const std::uint32_t hbh = get32(m + 12);
      const std::uint32_t index = hbh & ((1u << chain_bits_) - 1);
      if (index >= chains_.size() || !chains_[index].busy || chains_[index].hop_by_hop != hbh) {
        ++unmatched_;
        continue;
      }
      chain& ch = chains_[index];
      ch.busy = false;
      latency_.record(now_ - ch.sent_ns);
      if (result_code_of(m, len) != result_code::success) ++diameter_errors_;
      --c.in_flight;
      --in_flight_;
      last_answer_ = t_end_ = now_;
      std::uint32_t next = ch.conn;
      if (step_ != 0) next = static_cast<std::uint32_t>((next + step_) % conns_.size());
      issue(index, next);
    }
    c.have -= off;
    if (c.have > 0 && off > 0) std::memmove(c.in.data(), &c.in[off], c.have);
    return true;
  }

  // Writes c.out; what the socket does not take waits for EPOLLOUT.
  void flush(std::uint32_t ci) {
    connection& c = conns_[ci];
    c.dirty = false;
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
        close_connection(ci);
        return;
      }
    }
    c.out.clear();
    c.out_off = 0;
    if (c.polling_out) set_polling_out(ci, false);
  }

  void flush_dirty() {
    for (std::size_t i = 0; i < dirty_.size(); ++i) {
      if (conns_[dirty_[i]].dirty && conns_[dirty_[i]].fd >= 0) flush(dirty_[i]);
    }
    dirty_.clear();
  }

  void set_polling_out(std::uint32_t ci, bool on) {
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.u32 = ci;
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[ci].fd, &ev);
    conns_[ci].polling_out = on;
  }

  // The peer closed (or the socket failed): its requests in flight count as errors.
  void close_connection(std::uint32_t ci) {
    connection& c = conns_[ci];
    std::fprintf(stderr, "raw_client: %s: connection closed with %llu in flight\n",
                 c.address.c_str(), static_cast<unsigned long long>(c.in_flight));
    for (chain& ch : chains_) {
      if (ch.busy && ch.conn == ci) ch.busy = false;
    }
    closed_ += c.in_flight;
    in_flight_ -= c.in_flight;
    c.in_flight = 0;
    c.dirty = false;
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }

  const options& o_;
  std::vector<connection>& conns_;
  const int epfd_;
  const std::vector<std::uint8_t> request_;
  std::vector<chain> chains_;
  const int chain_bits_;
  const std::size_t step_;
  std::vector<std::uint32_t> dirty_;

  std::uint64_t now_ = 0;  // read after each read(): the time of the answers it brought
  std::uint64_t t0_ = 0, t_end_ = 0, end_ = 0, last_answer_ = 0;
  double cpu0_ = 0, cpu_ = 0;
  bool stopping_ = false;
  std::uint64_t sent_ = 0, in_flight_ = 0;
  std::uint64_t diameter_errors_ = 0, closed_ = 0, timed_out_ = 0, unmatched_ = 0;
  latency_counts latency_;
};

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_options(argc, argv);
  std::vector<connection> conns(o.to.size() * o.per_address);
  const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) fail(std::string("epoll_create1: ") + std::strerror(errno));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i].address = o.to[i % o.to.size()];
    open_connection(conns[i], o.timeout);
    conns[i].out.reserve(o.inflight / conns.size() * 256 + 4096);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) {
      fail(std::string("epoll_ctl: ") + std::strerror(errno));
    }
  }
  load l(o, conns, epfd);
  l.run();
  l.report(o.json);
  for (connection& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  ::close(epfd);
  return l.all_ok() ? 0 : 1;
}
