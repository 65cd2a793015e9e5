// diampool_soak: a bounded soak test of address_client against peers that fail.
//
// It starts --peers embedded Diameter peers on loopback, each in a child process (this
// program run again with the hidden --serve-peer), and keeps --inflight requests in flight
// over them through address_client::async_send for --seconds. Every --fault-every-ms it does
// the next action of the rotation SIGKILL, SIGSTOP, SIGTERM, none to one peer picked from the
// --seed: a killed peer is restarted on the same port after --down-ms, a stopped one continued
// after --down-ms, a terminated one (which sends DPR before it exits) restarted once it has
// exited and --down-ms has passed. Each request has a sequence number, a Session-Id
// "soak;<seq>" and a Hop-by-Hop id derived from it; an outcome table indexed by sequence
// number records what became of each one. At the end it reports the outcomes, the faults, the
// client's counters and resources, and exits 0 only if every request had exactly one outcome,
// every answer was its own request's, every fault action ran, no peer died unbidden and
// close() released every descriptor and thread the client took; 1 otherwise (with the
// reasons), 2 on bad arguments.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "diampool/address_client.hpp"
#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/embedded_peer.hpp"
#include "diampool/logger.hpp"
#include "diampool/message.hpp"
#include "diampool/pool_config.hpp"

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

constexpr std::uint32_t app_id = 4;  // Diameter Credit Control, as the requests say

struct options {
  double seconds = 30;
  unsigned peers = 3;
  unsigned inflight = 256;
  unsigned deadline_ms = 1000;
  unsigned fault_every_ms = 2000;
  unsigned down_ms = 300;
  std::uint64_t seed = 1;
  unsigned threads = 2;
  bool json = false;
  bool verbose = false;
  // The peer process (hidden).
  std::string serve_peer;
  long parent_pid = 0;
};

// Times in the report are seconds since the program started.
clock_type::time_point g_start = clock_type::now();

double since_start(clock_type::time_point t) {
  return std::chrono::duration<double>(t - g_start).count();
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return std::string(buf, static_cast<std::size_t>(std::clamp(n, 0, int(sizeof buf) - 1)));
}

std::string stamp() {
  return format("+%.3fs ", since_start(clock_type::now()));
}

// ---------------------------------------------------------------------------------------------
// The peer process: an embedded_peer listening on `listen` until SIGTERM or SIGINT; then it
// refuses new connections, sends DPR (REBOOTING) to its clients, gives them 500 ms to answer
// and close, and exits 0. It dies with the soak (PR_SET_PDEATHSIG).

int serve_peer(const std::string& listen, long parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) return 1;  // the soak is already gone
  std::signal(SIGPIPE, SIG_IGN);
  // Taken with sigwait(): blocked before the peer's threads start, so that they inherit it.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::unique_ptr<diampool::embedded_peer> peer;
  try {
    diampool::embedded_peer_options o;
    o.listen = listen;
    o.auth_application_ids = {app_id};
    peer = std::make_unique<diampool::embedded_peer>(std::move(o));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "diampool_soak --serve-peer %s: %s\n", listen.c_str(), e.what());
    return 1;
  }
  const std::string line = "listening on " + peer->address() + "\n";
  if (::write(STDOUT_FILENO, line.data(), line.size()) < 0) {
    // The soak stopped reading: it knows the address already.
  }
  int sig = 0;
  while (::sigwait(&stop, &sig) != 0) {
  }
  peer->stop_listening();
  peer->send_dpr(diampool::disconnect_cause::rebooting);
  peer->wait_for([](const diampool::embedded_peer_stats& s) { return s.connections_open == 0; },
                 500ms);
  peer.reset();
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The peers and the fault schedule, run by the main thread: an event loop over a signalfd
// (SIGCHLD, SIGINT, SIGTERM) and the standard output of the peers that are starting, woken
// by the next fault or the next due time of a peer.

enum class fault : std::uint8_t { sigkill, sigstop, sigterm, none };
constexpr std::array<fault, 4> fault_rotation{fault::sigkill, fault::sigstop, fault::sigterm,
                                              fault::none};

const char* fault_name(fault f) {
  switch (f) {
    case fault::sigkill:
      return "sigkill";
    case fault::sigstop:
      return "sigstop";
    case fault::sigterm:
      return "sigterm";
    case fault::none:
      return "none";
  }
  return "?";
}

enum class peer_state : std::uint8_t {
  starting,  // spawned, its "listening on" line not read yet
  running,
  stopped,  // SIGSTOP; SIGCONT at `due`
  exiting,  // signalled to exit; SIGKILL at `due` if it has not
  down,     // exited; restarted at `due`
  gone,     // exited at the end of the run
};

