// `diampool bench`: a load generator through address_client's asynchronous API.
//
// It keeps --inflight requests in flight, spread over one or more addresses, until --requests
// have been sent or --duration has passed, then reports the answers, the errors by kind, the
// latency quantiles from a log-linear histogram, the client's CPU time per request and the
// pool's counters. With no --to it starts embedded peers itself, in a child process forked
// before any thread exists, so that the CPU time of this process is the client's alone.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <latch>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "diampool/address.hpp"
#include "diampool/address_client.hpp"
#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/connection.hpp"
#include "diampool/embedded_peer.hpp"
#include "diampool/histogram.hpp"
#include "diampool/message.hpp"
#include "json.hpp"
#include "metrics.hpp"

namespace diampool::cli {
namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Arguments. Every value is taken as text and checked here, so that each mistake gets a
// message naming the option and exit status 2.

struct bench_options {
  std::string to;
  std::string requests;
  std::string duration;
  std::string inflight = "64";
  std::string threads = "1";
  std::string peers = "1";
  std::string peer_threads = "1";
  std::string peer_cpus;
  std::string size;
  std::string timeout = "5";
  bool json = false;
};

struct bench_plan {
  std::vector<std::string> addresses;  // empty: start embedded peers
  std::uint64_t requests = 0;          // the most requests to send
  std::optional<std::chrono::nanoseconds> duration;
  std::size_t inflight = 0;
  unsigned threads = 0;
  unsigned peers = 0;
  unsigned peer_threads = 0;
  std::vector<int> peer_cpus;
  std::size_t size = 0;  // 0: the request as built, unpadded
  std::chrono::nanoseconds timeout{};
  bool json = false;
};

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr std::uint64_t default_requests = 100000;
constexpr std::size_t max_request_size = default_max_message_size;

std::uint64_t parse_count(std::string_view name, const std::string& v, std::uint64_t max) {
  std::uint64_t x = 0;
  const char* end = v.data() + v.size();
  const auto [p, ec] = std::from_chars(v.data(), end, x);
  if (v.empty() || v[0] == '-' || ec == std::errc::invalid_argument || p != end) {
    throw usage_error(std::string(name) + " expects a positive whole number, got '" + v + "'");
  }
  if (x == 0) throw usage_error(std::string(name) + " must be at least 1, got " + v);
  if (ec == std::errc::result_out_of_range || x > max) {
    throw usage_error(std::string(name) + " must be at most " + std::to_string(max) + ", got " + v);
  }
  return x;
}

std::chrono::nanoseconds parse_seconds(std::string_view name, const std::string& v, double max) {
  double x = 0;
  const char* end = v.data() + v.size();
  const auto [p, ec] = std::from_chars(v.data(), end, x);
  if (v.empty() || ec != std::errc() || p != end || !std::isfinite(x)) {
    throw usage_error(std::string(name) + " expects a number of seconds, got '" + v + "'");
  }
  if (x <= 0) throw usage_error(std::string(name) + " must be above 0 seconds, got " + v);
  if (x > max) {
    throw usage_error(std::string(name) + " must be at most " + std::to_string(int(max)) +
                      " seconds, got " + v);
  }
  return std::chrono::nanoseconds(static_cast<std::int64_t>(x * 1e9));
}

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = v.find(',', start);
    out.push_back(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// "1", "0,1", "2-3".
std::vector<int> parse_cpus(const std::string& v) {
  const int ncpu = static_cast<int>(std::min<long>(::sysconf(_SC_NPROCESSORS_CONF), CPU_SETSIZE));
  std::vector<int> cpus;
  for (const std::string& item : split_list(v)) {
    const std::size_t dash = item.find('-');
    int lo = -1;
    int hi = -1;
    const auto num = [&](std::string_view s, int& out) {
      const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return !s.empty() && ec == std::errc() && p == s.data() + s.size() && out >= 0 && out < ncpu;
    };
    const bool ok = dash == std::string::npos
                        ? num(item, lo) && ((hi = lo), true)
                        : num(std::string_view(item).substr(0, dash), lo) &&
                              num(std::string_view(item).substr(dash + 1), hi) && lo <= hi;
    if (!ok) {
      throw usage_error("--peer-cpus expects CPU numbers (0 to " + std::to_string(ncpu - 1) +
                        ") such as 1 or 0,2-3, got '" + v + "'");
    }
    for (int c = lo; c <= hi; ++c)
      cpus.push_back(c);
  }
  return cpus;
}

bench_plan make_plan(const bench_options& o, const CLI::App& cmd) {
  bench_plan p;
  if (cmd.count("--to") > 0) {
    if (o.to.empty()) throw usage_error("--to expects host:port[,host:port...], got nothing");
    for (const std::string& a : split_list(o.to)) {
      std::string host;
      std::string port;
      if (a.empty()) throw usage_error("--to has an empty address in '" + o.to + "'");
      if (split_address(a, host, port)) {
        throw usage_error("--to: bad address '" + a +
                          "' (expected host:port or [v6-address]:port, port 1..65535)");
      }
      p.addresses.push_back(a);
    }
    for (const char* local : {"--peers", "--peer-threads", "--peer-cpus"}) {
      if (cmd.count(local) > 0) {
        throw usage_error(std::string(local) + " starts embedded peers: not with --to");
      }
    }
  }
  const bool by_count = cmd.count("--requests") > 0;
  const bool by_time = cmd.count("--duration") > 0;
  p.requests = by_count  ? parse_count("--requests", o.requests, std::uint64_t{1} << 48)
               : by_time ? std::numeric_limits<std::uint64_t>::max()
                         : default_requests;
  if (by_time) p.duration = parse_seconds("--duration", o.duration, 7 * 86400.0);
  p.inflight = parse_count("--inflight", o.inflight, 100000);
  p.threads = static_cast<unsigned>(parse_count("--threads", o.threads, 256));
  p.peers = static_cast<unsigned>(parse_count("--peers", o.peers, 1000));
  p.peer_threads = static_cast<unsigned>(parse_count("--peer-threads", o.peer_threads, 64));
  if (!o.peer_cpus.empty()) p.peer_cpus = parse_cpus(o.peer_cpus);
  if (!o.size.empty()) p.size = parse_count("--size", o.size, max_request_size);
  p.timeout = parse_seconds("--timeout", o.timeout, 3600);
  p.json = o.json;
  return p;
}

// ---------------------------------------------------------------------------------------------
// The request: a ~230-byte Credit-Control-Request, optionally padded to --size bytes with an
// AVP peers ignore (not mandatory, vendor 32473: RFC 5612's enterprise number for examples).

constexpr std::uint32_t padding_vendor = 32473;
constexpr std::uint32_t padding_code = 1;

std::vector<std::uint8_t> build_request(std::size_t size) {
  const auto build = [](std::optional<std::size_t> pad) {
    std::vector<std::uint8_t> out;
    message_header h;
    h.flags = cmd_flags::request | cmd_flags::proxiable;
    h.command_code = 272;  // Credit-Control
    h.application_id = 4;  // Diameter Credit Control
    message_builder b(out, h);
    b.add_string(avp_code::session_id, "bench.example.com;1234567890;1;bench")
        .add_string(avp_code::origin_host, "bench.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_string(avp_code::destination_realm, "example.net")
        .add_unsigned32(avp_code::auth_application_id, 4)
        .add_unsigned32(416, 1)  // CC-Request-Type INITIAL_REQUEST
        .add_unsigned32(415, 0)  // CC-Request-Number
        .add_string(avp_code::user_name, "user@example.com")
        .add_unsigned32(avp_code::origin_state_id, 1)
        .add_string(avp_code::destination_host, "peer.example.net");
    if (pad) {
      const std::vector<std::uint8_t> zeros(*pad, 0);
      b.add_octets(padding_code, zeros, avp_flags::vendor, padding_vendor);
    }
    b.finish();
    return out;
  };
  std::vector<std::uint8_t> base = build(std::nullopt);
  if (size == 0 || size == base.size()) return base;
  if (size < base.size()) {
    throw usage_error("--size must be at least " + std::to_string(base.size()) +
                      " (the request without padding), got " + std::to_string(size));
  }
  // The padding AVP's header is 12 bytes and its data a multiple of 4: sizes round up.
  const std::size_t padding_header = 12;
  const std::size_t data =
      size <= base.size() + padding_header ? 0 : (size - base.size() - padding_header + 3) / 4 * 4;
  return build(data);
}

// ---------------------------------------------------------------------------------------------
// The embedded peers' process.

double seconds_of(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double self_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return seconds_of(u);
}

bool write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void on_sigterm(int) {}  // only interrupts the child's ppoll

// The child: starts the peers, reports "ok PORT..." (or "error WHY") on `fd`, then serves
// until the parent closes its end of `fd` (or dies) or SIGTERM arrives.
[[noreturn]] void run_peer_child(int fd, pid_t parent, const bench_plan& plan) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(1);  // the parent is already gone
  std::signal(SIGINT, SIG_IGN);           // Ctrl-C stops the parent, which then stops us
  std::signal(SIGPIPE, SIG_IGN);
  // stdout is the parent's report alone (it may be a pipe read to its end).
  if (const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC); devnull >= 0) {
    ::dup2(devnull, STDOUT_FILENO);
    ::close(devnull);
  }
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigset_t wait_mask;
  // Blocked in every thread; only the wait below lets it in.
  ::sigprocmask(SIG_BLOCK, &term, &wait_mask);
  sigdelset(&wait_mask, SIGTERM);
  struct sigaction sa {};
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::string reply;
  if (!plan.peer_cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : plan.peer_cpus)
      CPU_SET(c, &set);
    // Before any thread: the peers' threads inherit it.
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
      reply = std::string("error --peer-cpus: ") + std::strerror(errno) + "\n";
      write_all(fd, reply);
      ::_exit(1);
    }
  }
  {
    std::vector<std::unique_ptr<embedded_peer>> peers;
    bool ok = true;
    try {
      embedded_peer_options o;
      o.listen = "127.0.0.1:0";
      o.threads = plan.peer_threads;
      reply = "ok";
      for (unsigned i = 0; i < plan.peers; ++i) {
        peers.push_back(std::make_unique<embedded_peer>(o));
        reply += " " + std::to_string(peers.back()->port());
      }
    } catch (const std::exception& e) {
      reply = std::string("error ") + e.what();
      ok = false;
    }
    reply += "\n";
    if (!write_all(fd, reply)) ok = false;
    while (ok) {
      pollfd p{fd, POLLIN, 0};
      const int r = ::ppoll(&p, 1, nullptr, &wait_mask);
      if (r < 0) break;  // SIGTERM (EINTR), or nothing left to wait for
      char buf[64];
      if (r > 0 && ::read(fd, buf, sizeof buf) <= 0) break;  // parent closed its end
    }
  }  // the peers stop here: listeners and connections closed, threads joined
  ::_exit(0);
}

