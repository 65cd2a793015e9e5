// Shared by the pool benchmarks (pool_scale, blocking_bench): the raw_peer process they load,
// pinning, and how they fail.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace diampool::bench {

using namespace std::chrono_literals;

/// Prints "PROGRAM: why" and exits.
[[noreturn]] inline void fail(const std::string& why, int status = 1) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, why.c_str());
  std::exit(status);
}

inline void pin(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(pid, sizeof set, &set) != 0) {
    fail("sched_setaffinity(" + std::to_string(pid) + ", CPU " + std::to_string(cpu) +
         "): " + std::strerror(errno));
  }
}

// The raw_peer process: started with N listeners; stop() ends it with SIGTERM and returns its
// summary line.
class peer_process {
 public:
  peer_process(const std::string& binary, unsigned count, int cpu) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail(std::string("pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    std::string a0 = binary, a1 = "--listen", a2 = "127.0.0.1:0", a3 = "--count",
                a4 = std::to_string(count);
    std::vector<char*> argv{a0.data(), a1.data(), a2.data(), a3.data(), a4.data(), nullptr};
    const int rc = ::posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) fail("posix_spawn " + binary + ": " + std::strerror(rc));
    out_ = fds[0];
    if (cpu >= 0) pin(pid_, cpu);
    const std::string line = read_line(10s);
    const std::string prefix = "listening on ";
    if (line.rfind(prefix, 0) != 0) fail("raw_peer did not start: '" + line + "'");
    std::stringstream ss(line.substr(prefix.size()));
    for (std::string a; std::getline(ss, a, ',');)
      addresses_.push_back(a);
    if (addresses_.size() != count) fail("raw_peer listens on fewer addresses than asked");
  }
  ~peer_process() { stop(); }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& addresses() const { return addresses_; }

  // CPU time of the peer so far (/proc/PID/schedstat), seconds.
  double cpu_seconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/schedstat");
    double ns = 0;
    in >> ns;
    return ns / 1e9;
  }

  std::string stop() {
    if (pid_ <= 0) return {};
    ::kill(pid_, SIGTERM);
    std::string rest = read_line(5s);
    ::waitpid(pid_, nullptr, 0);
    ::close(out_);
    pid_ = -1;
    return rest;
  }

 private:
  std::string read_line(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left <= 0ms) return buf_;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return std::exchange(buf_, {});
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
  std::vector<std::string> addresses_;
};

}  // namespace diampool::bench