struct peer_proc {
  unsigned index = 0;
  std::string listen;  // "127.0.0.1:PORT"
  pid_t pid = -1;
  peer_state state = peer_state::down;
  int out_fd = -1;  // its standard output, while starting
  std::string out;
  clock_type::time_point due = clock_type::time_point::max();
  clock_type::time_point back_at{};  // exiting: restart not before
  bool expect_clean = false;         // exiting after SIGTERM: must exit with status 0
  unsigned start_attempts = 0;
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return format("exited with status %d", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return format("killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  }
  return format("status 0x%x", status);
}

// Ports below the kernel's ephemeral range, so that no outgoing connection (a client's
// reconnection to a peer that is down included) can take a peer's port while it is down.
std::vector<std::uint16_t> port_candidates(unsigned count) {
  unsigned low = 32768;
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  in >> low;
  std::vector<std::uint16_t> out;
  if (low < 2048 || low > 65535) return std::vector<std::uint16_t>(count, 0);  // any port
  const unsigned lo = std::max(1024u, low > 16384 ? low - 16384 : 1024u);
  std::minstd_rand rng(static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<unsigned> pick(lo, low - 1);
  for (unsigned i = 0; i < count; ++i)
    out.push_back(static_cast<std::uint16_t>(pick(rng)));
  return out;
}

class peer_fleet {
 public:
  peer_fleet(const options& o, int sigfd) : o_(o), sigfd_(sigfd), rng_(o.seed) {
    for (unsigned i = 0; i < o.peers; ++i) {
      peer_proc p;
      p.index = i;
      peers_.push_back(std::move(p));
    }
    counts_.fill(0);
  }

  // On error: kills and reaps whatever is left.
  ~peer_fleet() {
    for (peer_proc& p : peers_) {
      close_output(p);
      if (p.pid <= 0) continue;
      ::kill(p.pid, SIGKILL);
      int status = 0;
      while (::waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
      }
      p.pid = -1;
    }
  }

  peer_fleet(const peer_fleet&) = delete;
  peer_fleet& operator=(const peer_fleet&) = delete;

  // Starts every peer, each on a free port; throws if one cannot be started.
  void start() {
    initial_ = true;
    const std::vector<std::uint16_t> ports = port_candidates(o_.peers * 10);
    for (peer_proc& p : peers_) {
      p.listen = "127.0.0.1:" + std::to_string(ports[p.index * 10]);
      spawn(p);
    }
    const auto deadline = clock_type::now() + 60s;
    for (;;) {
      const auto up = std::count_if(peers_.begin(), peers_.end(), [](const peer_proc& p) {
        return p.state == peer_state::running;
      });
      if (static_cast<unsigned>(up) == o_.peers) break;
      if (interrupted_) throw std::runtime_error("interrupted while starting the peers");
      if (clock_type::now() > deadline) throw std::runtime_error("the peers did not start");
      for (peer_proc& p : peers_) {
        if (p.state != peer_state::down) continue;
        if (p.start_attempts >= 10) {
          throw std::runtime_error("peer " + std::to_string(p.index) + " could not be started");
        }
        p.listen = "127.0.0.1:" + std::to_string(ports[p.index * 10 + p.start_attempts]);
        spawn(p);
      }
      turn(deadline);
    }
    initial_ = false;
  }

  std::vector<std::string> addresses() const {
    std::vector<std::string> out;
    for (const peer_proc& p : peers_)
      out.push_back(p.listen);
    return out;
  }

  // Runs the fault schedule from now until `end`. Returns false if SIGINT or SIGTERM cut it
  // short.
  bool run(clock_type::time_point end) {
    auto next_fault = clock_type::now() + milliseconds(o_.fault_every_ms);
    while (!interrupted_) {
      const auto now = clock_type::now();
      if (now >= end) break;
      if (now >= next_fault) {
        inject(now);
        next_fault += milliseconds(o_.fault_every_ms);
        continue;
      }
      turn(std::min(end, next_fault));
    }
    return !interrupted_;
  }

  // Ends the faults: continues the stopped peers and stops reading the output of the ones
  // starting (they are running, or will be).
  void settle() {
    for (peer_proc& p : peers_) {
      if (p.state == peer_state::stopped) {
        ::kill(p.pid, SIGCONT);
        p.state = peer_state::running;
        event(p, "SIGCONT (end of the run)");
      }
      close_output(p);
    }
  }

  // SIGTERM to every peer, SIGKILL to those still there 5 s later; reaps them all.
  void stop_all() {
    stopping_ = true;
    const auto now = clock_type::now();
    for (peer_proc& p : peers_) {
      close_output(p);
      if (p.pid <= 0) {
        p.state = peer_state::gone;
        continue;
      }
      if (p.state == peer_state::exiting) continue;
      // A peer still starting may take SIGTERM before it blocks it: not expected clean.
      p.expect_clean = p.state == peer_state::running || p.state == peer_state::stopped;
      if (p.state == peer_state::stopped) ::kill(p.pid, SIGCONT);
      ::kill(p.pid, SIGTERM);
      p.state = peer_state::exiting;
      p.due = now + 5s;
    }
    const auto deadline = now + 15s;
    while (
        std::any_of(peers_.begin(), peers_.end(), [](const peer_proc& p) { return p.pid > 0; })) {
      if (clock_type::now() > deadline) break;
      turn(deadline);
    }
    for (peer_proc& p : peers_) {  // only after a SIGKILL not taken for 10 s
      if (p.pid > 0) {
        ::kill(p.pid, SIGKILL);
        int status = 0;
        while (::waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
        }
        p.pid = -1;
        ++unclean_exits_;
      }
    }
  }

  std::uint64_t count(fault f) const { return counts_[static_cast<std::size_t>(f)]; }
  std::uint64_t slots() const { return slots_; }
  std::uint64_t skipped() const { return skipped_; }
  std::uint64_t restarts() const { return restarts_; }
  std::uint64_t start_failures() const { return start_failures_; }
  std::uint64_t unclean_exits() const { return unclean_exits_; }
  std::uint64_t crashes() const { return crashes_; }
  bool interrupted() const { return interrupted_; }
  const std::vector<std::string>& events() const { return events_; }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  void event(const peer_proc& p, const std::string& what) {
    std::string line = stamp() + "peer " + std::to_string(p.index) + " " + p.listen;
    if (p.pid > 0) line += " pid " + std::to_string(p.pid);
    line += ": " + what;
    if (o_.verbose) std::fprintf(stderr, "%s\n", line.c_str());
    if (events_.size() < 100000) events_.push_back(std::move(line));
  }

  void problem(const peer_proc& p, const std::string& what) {
    event(p, what);
    if (problems_.size() < 20) problems_.push_back(events_.back());
  }

  void spawn(peer_proc& p) {
    ++p.start_attempts;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);  // no client socket
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGCHLD, SIGINT, SIGTERM})
      sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const std::string parent = std::to_string(::getpid());
    std::string arg0 = "diampool_soak";
    std::string arg1 = "--serve-peer";
    std::string arg3 = "--parent-pid";
    std::vector<char*> argv{
        arg0.data(), arg1.data(), p.listen.data(), arg3.data(), const_cast<char*>(parent.c_str()),
        nullptr};
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::system_error(rc, std::generic_category(), "posix_spawn /proc/self/exe");
    }
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    p.pid = pid;
    p.out_fd = fds[0];
    p.out.clear();
    p.state = peer_state::starting;
    p.due = clock_type::now() + 30s;  // sanitizer builds start slowly
    event(p, "spawned");
  }

  void close_output(peer_proc& p) {
    if (p.out_fd >= 0) ::close(p.out_fd);
    p.out_fd = -1;
  }

  // The next action of the rotation, on a peer picked among the running ones (at least one
  // other peer stays up, so that the load never runs against peers that are all down).
  void inject(clock_type::time_point now) {
    ++slots_;
    const fault f = fault_rotation[next_ % fault_rotation.size()];
    if (f == fault::none) {
      ++next_;
      ++counts_[static_cast<std::size_t>(f)];
      if (o_.verbose) std::fprintf(stderr, "%sfault none\n", stamp().c_str());
      events_.push_back(stamp() + "fault none");
      return;
    }
    std::vector<peer_proc*> up;
    for (peer_proc& p : peers_) {
      if (p.state == peer_state::running) up.push_back(&p);
    }
    if (up.size() < 2) {
      ++skipped_;
      events_.push_back(stamp() + "fault " + fault_name(f) +
                        " skipped: " + std::to_string(up.size()) + " peer(s) up");
      return;
    }
    peer_proc& p = *up[rng_() % up.size()];
    ++next_;
    ++counts_[static_cast<std::size_t>(f)];
    switch (f) {
      case fault::sigkill:
        ::kill(p.pid, SIGKILL);
        p.state = peer_state::exiting;
        p.expect_clean = false;
        p.back_at = now + milliseconds(o_.down_ms);
        p.due = clock_type::time_point::max();
        event(p, "fault SIGKILL");
        break;
      case fault::sigstop:
        ::kill(p.pid, SIGSTOP);
        p.state = peer_state::stopped;
        p.due = now + milliseconds(o_.down_ms);
        event(p, "fault SIGSTOP");
        break;
      case fault::sigterm:
        ::kill(p.pid, SIGTERM);
        p.state = peer_state::exiting;
        p.expect_clean = true;
        p.back_at = now + milliseconds(o_.down_ms);
        p.due = now + 10s;
        event(p, "fault SIGTERM");
        break;
      case fault::none:
        break;
    }
  }

  // One turn of the event loop: waits (at most until `until`) for a signal, a starting
  // peer's output or a peer's due time, and handles what happened.
  void turn(clock_type::time_point until) {
    clock_type::time_point wake = until;
    std::vector<pollfd> fds{{sigfd_, POLLIN, 0}};
    std::vector<peer_proc*> readers;
    for (peer_proc& p : peers_) {
      const bool waiting = p.state == peer_state::starting || p.state == peer_state::stopped ||
                           p.state == peer_state::exiting ||
                           (p.state == peer_state::down && !initial_ && !stopping_);
      if (waiting && p.due < wake) wake = p.due;
      if (p.out_fd >= 0) {
        fds.push_back({p.out_fd, POLLIN, 0});
        readers.push_back(&p);
      }
    }
    const auto left = wake - clock_type::now();
    const int timeout =
        left <= 0ns ? 0 : static_cast<int>(std::chrono::ceil<milliseconds>(left).count());
    const int r = ::poll(fds.data(), fds.size(), timeout);
    if (r < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
    if (r > 0 && fds[0].revents != 0) read_signals();
    for (std::size_t i = 0; r > 0 && i < readers.size(); ++i) {
      if (fds[i + 1].revents != 0) read_output(*readers[i]);
    }
    reap();
    const auto now = clock_type::now();
    for (peer_proc& p : peers_) {
      if (now < p.due) continue;
      switch (p.state) {
        case peer_state::starting:
          problem(p, "no \"listening on\" line in 30 s: SIGKILL");
          ++start_failures_;
          kill_now(p, now);
          break;
        case peer_state::stopped:
          ::kill(p.pid, SIGCONT);
          p.state = peer_state::running;
          p.due = clock_type::time_point::max();
          event(p, "SIGCONT");
          break;
        case peer_state::exiting:
          problem(p, "still there after SIGTERM: SIGKILL");
          ++unclean_exits_;
          kill_now(p, now);
          break;
        case peer_state::down:  // start() picks the port of its retries
          if (!initial_ && !stopping_) spawn(p);
          break;
        case peer_state::running:
        case peer_state::gone:
          break;
      }
    }
  }

  void kill_now(peer_proc& p, clock_type::time_point now) {
    close_output(p);
    ::kill(p.pid, SIGKILL);
    p.state = peer_state::exiting;
    p.expect_clean = false;
    p.back_at = now + milliseconds(o_.down_ms);
    p.due = clock_type::time_point::max();
  }

  void read_signals() {
    signalfd_siginfo si{};
    while (::read(sigfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
        interrupted_ = true;
        events_.push_back(stamp() + "interrupted by " + strsignal(static_cast<int>(si.ssi_signo)));
      }
    }
  }

  void read_output(peer_proc& p) {
    char buf[256];
    const ssize_t n = ::read(p.out_fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  // it is exiting: reap() takes it from here
      close_output(p);
      return;
    }
    p.out.append(buf, static_cast<std::size_t>(n));
    const std::size_t nl = p.out.find('\n');
    if (nl == std::string::npos) return;
    close_output(p);
    const std::string line = p.out.substr(0, nl);
    constexpr std::string_view prefix = "listening on ";
    if (line.rfind(prefix, 0) != 0) {
      problem(p, "printed \"" + line + "\" instead of \"listening on ADDRESS\": SIGKILL");
      ++start_failures_;
      kill_now(p, clock_type::now());
      return;
    }
    p.listen = line.substr(prefix.size());
    p.state = peer_state::running;
    p.due = clock_type::time_point::max();
    if (!initial_) ++restarts_;
    event(p, "listening");
  }

  void reap() {
    for (peer_proc& p : peers_) {
      if (p.pid <= 0) continue;
      int status = 0;
      const pid_t r = ::waitpid(p.pid, &status, WNOHANG);
      if (r == p.pid) exited(p, status);
    }
  }

  void exited(peer_proc& p, int status) {
    const auto now = clock_type::now();
    const std::string how = describe_status(status);
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    switch (p.state) {
      case peer_state::starting:
        ++start_failures_;
        if (initial_) {
          event(p, how + " before listening; another port");
        } else {
          problem(p, how + " before listening (restart on the same port failed)");
        }
        p.back_at = now + std::max(milliseconds(o_.down_ms), milliseconds(100));
        break;
      case peer_state::exiting:
        if (p.expect_clean && !clean) {
          ++unclean_exits_;
          problem(p, how + " after SIGTERM, expected status 0");
        } else {
          event(p, how);
        }
        break;
      case peer_state::running:
      case peer_state::stopped:
        ++crashes_;
        problem(p, how + " unbidden");
        p.back_at = now + milliseconds(o_.down_ms);
        break;
      case peer_state::down:
      case peer_state::gone:
        break;
    }
    close_output(p);
    p.pid = -1;
    p.state = stopping_ ? peer_state::gone : peer_state::down;
    p.due = std::max(now, p.back_at);
  }

  const options& o_;
  int sigfd_;
  std::mt19937_64 rng_;
  std::vector<peer_proc> peers_;
  std::array<std::uint64_t, fault_rotation.size()> counts_{};
  std::size_t next_ = 0;  // of fault_rotation
  std::uint64_t slots_ = 0;
  std::uint64_t skipped_ = 0;
  std::uint64_t restarts_ = 0;
  std::uint64_t start_failures_ = 0;
  std::uint64_t unclean_exits_ = 0;
  std::uint64_t crashes_ = 0;
  bool initial_ = false;
  bool stopping_ = false;
  bool interrupted_ = false;
  std::vector<std::string> events_;
  std::vector<std::string> problems_;
};