// The embedded peers, in a child process forked from a process that has no thread yet.
class peer_process {
 public:
  explicit peer_process(const bench_plan& plan) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      throw std::system_error(errno, std::generic_category(), "socketpair");
    }
    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      const int e = errno;
      ::close(sv[0]);
      ::close(sv[1]);
      throw std::system_error(e, std::generic_category(), "fork");
    }
    if (pid_ == 0) {
      ::close(sv[0]);
      run_peer_child(sv[1], parent, plan);
    }
    ::close(sv[1]);
    fd_ = sv[0];
    std::string line;
    if (!read_line(line, 30s)) {
      stop();
      throw std::runtime_error("the embedded peers' process did not start");
    }
    if (line.rfind("ok", 0) != 0) {
      stop();
      throw std::runtime_error("embedded peers: " +
                               (line.rfind("error ", 0) == 0 ? line.substr(6) : line));
    }
    std::size_t pos = 2;
    while (pos < line.size()) {
      const std::size_t next = line.find(' ', pos + 1);
      addresses_.push_back("127.0.0.1:" + line.substr(pos + 1, next - pos - 1));
      pos = next;
    }
  }

  ~peer_process() { stop(); }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;

  const std::vector<std::string>& addresses() const noexcept { return addresses_; }
  /// After stop(): whether the child exited by itself with status 0.
  bool clean_exit() const noexcept { return clean_exit_; }

  /// Closes our end of the pipe (the child stops its peers and exits), waits for it (SIGTERM
  /// after 10 s, SIGKILL 5 s later), reaps it. Returns the CPU seconds of our children.
  double stop() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (pid_ > 0) {
      if (!wait_exit(10s)) {
        ::kill(pid_, SIGTERM);
        if (!wait_exit(5s)) ::kill(pid_, SIGKILL);
      }
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
      clean_exit_ = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!clean_exit_) {
        std::fprintf(stderr, "diampool bench: the embedded peers' process %s %d\n",
                     WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      }
      rusage u{};
      ::getrusage(RUSAGE_CHILDREN, &u);
      cpu_ = seconds_of(u);
    }
    return cpu_;
  }

 private:
  bool read_line(std::string& line, std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char buf[512];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      line.append(buf, static_cast<std::size_t>(n));
      if (const std::size_t nl = line.find('\n'); nl != std::string::npos) {
        line.resize(nl);
        return true;
      }
    }
  }

  // Waits for the child to exit (without reaping it) for at most `timeout`.
  bool wait_exit(std::chrono::milliseconds timeout) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd < 0) return false;
    const auto deadline = clock::now() + timeout;
    bool exited = false;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      pollfd p{pidfd, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
      if (r < 0 && errno == EINTR) continue;
      exited = r > 0;
      break;
    }
    ::close(pidfd);
    return exited;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::vector<std::string> addresses_;
  double cpu_ = 0;
  bool clean_exit_ = false;
};