// ---------------------------------------------------------------------------------------------
// The load: --inflight chains; each completion records its request's outcome and sends the
// chain's next request (to the next peer in turn) until stop_issuing(). A chain moves on only
// with its request's first outcome, so a duplicate outcome adds no load.

std::uint32_t hop_by_hop_of(std::uint64_t seq) {
  return static_cast<std::uint32_t>(seq) * 2654435761u;  // a bijection of the 32-bit values
}

std::string session_of(std::uint64_t seq) {
  return "soak;" + std::to_string(seq);
}

// A ~100-byte application request (command 272, application 4).
std::vector<std::uint8_t> make_request(std::uint64_t seq) {
  diampool::message_header h;
  h.flags = diampool::cmd_flags::request | diampool::cmd_flags::proxiable;
  h.command_code = 272;
  h.application_id = app_id;
  h.hop_by_hop = hop_by_hop_of(seq);
  std::vector<std::uint8_t> out;
  diampool::message_builder b(out, h);
  b.add_string(diampool::avp_code::session_id, session_of(seq))
      .add_string(diampool::avp_code::origin_host, "soak.example.com")
      .add_string(diampool::avp_code::origin_realm, "example.com")
      .add_string(diampool::avp_code::destination_realm, "example.net");
  b.finish();
  return out;
}

enum outcome : std::uint8_t { pending = 0, answered = 1, failed = 2, mismatched = 3 };

const char* outcome_name(std::uint8_t o) {
  switch (o) {
    case answered:
      return "answer";
    case failed:
      return "error";
    case mismatched:
      return "mismatched answer";
    default:
      return "none";
  }
}

struct load_results {
  std::uint64_t issued = 0;
  std::uint64_t answered = 0;
  std::uint64_t failed = 0;
  std::uint64_t mismatched = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t unaccounted = 0;
  std::map<std::string, std::uint64_t> errors;  // by message
  std::map<std::uint32_t, std::uint64_t> result_codes;
  std::vector<std::string> notes;  // the first anomalies
};

class soak_load {
 public:
  soak_load(std::vector<std::string> addresses, milliseconds deadline, unsigned inflight)
      : addresses_(std::move(addresses)), deadline_(deadline), chains_(inflight) {}

  void start(diampool::address_client& client) {
    client_ = &client;
    for (std::size_t c = 0; c < chains_.size(); ++c) {
      std::uint64_t seq = 0;
      clock_type::time_point at{};
      {
        std::lock_guard lk(m_);
        if (stopping_) return;
        seq = allocate(c, at);
      }
      send(c, seq, at);
    }
  }

  void stop_issuing() {
    std::lock_guard lk(m_);
    stopping_ = true;
    if (outstanding_ == 0) done_.notify_all();
  }