// ---------------------------------------------------------------------------------------------
// Errors by kind.

const char* diampool_error_name(error e) {
  switch (e) {
    case error::bad_version:
      return "bad_version";
    case error::message_too_short:
      return "message_too_short";
    case error::message_too_long:
      return "message_too_long";
    case error::bad_message_length:
      return "bad_message_length";
    case error::truncated_avp_header:
      return "truncated_avp_header";
    case error::bad_avp_length:
      return "bad_avp_length";
    case error::avp_overrun:
      return "avp_overrun";
    case error::bad_padding:
      return "bad_padding";
    case error::nesting_too_deep:
      return "nesting_too_deep";
    case error::bad_value_length:
      return "bad_value_length";
    case error::bad_address:
      return "bad_address";
    case error::time_out_of_range:
      return "time_out_of_range";
    case error::invalid_utf8:
      return "invalid_utf8";
    case error::type_mismatch:
      return "type_mismatch";
    case error::unknown_name:
      return "unknown_name";
    case error::buffer_too_small:
      return "buffer_too_small";
    case error::value_too_long:
      return "value_too_long";
    case error::unbalanced_group:
      return "unbalanced_group";
    case error::connection_closed:
      return "connection_closed";
    case error::connection_timeout:
      return "connection_timeout";
    case error::handshake_failed:
      return "handshake_failed";
    case error::watchdog_timeout:
      return "watchdog_timeout";
    case error::disconnected_by_peer:
      return "disconnected_by_peer";
    case error::timed_out:
      return "timed_out";
    case error::cancelled:
      return "cancelled";
    case error::not_open:
      return "not_open";
    case error::invalid_request:
      return "invalid_request";
    case error::send_queue_full:
      return "send_queue_full";
    case error::invalid_config:
      return "invalid_config";
    case error::pool_closed:
      return "pool_closed";
    case error::invalid_address:
      return "invalid_address";
  }
  return nullptr;
}