  // Waits until every request issued has an outcome, or `until`.
  bool wait_all(clock_type::time_point until) {
    std::unique_lock lk(m_);
    return done_.wait_until(lk, until, [&] { return outstanding_ == 0; });
  }

  void note(std::string what) {
    std::lock_guard lk(m_);
    add_note(std::move(what));
  }

  // Once the client is closed: every count, and the requests left without an outcome.
  load_results results() {
    std::lock_guard lk(m_);
    load_results r;
    r.issued = table_.size();
    r.answered = answered_;
    r.failed = failed_;
    r.mismatched = mismatched_;
    r.duplicated = duplicated_;
    for (const auto& [code, n] : errors_)
      r.errors[code.first->message(code.second)] += n;
    r.result_codes = result_codes_;
    r.unaccounted = static_cast<std::uint64_t>(std::count(table_.begin(), table_.end(), pending));
    for (std::size_t c = 0; c < chains_.size(); ++c) {
      const chain& ch = chains_[c];
      if (ch.seq < table_.size() && table_[ch.seq] == pending && ch.sent) {
        add_note(format("seq %llu to %s, sent at +%.3fs (deadline +%.3fs): no outcome",
                        static_cast<unsigned long long>(ch.seq), address_of(ch.seq).c_str(),
                        since_start(ch.at), since_start(ch.at + deadline_)));
      }
    }
    r.notes = notes_;
    return r;
  }

 private:
  struct chain {
    std::uint64_t seq = 0;
    clock_type::time_point at{};
    bool sent = false;
  };

  const std::string& address_of(std::uint64_t seq) const {
    return addresses_[seq % addresses_.size()];
  }

  // Under m_: the next request of chain `c`.
  std::uint64_t allocate(std::size_t c, clock_type::time_point& at) {
    const std::uint64_t seq = table_.size();
    table_.push_back(pending);
    ++outstanding_;
    at = clock_type::now();
    chains_[c] = {seq, at, true};
    return seq;
  }

  void add_note(std::string what) {
    if (notes_.size() < 20) notes_.push_back(std::move(what));
  }

  void send(std::size_t c, std::uint64_t seq, clock_type::time_point at) {
    client_->async_send(address_of(seq), make_request(seq), at + deadline_,
                        [this, c, seq](std::error_code ec, std::vector<std::uint8_t> answer) {
                          complete(c, seq, ec, answer);
                        });
  }

  // What is wrong with `answer` as the answer to request `seq` (empty: nothing), and its
  // Result-Code.
  static std::string check(std::uint64_t seq, const std::vector<std::uint8_t>& answer,
                           std::uint32_t& result_code) {
    std::error_code ec;
    const diampool::message_view v = diampool::message_view::parse(answer, ec);
    if (ec) return "unparseable answer: " + ec.message();
    std::string wrong;
    if (v.header().hop_by_hop != hop_by_hop_of(seq)) {
      wrong += format("Hop-by-Hop id 0x%08x instead of 0x%08x; ", v.header().hop_by_hop,
                      hop_by_hop_of(seq));
    }
    const std::string session = session_of(seq);
    const auto sid = v.find(diampool::avp_code::session_id);
    if (!sid) {
      wrong += "no Session-Id; ";
    } else if (sid->as_string() != session) {
      wrong +=
          "Session-Id \"" + std::string(sid->as_string()) + "\" instead of \"" + session + "\"; ";
    }
    if ((v.header().flags & diampool::cmd_flags::request) != 0) wrong += "R bit set; ";
    if (const auto rc = v.find(diampool::avp_code::result_code)) {
      result_code = rc->as_unsigned32(ec);
    }
    return wrong;
  }

  void complete(std::size_t c, std::uint64_t seq, const std::error_code& ec,
                const std::vector<std::uint8_t>& answer) {
    std::uint32_t result_code = 0;
    const std::string wrong = ec ? std::string() : check(seq, answer, result_code);
    const std::uint8_t kind = ec ? failed : wrong.empty() ? answered : mismatched;
    std::uint64_t next = 0;
    clock_type::time_point at{};
    {
      std::lock_guard lk(m_);
      std::uint8_t& cell = table_[seq];
      if (cell != pending) {
        ++duplicated_;
        add_note(stamp() + format("seq %llu to %s: a second outcome (%s%s%s) after a first (%s)",
                                  static_cast<unsigned long long>(seq), address_of(seq).c_str(),
                                  outcome_name(kind), ec ? ": " : "",
                                  ec ? ec.message().c_str() : "", outcome_name(cell)));
        return;
      }
      cell = kind;
      --outstanding_;
      switch (kind) {
        case answered:
          ++answered_;
          ++result_codes_[result_code];
          break;
        case failed:
          ++failed_;
          ++errors_[{&ec.category(), ec.value()}];
          break;
        default:
          ++mismatched_;
          add_note(stamp() +
                   format("seq %llu to %s: ", static_cast<unsigned long long>(seq),
                          address_of(seq).c_str()) +
                   wrong);
          break;
      }
      if (stopping_) {
        if (outstanding_ == 0) done_.notify_all();
        return;
      }
      next = allocate(c, at);
    }
    send(c, next, at);
  }

  const std::vector<std::string> addresses_;
  const milliseconds deadline_;
  diampool::address_client* client_ = nullptr;
  std::mutex m_;
  std::condition_variable done_;
  std::deque<std::uint8_t> table_;  // the outcome of each request, by sequence number
  std::vector<chain> chains_;
  std::uint64_t outstanding_ = 0;  // issued, without an outcome yet
  bool stopping_ = false;
  std::uint64_t answered_ = 0;
  std::uint64_t failed_ = 0;
  std::uint64_t mismatched_ = 0;
  std::uint64_t duplicated_ = 0;
  std::map<std::pair<const std::error_category*, int>, std::uint64_t> errors_;
  std::map<std::uint32_t, std::uint64_t> result_codes_;
  std::vector<std::string> notes_;
};

// ---------------------------------------------------------------------------------------------
// The report.

std::size_t count_entries(const char* dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (const dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
    }
    ::closedir(d);
  }
  return n;
}

// The names of this process's threads, for a report of threads left over.
std::string thread_names() {
  std::string out;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
      std::string name;
      std::getline(comm, name);
      out += (out.empty() ? "" : ", ") + std::string(e->d_name) + " " + name;
    }
    ::closedir(d);
  }
  return out;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += format("\\u%04x", c);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_strings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    out += (i ? "," : "") + json_string(v[i]);
  return out + "]";
}

struct report {
  double seconds = 0;
  load_results load;
  diampool::client_stats client;
  std::array<std::uint64_t, fault_rotation.size()> faults{};
  std::uint64_t fault_slots = 0;
  std::uint64_t faults_skipped = 0;
  std::uint64_t peer_restarts = 0;
  std::uint64_t peer_start_failures = 0;
  std::uint64_t peer_unclean_exits = 0;
  std::uint64_t peer_crashes = 0;
  long peak_rss_kib = 0;
  std::size_t fds_before = 0;
  std::size_t fds_after = 0;
  std::size_t threads_before = 0;
  std::size_t threads_after = 0;
  std::string threads_left;  // their names, when threads_after != threads_before
  std::vector<std::string> failures;
  std::vector<std::string> events;
};

void print_text(const options& o, const report& r) {
  const load_results& l = r.load;
  std::printf(
      "diampool_soak: %.1f s, %u peers, %u in flight, deadline %u ms, a fault every %u "
      "ms (down %u ms), seed %llu\n",
      r.seconds, o.peers, o.inflight, o.deadline_ms, o.fault_every_ms, o.down_ms,
      static_cast<unsigned long long>(o.seed));
  std::printf(
      "requests    issued %llu  answered %llu  failed %llu  unaccounted %llu  "
      "mismatched %llu  duplicated %llu\n",
      static_cast<unsigned long long>(l.issued), static_cast<unsigned long long>(l.answered),
      static_cast<unsigned long long>(l.failed), static_cast<unsigned long long>(l.unaccounted),
      static_cast<unsigned long long>(l.mismatched), static_cast<unsigned long long>(l.duplicated));
  std::printf("answers/s   %.0f\n", r.seconds > 0 ? double(l.answered) / r.seconds : 0.0);
  std::printf("answers     by Result-Code:");
  for (const auto& [code, n] : l.result_codes)
    std::printf(" %u: %llu", code, static_cast<unsigned long long>(n));
  std::printf("\nfailures    by kind:%s\n", l.errors.empty() ? " none" : "");
  for (const auto& [what, n] : l.errors)
    std::printf("  %8llu  %s\n", static_cast<unsigned long long>(n), what.c_str());
  std::printf(
      "faults      sigkill %llu  sigstop %llu  sigterm %llu  none %llu  (of %llu slots, "
      "%llu skipped); peer restarts %llu, start failures %llu, unclean exits %llu, "
      "crashes %llu\n",
      static_cast<unsigned long long>(r.faults[0]), static_cast<unsigned long long>(r.faults[1]),
      static_cast<unsigned long long>(r.faults[2]), static_cast<unsigned long long>(r.faults[3]),
      static_cast<unsigned long long>(r.fault_slots),
      static_cast<unsigned long long>(r.faults_skipped),
      static_cast<unsigned long long>(r.peer_restarts),
      static_cast<unsigned long long>(r.peer_start_failures),
      static_cast<unsigned long long>(r.peer_unclean_exits),
      static_cast<unsigned long long>(r.peer_crashes));
  const diampool::client_stats& c = r.client;
  std::printf(
      "client      connections_created %llu  failed_establishments %llu  "
      "reconnect_attempts %llu  unmatched_answers %llu\n"
      "            total_requests %llu  total_responses %llu  total_errors %llu  "
      "total_timeouts %llu  in_flight %llu\n",
      static_cast<unsigned long long>(c.pool.connections_created),
      static_cast<unsigned long long>(c.pool.failed_establishments),
      static_cast<unsigned long long>(c.pool.reconnect_attempts),
      static_cast<unsigned long long>(c.pool.unmatched_answers),
      static_cast<unsigned long long>(c.total_requests),
      static_cast<unsigned long long>(c.total_responses),
      static_cast<unsigned long long>(c.total_errors),
      static_cast<unsigned long long>(c.total_timeouts),
      static_cast<unsigned long long>(c.in_flight));
  std::printf(
      "resources   peak RSS %ld KiB  open fds %zu before the client, %zu after close()  "
      "threads %zu before, %zu after\n",
      r.peak_rss_kib, r.fds_before, r.fds_after, r.threads_before, r.threads_after);
  if (!l.notes.empty()) {
    std::printf("anomalies (the first %zu):\n", l.notes.size());
    for (const std::string& n : l.notes)
      std::printf("  %s\n", n.c_str());
  }
  if (!r.failures.empty() || o.verbose) {
    std::printf("peer events:\n");
    for (const std::string& e : r.events)
      std::printf("  %s\n", e.c_str());
  }
  if (r.failures.empty()) {
    std::printf("PASS\n");
  } else {
    std::printf("FAIL:\n");
    for (const std::string& f : r.failures)
      std::printf("  %s\n", f.c_str());
  }
}