// A short identifier for an error: diampool's own names, errno names for the usual socket
// errors, else category:value.
std::string error_kind(const std::error_code& ec) {
  if (ec.category() == error_category()) {
    if (const char* n = diampool_error_name(static_cast<error>(ec.value()))) return n;
  }
  if (ec.category() == std::system_category() || ec.category() == std::generic_category()) {
    switch (ec.value()) {
      case ECONNREFUSED:
        return "connection_refused";
      case ECONNRESET:
        return "connection_reset";
      case ECONNABORTED:
        return "connection_aborted";
      case EHOSTUNREACH:
        return "host_unreachable";
      case ENETUNREACH:
        return "network_unreachable";
      case EADDRNOTAVAIL:
        return "address_not_available";
      case EPIPE:
        return "broken_pipe";
      case ETIMEDOUT:
        return "tcp_timed_out";
      case EMFILE:
        return "too_many_open_files";
      default:
        break;
    }
  }
  return std::string(ec.category().name()) + ":" + std::to_string(ec.value());
}

struct error_count {
  std::string message;
  std::uint64_t count = 0;
};

// ---------------------------------------------------------------------------------------------
// The load: `inflight` chains of requests; each completion records its outcome and sends the
// next request of its chain, until the count or the time is used up. Latencies go to a
// histogram per thread (shard); the counters that every completion writes sit on cache lines
// of their own (hence the padding).

class load_generator {  // NOLINT(clang-analyzer-optin.performance.Padding)
 public:
  load_generator(address_client& client, const std::vector<std::string>& addresses,
                 const std::vector<std::uint8_t>& request, const bench_plan& plan)
      : client_(client),
        addresses_(addresses),
        request_(request),
        limit_(plan.requests),
        timeout_(plan.timeout),
        inflight_target_(plan.inflight),
        // Fewer chains than addresses: each chain moves on by `inflight` addresses per
        // request, so that every address gets its share; otherwise chain i stays on address
        // i % n, which keeps the same number in flight on each.
        step_(plan.inflight < addresses.size() ? plan.inflight : 0) {}

  // Starts the chains; `duration` (--duration) bounds the time from now.
  void start(std::optional<std::chrono::nanoseconds> duration) {
    t0_ = clock::now();
    if (duration) end_ = t0_ + *duration;
    in_flight_.store(1, std::memory_order_relaxed);  // ours until every chain has started
    for (std::size_t i = 0; i < inflight_target_; ++i) {
      if (!issue(static_cast<std::uint32_t>(i % addresses_.size()), clock::now())) break;
    }
    release();
  }

  // No new request from now on; those in flight still complete.
  void stop() noexcept { stopping_.store(true, std::memory_order_relaxed); }

  // True once the last request has completed.
  bool wait_until(clock::time_point t) {
    std::unique_lock lk(done_m_);
    return done_cv_.wait_until(lk, t, [&] { return done_; });
  }

  clock::time_point started() const noexcept { return t0_; }
  clock::time_point finished() const {
    std::lock_guard lk(done_m_);
    return t_end_;
  }
  std::uint64_t answers() const {
    std::lock_guard lk(shards_m_);
    std::uint64_t n = 0;
    for (const auto& [id, sh] : shards_)
      n += sh->latency.count();
    return n;
  }
  std::uint64_t errors() const noexcept { return errors_.load(std::memory_order_relaxed); }
  std::uint64_t diameter_errors() const noexcept {
    return diameter_errors_.load(std::memory_order_relaxed);
  }
  std::uint64_t in_flight() const noexcept {
    const std::uint64_t n = in_flight_.load(std::memory_order_relaxed);
    return n > inflight_target_ ? inflight_target_ : n;
  }
  histogram_snapshot latency() const {
    std::lock_guard lk(shards_m_);
    histogram_snapshot all;
    for (const auto& [id, sh] : shards_)
      all.merge(sh->latency.snapshot());
    return all;
  }
  std::map<std::string, error_count> errors_by_kind() const {
    std::lock_guard lk(slow_m_);
    return errors_by_kind_;
  }
  std::map<std::string, std::uint64_t> diameter_errors_by_code() const {
    std::lock_guard lk(slow_m_);
    return diameter_by_code_;
  }

 private:
  struct completion {
    load_generator* g;
    std::uint32_t address;
    clock::time_point start;
    void operator()(std::error_code ec, const std::vector<std::uint8_t>& answer) const {
      g->complete(address, start, ec, answer);
    }
  };