void print_json(const options& o, const report& r) {
  const load_results& l = r.load;
  const auto u = [](std::uint64_t v) { return std::to_string(v); };
  std::string s = "{";
  s += "\"seconds\":" + format("%.3f", r.seconds);
  s += ",\"peers\":" + u(o.peers) + ",\"inflight\":" + u(o.inflight) +
       ",\"deadline_ms\":" + u(o.deadline_ms) + ",\"fault_every_ms\":" + u(o.fault_every_ms) +
       ",\"down_ms\":" + u(o.down_ms) + ",\"seed\":" + u(o.seed);
  s += ",\"issued\":" + u(l.issued) + ",\"answered\":" + u(l.answered);
  s += ",\"failed\":{\"total\":" + u(l.failed) + ",\"by_kind\":{";
  bool first = true;
  for (const auto& [what, n] : l.errors) {
    s += (first ? "" : ",") + json_string(what) + ":" + u(n);
    first = false;
  }
  s += "}},\"unaccounted\":" + u(l.unaccounted) + ",\"mismatched\":" + u(l.mismatched) +
       ",\"duplicated\":" + u(l.duplicated);
  s += ",\"answers_per_second\":" +
       format("%.1f", r.seconds > 0 ? double(l.answered) / r.seconds : 0.0);
  s += ",\"result_codes\":{";
  first = true;
  for (const auto& [code, n] : l.result_codes) {
    s += (first ? "\"" : ",\"") + u(code) + "\":" + u(n);
    first = false;
  }
  s += "},\"faults\":{";
  for (std::size_t i = 0; i < fault_rotation.size(); ++i)
    s += (i ? ",\"" : "\"") + std::string(fault_name(fault_rotation[i])) + "\":" + u(r.faults[i]);
  s += ",\"slots\":" + u(r.fault_slots) + ",\"skipped\":" + u(r.faults_skipped) + "}";
  s += ",\"peer_processes\":{\"restarts\":" + u(r.peer_restarts) +
       ",\"start_failures\":" + u(r.peer_start_failures) +
       ",\"unclean_exits\":" + u(r.peer_unclean_exits) + ",\"crashes\":" + u(r.peer_crashes) + "}";
  const diampool::client_stats& c = r.client;
  s += ",\"client\":{\"connections_created\":" + u(c.pool.connections_created) +
       ",\"failed_establishments\":" + u(c.pool.failed_establishments) +
       ",\"reconnect_attempts\":" + u(c.pool.reconnect_attempts) +
       ",\"unmatched_answers\":" + u(c.pool.unmatched_answers) +
       ",\"total_requests\":" + u(c.total_requests) +
       ",\"total_responses\":" + u(c.total_responses) + ",\"total_errors\":" + u(c.total_errors) +
       ",\"total_timeouts\":" + u(c.total_timeouts) + ",\"in_flight\":" + u(c.in_flight) + "}";
  s += ",\"peak_rss_kib\":" + std::to_string(r.peak_rss_kib);
  s += ",\"fds\":{\"before\":" + u(r.fds_before) + ",\"after\":" + u(r.fds_after) + "}";
  s += ",\"threads\":{\"before\":" + u(r.threads_before) + ",\"after\":" + u(r.threads_after) + "}";
  s += ",\"anomalies\":" + json_strings(l.notes);
  s += ",\"ok\":" + std::string(r.failures.empty() ? "true" : "false");
  s += ",\"failures\":" + json_strings(r.failures);
  if (!r.failures.empty()) s += ",\"peer_events\":" + json_strings(r.events);
  s += "}\n";
  std::fputs(s.c_str(), stdout);
  for (const std::string& f : r.failures)
    std::fprintf(stderr, "diampool_soak: FAIL: %s\n", f.c_str());
}

// ---------------------------------------------------------------------------------------------
// The soak.

diampool::pool_config client_config(const options& o) {
  diampool::pool_config c = diampool::pool_config::defaults();
  c.origin_host = "soak.example.com";
  c.origin_realm = "example.com";
  c.auth_app_ids = {app_id};
  // Short timers, so that every fault is noticed within the run.
  c.dwr_interval = 500ms;
  c.dwr_jitter = 100ms;
  c.dwr_timeout = 300ms;
  c.cer_timeout = 500ms;
  c.dial_timeout = 500ms;
  c.reconnect_interval = 50ms;
  c.max_reconnect_delay = 1s;
  c.send_timeout = milliseconds(o.deadline_ms);
  c.dpa_timeout = 500ms;
  c.drain_timeout = 500ms;
  c.worker_threads = o.threads;
  return c;
}

int run_soak(const options& o) {
  g_start = clock_type::now();
  std::signal(SIGPIPE, SIG_IGN);
  // SIGCHLD, SIGINT and SIGTERM are read from a signalfd: blocked here, before any thread.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGCHLD, SIGINT, SIGTERM})
    sigaddset(&sigs, s);
  ::pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  const int sigfd = ::signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigfd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  struct fd_closer {
    int fd;
    ~fd_closer() { ::close(fd); }
  } sigfd_closer{sigfd};

  peer_fleet fleet(o, sigfd);
  fleet.start();
  report r;
  // A runtime's helper threads that start with the first thread of the process (such as
  // ThreadSanitizer's background thread) are counted before the client too.
  std::thread([] {}).join();
  r.fds_before = count_entries("/proc/self/fd");
  r.threads_before = count_entries("/proc/self/task");
  const milliseconds deadline(o.deadline_ms);
  soak_load load(fleet.addresses(), deadline, o.inflight);
  {
    auto client = std::make_unique<diampool::address_client>(
        client_config(o), o.verbose ? nullptr : diampool::null_logger());
    struct stop_guard {  // no request starts while the client closes, whatever happens
      soak_load& l;
      ~stop_guard() { l.stop_issuing(); }
    } guard{load};
    const auto t0 = clock_type::now();
    load.start(*client);
    fleet.run(t0 + std::chrono::duration_cast<clock_type::duration>(
                       std::chrono::duration<double>(o.seconds)));
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    load.stop_issuing();
    fleet.settle();
    if (!load.wait_all(clock_type::now() + deadline + 5s)) {
      // What the client knew of each peer when the wait gave up.
      for (const diampool::connection_info& i : client->connections()) {
        load.note(stamp() +
                  format("outcomes still missing; %s: %s, last error \"%s\", %zu "
                         "draining, %u failures in a row",
                         i.address.c_str(), std::string(diampool::to_string(i.state)).c_str(),
                         i.last_error.message().c_str(), i.draining, i.consecutive_failures));
      }
    }
    client->close();
    r.client = client->stats();
    r.fds_after = count_entries("/proc/self/fd");
    r.threads_after = count_entries("/proc/self/task");
    if (r.threads_after != r.threads_before) r.threads_left = thread_names();
  }
  fleet.stop_all();

  r.load = load.results();
  for (std::size_t i = 0; i < fault_rotation.size(); ++i)
    r.faults[i] = fleet.count(fault_rotation[i]);
  r.fault_slots = fleet.slots();
  r.faults_skipped = fleet.skipped();
  r.peer_restarts = fleet.restarts();
  r.peer_start_failures = fleet.start_failures();
  r.peer_unclean_exits = fleet.unclean_exits();
  r.peer_crashes = fleet.crashes();
  r.events = fleet.events();
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_kib = ru.ru_maxrss;

  const load_results& l = r.load;
  auto& why = r.failures;
  if (fleet.interrupted()) why.push_back("interrupted by a signal");
  if (l.unaccounted != 0) why.push_back(std::to_string(l.unaccounted) + " requests unaccounted");
  if (l.mismatched != 0) why.push_back(std::to_string(l.mismatched) + " answers mismatched");
  if (l.duplicated != 0) why.push_back(std::to_string(l.duplicated) + " duplicate outcomes");
  if (l.answered == 0) why.push_back("no request was answered");
  if (r.fault_slots >= fault_rotation.size()) {
    for (std::size_t i = 0; i < fault_rotation.size(); ++i) {
      if (r.faults[i] == 0) {
        why.push_back(std::string("fault action ") + fault_name(fault_rotation[i]) + " never ran");
      }
    }
  }
  if (r.fds_after != r.fds_before) {
    why.push_back(
        format("open fds: %zu before the client, %zu after close()", r.fds_before, r.fds_after));
  }
  if (r.threads_after != r.threads_before) {
    why.push_back(format("threads: %zu before the client, %zu after close() (", r.threads_before,
                         r.threads_after) +
                  r.threads_left + ")");
  }
  if (r.peer_crashes != 0) why.push_back(std::to_string(r.peer_crashes) + " peers died unbidden");
  if (r.peer_unclean_exits != 0) {
    why.push_back(std::to_string(r.peer_unclean_exits) +
                  " peers did not exit with status 0 after SIGTERM");
  }
  for (const std::string& p : fleet.problems())
    r.load.notes.push_back(p);

  if (o.json) {
    print_json(o, r);
  } else {
    print_text(o, r);
  }
  std::fflush(stdout);
  return r.failures.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{
      "diampool_soak: address_client under load against Diameter peers that are killed, "
      "stopped and restarted; every request accounted for"};
  app.add_option("--seconds", o.seconds, "How long to send requests")
      ->check(CLI::Range(0.1, 7 * 86400.0))
      ->capture_default_str();
  app.add_option("--peers", o.peers, "Peer processes")
      ->check(CLI::Range(2u, 64u))
      ->capture_default_str();
  app.add_option("--inflight", o.inflight, "Requests kept in flight")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  app.add_option("--deadline-ms", o.deadline_ms, "Deadline of each request")
      ->check(CLI::Range(10u, 600000u))
      ->capture_default_str();
  app.add_option("--fault-every-ms", o.fault_every_ms, "Time between two fault actions")
      ->check(CLI::Range(50u, 3600000u))
      ->capture_default_str();
  app.add_option("--down-ms", o.down_ms, "How long a peer stays killed, stopped or terminated")
      ->check(CLI::Range(0u, 600000u))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the choice of peers")->capture_default_str();
  app.add_option("--threads", o.threads, "I/O threads of the client")
      ->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  app.add_flag("--json", o.json, "Report as one JSON object");
  app.add_flag("--verbose", o.verbose, "Log the client (info) and the peer events to stderr");
  app.add_option("--serve-peer", o.serve_peer)->group("");
  app.add_option("--parent-pid", o.parent_pid)->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; every bad argument exits 2, whatever CLI11's own code.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!o.serve_peer.empty()) return serve_peer(o.serve_peer, o.parent_pid);
  try {
    return run_soak(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "diampool_soak: %s\n", e.what());
    return 1;
  }
}