  // `now`: a completion passes the time it read, which is also this request's start.
  bool issue(std::uint32_t address, clock::time_point now) {
    if (stopping_.load(std::memory_order_relaxed)) return false;
    if (limit_ != unlimited && reserved_.fetch_add(1, std::memory_order_relaxed) >= limit_) {
      stop();
      return false;
    }
    if (now >= end_) {
      stop();
      return false;
    }
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    // The API takes the address and the request by value: the string fits the small-string
    // buffer for IPv4 loopback addresses; the request is one allocation and a copy.
    client_.async_send(addresses_[address], request_, now + timeout_,
                       completion{this, address, now});
    return true;
  }

  void complete(std::uint32_t address, clock::time_point start, std::error_code ec,
                const std::vector<std::uint8_t>& answer) {
    // The clock reading of the read that brought the answer (as the raw baseline reads the
    // clock once per read), or a fresh one for a completion outside a connection event.
    const clock::time_point now = detail::event_time_or_now();
    if (!ec) {
      local().latency.record_single_writer(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - start).count()));
      check_result_code(answer);
    } else {
      count_error(ec);
    }
    if (step_ != 0) {
      address = static_cast<std::uint32_t>((address + step_) % addresses_.size());
    }
    issue(address, now);
    release();
  }

  void release() {
    if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      const clock::time_point now = clock::now();
      std::lock_guard lk(done_m_);
      t_end_ = now;
      done_ = true;
      done_cv_.notify_all();
    }
  }

  void check_result_code(const std::vector<std::uint8_t>& answer) {
    std::error_code ec;
    const message_view m = message_view::parse(answer, ec);
    std::string key;
    if (ec) {
      key = "malformed answer";
    } else if (const std::optional<avp> rc = m.find(avp_code::result_code)) {
      const std::uint32_t code = rc->as_unsigned32(ec);
      if (!ec && code == result_code::success) return;  // the common case: nothing to count
      key = ec ? std::string("malformed Result-Code") : std::to_string(code);
    } else if (const std::optional<avp> er = m.find(avp_code::experimental_result)) {
      key = "Experimental-Result";
      for (const avp& c : er->children()) {
        if (c.code() == avp_code::experimental_result_code) {
          const std::uint32_t code = c.as_unsigned32(ec);
          if (!ec) key = "experimental " + std::to_string(code);
        }
      }
    } else {
      key = "no Result-Code";
    }
    diameter_errors_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lk(slow_m_);
    ++diameter_by_code_[key];
  }

  void count_error(const std::error_code& ec) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    std::string kind = error_kind(ec);
    std::lock_guard lk(slow_m_);
    error_count& e = errors_by_kind_[std::move(kind)];
    if (e.count++ == 0) e.message = ec.message();
  }

  // What the completions running on one thread record, written by that thread alone (no
  // atomic read-modify-write, a full barrier each, per answer); read from any thread.
  struct shard {
    basic_histogram<5, 32> latency;  // nanoseconds, answered requests
  };

  shard& local() {
    thread_local std::uint64_t owner = 0;  // the generator `mine` belongs to
    thread_local shard* mine = nullptr;
    if (owner != serial_) {
      const std::thread::id me = std::this_thread::get_id();
      std::lock_guard lk(shards_m_);
      auto it = std::find_if(shards_.begin(), shards_.end(),
                             [&](const auto& s) { return s.first == me; });
      if (it == shards_.end()) {
        shards_.emplace_back(me, std::make_unique<shard>());
        it = std::prev(shards_.end());
      }
      mine = it->second.get();
      owner = serial_;
    }
    return *mine;
  }

  static std::uint64_t next_serial() {
    static std::atomic<std::uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  static constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t serial_ = next_serial();
  address_client& client_;
  const std::vector<std::string>& addresses_;
  const std::vector<std::uint8_t>& request_;
  const std::uint64_t limit_;
  const std::chrono::nanoseconds timeout_;
  const std::size_t inflight_target_;
  const std::size_t step_;
  clock::time_point end_ = clock::time_point::max();
  clock::time_point t0_;

  // Written by every completion: each on its own cache line.
  alignas(64) std::atomic<std::uint64_t> reserved_{0};  // with a --requests limit only
  alignas(64) std::atomic<std::uint64_t> in_flight_{0};
  alignas(64) std::atomic<bool> stopping_{false};
  alignas(64) std::atomic<std::uint64_t> errors_{0};
  std::atomic<std::uint64_t> diameter_errors_{0};
  mutable std::mutex shards_m_;
  std::vector<std::pair<std::thread::id, std::unique_ptr<shard>>> shards_;

  mutable std::mutex slow_m_;  // the error paths
  std::map<std::string, error_count> errors_by_kind_;
  std::map<std::string, std::uint64_t> diameter_by_code_;

  mutable std::mutex done_m_;
  std::condition_variable done_cv_;
  bool done_ = false;
  clock::time_point t_end_;
};

// ---------------------------------------------------------------------------------------------
// Ctrl-C: the first one stops sending and prints what was measured; a second one kills.

std::atomic<bool> interrupted{false};

void on_sigint(int) {
  interrupted.store(true, std::memory_order_relaxed);
}

void install_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

// Warm-up: one request per address, so that connections are established before the clock
// starts. Failures are reported on stderr; the run then measures what the pool does with a
// down address.
void warm_up(address_client& client, const std::vector<std::string>& addresses,
             const std::vector<std::uint8_t>& request, std::chrono::nanoseconds timeout) {
  struct state {
    explicit state(std::ptrdiff_t n) : left(n) {}
    std::latch left;
    std::mutex m;
    std::vector<std::pair<std::string, std::error_code>> failures;
  } st(static_cast<std::ptrdiff_t>(addresses.size()));
  const auto deadline = clock::now() + timeout;
  for (const std::string& a : addresses) {
    client.async_send(a, request, deadline,
                      [&st, &a](std::error_code ec, const std::vector<std::uint8_t>&) {
                        if (ec) {
                          std::lock_guard lk(st.m);
                          st.failures.emplace_back(a, ec);
                        }
                        st.left.count_down();
                      });
  }
  st.left.wait();
  for (const auto& [a, ec] : st.failures) {
    std::fprintf(stderr, "diampool bench: warm-up request to %s failed: %s\n", a.c_str(),
                 ec.message().c_str());
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

struct report {
  const bench_plan* plan = nullptr;
  std::vector<std::string> addresses;
  bool embedded = false;
  std::size_t request_bytes = 0;
  std::uint64_t requests = 0;
  std::uint64_t answers = 0;
  std::uint64_t answers_2001 = 0;
  std::uint64_t errors = 0;
  std::uint64_t diameter_errors = 0;
  std::map<std::string, error_count> errors_by_kind;
  std::map<std::string, std::uint64_t> diameter_by_code;
  histogram_snapshot latency;  // ns
  double wall = 0;
  double client_cpu = 0;
  std::optional<double> peer_cpu;
  pool_stats pool;
  bool interrupted = false;
};

double per_request_us(double cpu, std::uint64_t requests) {
  return requests == 0 ? 0.0 : cpu * 1e6 / static_cast<double>(requests);
}

std::string num(double v, int decimals = 3) {
  if (!std::isfinite(v)) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e3;
}

void print_json(const report& r) {
  const histogram_snapshot& l = r.latency;
  std::string o = "{";
  const auto field = [&o](std::string_view name, const std::string& value) {
    if (o.size() > 1) o += ",";
    o += json_string(name) + ":" + value;
  };
  const auto u64 = [](std::uint64_t v) { return std::to_string(v); };
  field("requests", u64(r.requests));
  field("answers", u64(r.answers));
  field("answers_2001", u64(r.answers_2001));
  field("answers_per_second", num(r.wall > 0 ? static_cast<double>(r.answers) / r.wall : 0, 1));
  field("errors", u64(r.errors));
  {
    std::string m = "{";
    for (const auto& [kind, e] : r.errors_by_kind) {
      if (m.size() > 1) m += ",";
      m += json_string(kind) + ":" + u64(e.count);
    }
    field("errors_by_kind", m + "}");
    m = "{";
    for (const auto& [kind, e] : r.errors_by_kind) {
      if (m.size() > 1) m += ",";
      m += json_string(kind) + ":" + json_string(e.message);
    }
    field("error_messages", m + "}");
  }
  field("diameter_errors", u64(r.diameter_errors));
  {
    std::string m = "{";
    for (const auto& [code, n] : r.diameter_by_code) {
      if (m.size() > 1) m += ",";
      m += json_string(code) + ":" + u64(n);
    }
    field("diameter_errors_by_result_code", m + "}");
  }
  field("latency_us",
        "{\"count\":" + u64(l.count) + ",\"min\":" + num(us(l.min)) +
            ",\"p50\":" + num(us(l.quantile(0.5))) + ",\"p90\":" + num(us(l.quantile(0.9))) +
            ",\"p99\":" + num(us(l.quantile(0.99))) + ",\"p99_9\":" + num(us(l.quantile(0.999))) +
            ",\"max\":" + num(us(l.max)) + ",\"mean\":" + num(l.mean() / 1e3) + "}");
  field("wall_seconds", num(r.wall, 6));
  field("client_cpu_seconds", num(r.client_cpu, 6));
  field("client_cpu_us_per_request", num(per_request_us(r.client_cpu, r.requests)));
  field("peer_cpu_seconds", r.peer_cpu ? num(*r.peer_cpu, 6) : "null");
  field("peer_cpu_us_per_request",
        r.peer_cpu ? num(per_request_us(*r.peer_cpu, r.requests)) : "null");
  {
    std::string a = "[";
    for (const std::string& s : r.addresses) {
      if (a.size() > 1) a += ",";
      a += json_string(s);
    }
    field("addresses", a + "]");
  }
  field("embedded_peers", r.embedded ? u64(r.addresses.size()) : "0");
  field("inflight", u64(r.plan->inflight));
  field("threads", u64(r.plan->threads));
  field("request_bytes", u64(r.request_bytes));
  field("timeout_seconds", num(std::chrono::duration<double>(r.plan->timeout).count()));
  field("interrupted", r.interrupted ? "true" : "false");
  const pool_stats& p = r.pool;
  field("pool", "{\"connections_created\":" + u64(p.connections_created) +
                    ",\"reconnect_attempts\":" + u64(p.reconnect_attempts) +
                    ",\"failed_establishments\":" + u64(p.failed_establishments) +
                    ",\"active_connections\":" + u64(p.active_connections) +
                    ",\"connections_closed\":" + u64(p.connections_closed) + ",\"messages_sent\":" +
                    u64(p.messages_sent) + ",\"messages_received\":" + u64(p.messages_received) +
                    ",\"bytes_sent\":" + u64(p.bytes_sent) +
                    ",\"bytes_received\":" + u64(p.bytes_received) +
                    ",\"unmatched_answers\":" + u64(p.unmatched_answers) + "}");
  o += "}\n";
  std::fputs(o.c_str(), stdout);
}

void print_text(const report& r) {
  const histogram_snapshot& l = r.latency;
  std::string to = r.addresses.empty() ? "" : r.addresses.front();
  if (r.addresses.size() > 1) to += " and " + std::to_string(r.addresses.size() - 1) + " more";
  std::printf("diampool bench: %s%s, %zu in flight, %u client thread%s, %zu-byte requests%s\n",
              r.embedded ? "embedded peers in a child process at " : "", to.c_str(),
              r.plan->inflight, r.plan->threads, r.plan->threads == 1 ? "" : "s", r.request_bytes,
              r.interrupted ? " (interrupted)" : "");
  std::printf("requests:          %" PRIu64 "\n", r.requests);
  std::printf("answers:           %" PRIu64 " (Result-Code 2001: %" PRIu64 ")\n", r.answers,
              r.answers_2001);
  std::printf("answers/s:         %.0f\n",
              r.wall > 0 ? static_cast<double>(r.answers) / r.wall : 0.0);
  std::printf("errors:            %" PRIu64 "\n", r.errors);
  for (const auto& [kind, e] : r.errors_by_kind) {
    std::printf("  %-24s %" PRIu64 "  (%s)\n", kind.c_str(), e.count, e.message.c_str());
  }
  std::printf("diameter errors:   %" PRIu64 "\n", r.diameter_errors);
  for (const auto& [code, n] : r.diameter_by_code) {
    std::printf("  Result-Code %-12s %" PRIu64 "\n", code.c_str(), n);
  }
  std::printf("latency (us):      p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
              us(l.quantile(0.5)), us(l.quantile(0.9)), us(l.quantile(0.99)), us(l.quantile(0.999)),
              us(l.max), l.mean() / 1e3);
  std::printf("wall time:         %.3f s\n", r.wall);
  std::printf("client CPU:        %.3f s, %.2f us per request\n", r.client_cpu,
              per_request_us(r.client_cpu, r.requests));
  if (r.peer_cpu) {
    std::printf("peer CPU:          %.3f s, %.2f us per request (child process, whole life)\n",
                *r.peer_cpu, per_request_us(*r.peer_cpu, r.requests));
  }
  const pool_stats& p = r.pool;
  std::printf("connections:       %" PRIu64 " created, %" PRIu64 " reconnect attempts, %" PRIu64
              " failed establishments\n",
              p.connections_created, p.reconnect_attempts, p.failed_establishments);
  std::printf("messages:          %" PRIu64 " sent, %" PRIu64 " received (%" PRIu64 " and %" PRIu64
              " bytes)\n",
              p.messages_sent, p.messages_received, p.bytes_sent, p.bytes_received);
  std::fflush(stdout);
}

void print_progress(const load_generator& g, std::uint64_t& last_answers,
                    clock::time_point& last_t) {
  const clock::time_point now = clock::now();
  const std::uint64_t answers = g.answers();
  const double dt = std::chrono::duration<double>(now - last_t).count();
  const double rate = dt > 0 ? static_cast<double>(answers - last_answers) / dt : 0.0;
  std::fprintf(stderr,
               "\r%7.1f s  %9.0f answers/s  answers %" PRIu64 "  errors %" PRIu64
               "  in flight %" PRIu64 "\033[K",
               std::chrono::duration<double>(now - g.started()).count(), rate, answers,
               g.errors() + g.diameter_errors(), g.in_flight());
  std::fflush(stderr);
  last_answers = answers;
  last_t = now;
}

int run_bench(const bench_plan& plan, const common_options& common) {
  // Build the request first: a bad --size is a usage error, found before anything starts.
  const std::vector<std::uint8_t> request = build_request(plan.size);

  // Fork before any thread exists in this process.
  std::optional<peer_process> peers;
  std::vector<std::string> addresses = plan.addresses;
  if (addresses.empty()) {
    peers.emplace(plan);
    addresses = peers->addresses();
  }
  install_sigint();

  pool_config cfg = pool_config::defaults();
  cfg.origin_host = "bench.example.com";
  cfg.origin_realm = "example.com";
  cfg.product_name = "diampool bench";
  cfg.auth_app_ids = {4};
  cfg.worker_threads = plan.threads;
  cfg.send_timeout = plan.timeout;
  cfg.send_buffer_size = std::max<std::size_t>(cfg.send_buffer_size, plan.inflight);
  std::optional<address_client> client;
  client.emplace(std::move(cfg), common.make_logger());
  // Declared after the client: destroyed before it.
  std::optional<metrics_server> metrics;
  if (!common.metrics_listen.empty()) {
    metrics.emplace(common.metrics_listen);
    metrics->add(*client);
    std::fprintf(stderr, "diampool bench: metrics on http://%s/metrics\n",
                 metrics->address().c_str());
  }

  warm_up(*client, addresses, request, plan.timeout);

  load_generator gen(*client, addresses, request, plan);
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const double cpu0 = self_cpu_seconds();
  gen.start(plan.duration);
  const clock::time_point t0 = gen.started();
  clock::time_point end = plan.duration ? t0 + *plan.duration : clock::time_point::max();
  std::uint64_t last_answers = 0;
  clock::time_point last_t = t0;
  clock::time_point next = t0 + 500ms;
  bool was_interrupted = false;
  // Wakes every 0.5 s (and at the end of --duration) until the last request has completed.
  while (!gen.wait_until(std::min(next, end))) {
    const clock::time_point now = clock::now();
    if (interrupted.load(std::memory_order_relaxed) && !was_interrupted) {
      was_interrupted = true;
      gen.stop();
    }
    if (now >= end) {
      gen.stop();  // the chains stop by themselves too; this covers requests still waiting
      end = clock::time_point::max();
    }
    if (now >= next) {
      if (tty) print_progress(gen, last_answers, last_t);
      next += 500ms;
    }
  }
  const double client_cpu = self_cpu_seconds() - cpu0;
  if (tty) std::fputs("\r\033[K", stderr);

  report r;
  r.plan = &plan;
  r.addresses = addresses;
  r.embedded = peers.has_value();
  r.request_bytes = request.size();
  r.latency = gen.latency();
  r.answers = r.latency.count;
  r.errors = gen.errors();
  r.diameter_errors = gen.diameter_errors();
  r.answers_2001 = r.answers - r.diameter_errors;
  r.requests = r.answers + r.errors;
  r.errors_by_kind = gen.errors_by_kind();
  r.diameter_by_code = gen.diameter_errors_by_code();
  r.wall = std::chrono::duration<double>(gen.finished() - gen.started()).count();
  r.client_cpu = client_cpu;
  r.pool = client->stats().pool;
  r.interrupted = was_interrupted || interrupted.load();

  metrics.reset();
  client->close();
  client.reset();
  if (peers) r.peer_cpu = peers->stop();

  if (plan.json) {
    print_json(r);
  } else {
    print_text(r);
  }
  const bool all_ok = r.requests > 0 && r.errors == 0 && r.diameter_errors == 0 &&
                      r.answers_2001 == r.requests && (!peers || peers->clean_exit());
  return all_ok ? 0 : 1;
}

}  // namespace

void add_bench(CLI::App& app, const common_options& common, int& exit_code) {
  auto opts = std::make_shared<bench_options>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Load generator: keeps --inflight requests in flight through an address_client and "
      "reports answers/s, errors by kind, latency quantiles, CPU per request and pool counters");
  cmd->add_option("--to", opts->to,
                  "Addresses to load; none: start --peers embedded peers on 127.0.0.1 in a "
                  "child process")
      ->type_name("ADDR[,ADDR...]");
  cmd->add_option("--requests", opts->requests,
                  "Requests to send (default 100000 unless --duration is given)")
      ->type_name("N");
  cmd->add_option("--duration", opts->duration,
                  "Seconds to send for (with --requests too: whichever ends first)")
      ->type_name("SECONDS");
  cmd->add_option("--inflight", opts->inflight, "Requests in flight in total, over all addresses")
      ->capture_default_str()
      ->type_name("N");
  cmd->add_option("--threads", opts->threads, "I/O threads of the client (worker_threads)")
      ->capture_default_str()
      ->type_name("N");
  cmd->add_option("--peers", opts->peers, "Embedded peers to start when there is no --to")
      ->capture_default_str()
      ->type_name("N");
  cmd->add_option("--peer-threads", opts->peer_threads, "I/O threads of each embedded peer")
      ->capture_default_str()
      ->type_name("N");
  cmd->add_option("--peer-cpus", opts->peer_cpus,
                  "Pin the embedded peers' process to these CPUs (e.g. 1 or 2-3)")
      ->type_name("CPUS");
  cmd->add_option("--size", opts->size,
                  "Request size in bytes, padded with an AVP peers ignore (default: the "
                  "request as built, 228 bytes)")
      ->type_name("BYTES");
  cmd->add_option("--timeout", opts->timeout, "Deadline of each request, seconds")
      ->capture_default_str()
      ->type_name("SECONDS");
  cmd->add_flag("--json", opts->json, "Print the results as one JSON object on stdout");
  cmd->footer(
      "Exit status: 0 when every request was answered with Result-Code 2001, 1 otherwise, 2 "
      "for bad arguments.");
  cmd->callback([opts, cmd, &common, &exit_code] {
    bench_plan plan;
    try {
      plan = make_plan(*opts, *cmd);
      build_request(plan.size);  // checks --size
    } catch (const usage_error& e) {
      std::fprintf(stderr, "diampool bench: %s\n", e.what());
      exit_code = 2;
      return;
    }
    try {
      exit_code = run_bench(plan, common);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "diampool bench: %s\n", e.what());
      exit_code = 1;
    }
  });
}

}  // namespace diampool::cli
