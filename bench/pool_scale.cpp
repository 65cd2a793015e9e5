// pool_scale: address_client with many addresses at once, against one raw_peer process with a
// listener per address.
//
// --mode open: each run creates a client, then at t0 issues one async_send to each of the N
// addresses back to back. Every first request dials, exchanges CER/CEA and then is written, so
// the time until the last answer is the time to bring N connections up and use them. Prints
// per run: the time the N calls took, the time until all N are OPEN (with --watch-open: polls
// active_connections() every millisecond, which costs CPU of its own), the time until all
// N answers arrived, the per-address time to answer (p50, p99), the client's CPU time and page
// faults, the peer's CPU time, and the time close() took; then the medians of the runs.
//
// --mode idle: opens the N connections in steps of --step (one request to each new address,
// answers awaited, then --settle-ms of quiet), and after each step reads the process's memory
// (VmRSS and RssAnon of /proc/self/status, Anonymous and Private_Dirty of
// /proc/self/smaps_rollup), each reading preceded by malloc_trim(0) so that freed heap pages
// are returned first. Prints the growth per connection from before the client was created,
// from just after it was created (its threads started, no connection yet) and from the
// previous step. --massif-snapshot FILE asks valgrind's massif (when running under it) for a
// detailed snapshot at the last idle point; --exit-idle ends the process there without closing
// the client, so that a heap profiler reports what is live at that point as leaked.
//
//   pool_scale [--mode open|idle] [--addresses N] [--runs R] [--warmup W] [--threads T]
//              [--watch-open] [--step K] [--settle-ms MS] [--recv-kib KIB] [--cpu C]
//              [--peer-cpu C] [--peer BINARY] [--massif-snapshot FILE] [--exit-idle]
//
// --warmup: runs printed but left out of the medians (default 1: the first run also grows the
// peer's heap and this process's, which later runs reuse; its line shows the cold cost). --threads:
// the client's worker_threads (default 2). --recv-kib: pool_config.recv_buffer_size (default: the
// pool's own default). --cpu pins this process, --peer-cpu the peer.
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <diampool/address_client.hpp>
#include <diampool/builder.hpp>
#include <diampool/codes.hpp>
#include <diampool/logger.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define POOL_SCALE_VALGRIND 1
#endif

extern char** environ;

#include "raw_peer_process.hpp"

namespace {

using namespace diampool;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using bytes = std::vector<std::uint8_t>;

using bench::fail;
using bench::peer_process;
using bench::pin;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long minor_faults() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Soft RLIMIT_NOFILE up to the hard limit: the client needs a descriptor per connection, and the
// peer (which inherits the limit) one per listener and one per connection.
rlim_t raise_fd_limit() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  ::getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

// A ~100-byte application request (command 272, application 4), as the component tests send.
bytes make_request(std::uint32_t hbh) {
  message_header h;
  h.flags = cmd_flags::request | cmd_flags::proxiable;
  h.command_code = 272;
  h.application_id = 4;
  h.hop_by_hop = hbh;
  h.end_to_end = hbh;
  bytes out;
  message_builder b(out, h);
  b.add_string(avp_code::session_id, "bench.example.com;pool_scale;" + std::to_string(hbh))
      .add_string(avp_code::origin_host, "bench.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, "example.net");
  b.finish();
  return out;
}

struct options {
  std::string mode = "open";
  unsigned addresses = 1000;
  unsigned runs = 5;
  unsigned warmup = 1;  // runs before the measured ones
  unsigned threads = 2;
  bool watch_open = false;
  unsigned step = 0;  // 0: all at once
  unsigned settle_ms = 300;
  std::optional<std::size_t> recv_kib;
  int cpu = -1;
  int peer_cpu = -1;
  std::string peer;
  std::string massif_snapshot;
  bool exit_idle = false;
};

pool_config client_config(const options& o) {
  pool_config c = pool_config::defaults();
  c.origin_host = "bench.example.com";
  c.origin_realm = "example.com";
  c.auth_app_ids = {4};
  c.worker_threads = o.threads;
  c.send_timeout = 30s;  // generous: valgrind runs are slow
  if (o.recv_kib) c.recv_buffer_size = *o.recv_kib;
  return c;
}

// The outcome of one request to each address in `addrs`, issued back to back.
struct batch_result {
  clock_type::time_point t0, issued, all_open, last_answer;
  bool saw_open = false;
  std::vector<double> answer_ms;  // per address, from t0
  std::map<std::string, unsigned> errors;
  bool complete = false;
};

batch_result send_batch(address_client& client, const std::vector<std::string>& addrs,
                        std::vector<bytes> requests, bool watch_open, std::size_t open_before) {
  const std::size_t n = addrs.size();
  std::vector<clock_type::time_point> done_at(n);
  std::vector<std::error_code> ecs(n);
  std::mutex m;
  std::condition_variable cv;
  std::size_t remaining = n;
  std::atomic<bool> watching{watch_open};
  std::optional<clock_type::time_point> all_open;
  std::thread watcher;
  if (watch_open) {
    watcher = std::thread([&] {
      while (watching.load(std::memory_order_relaxed)) {
        if (client.active_connections() >= open_before + n) {
          all_open = clock_type::now();
          return;
        }
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  batch_result r;
  r.t0 = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) {
    client.async_send(addrs[i], std::move(requests[i]),
                      [&, i](std::error_code ec, std::vector<std::uint8_t>) {
                        done_at[i] = clock_type::now();
                        ecs[i] = ec;
                        std::lock_guard lk(m);
                        if (--remaining == 0) cv.notify_one();
                      });
  }
  r.issued = clock_type::now();
  {
    std::unique_lock lk(m);
    r.complete = cv.wait_for(lk, 60s, [&] { return remaining == 0; });
  }
  if (watcher.joinable()) {
    watching = false;
    watcher.join();
  }
  if (!r.complete) {
    // Some handlers may still run: wait for them before the vectors they write go away.
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return remaining == 0; });
  }
  r.last_answer = r.t0;
  for (std::size_t i = 0; i < n; ++i) {
    r.last_answer = std::max(r.last_answer, done_at[i]);
    r.answer_ms.push_back(ms_between(r.t0, done_at[i]));
    if (ecs[i]) ++r.errors[ecs[i].message()];
  }
  std::sort(r.answer_ms.begin(), r.answer_ms.end());
  if (all_open) {
    r.saw_open = true;
    r.all_open = *all_open;
  }
  return r;
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const std::size_t rank =
      static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

std::string errors_text(const std::map<std::string, unsigned>& errors) {
  if (errors.empty()) return "0";
  std::string s;
  for (const auto& [what, count] : errors) {
    if (!s.empty()) s += ", ";
    s += std::to_string(count) + " x " + what;
  }
  return s;
}

std::vector<bytes> requests_for(std::size_t n, std::uint32_t first_id) {
  std::vector<bytes> v;
  v.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    v.push_back(make_request(first_id + static_cast<std::uint32_t>(i)));
  return v;
}

int run_open(const options& o, peer_process& peer) {
  std::printf("mode open: %u addresses, worker_threads %u, %u warm-up + %u runs%s\n", o.addresses,
              o.threads, o.warmup, o.runs, o.watch_open ? ", watching for OPEN every 1 ms" : "");
  std::vector<double> issued, open, answered, p50, p99, closes, client_cpu, peer_cpus;
  std::uint32_t next_id = 1;
  for (unsigned k = 0; k < o.warmup + o.runs; ++k) {
    const bool warm = k < o.warmup;
    auto requests = requests_for(o.addresses, next_id);
    next_id += o.addresses;
    auto client = std::make_unique<address_client>(client_config(o), null_logger());
    std::this_thread::sleep_for(50ms);  // its threads started and parked
    const double cpu0 = cpu_seconds();
    const long faults0 = minor_faults();
    const double peer0 = peer.cpu_seconds();
    batch_result r = send_batch(*client, peer.addresses(), std::move(requests), o.watch_open, 0);
    const double cpu = cpu_seconds() - cpu0;
    const long faults = minor_faults() - faults0;
    const double peer_cpu = peer.cpu_seconds() - peer0;
    const client_stats st = client->stats();
    const auto c0 = clock_type::now();
    client->close();
    const double close_ms = ms_between(c0, clock_type::now());
    client.reset();

    const double issued_ms = ms_between(r.t0, r.issued);
    const double answered_ms = ms_between(r.t0, r.last_answer);
    const double p50_ms = quantile(r.answer_ms, 0.5);
    const double p99_ms = quantile(r.answer_ms, 0.99);
    std::string open_text = "not watched";
    if (r.saw_open) {
      const double open_ms = ms_between(r.t0, r.all_open);
      if (!warm) open.push_back(open_ms);
      char b[64];
      std::snprintf(b, sizeof b, "%.1f ms", open_ms);
      open_text = b;
    }
    if (!warm) {
      issued.push_back(issued_ms);
      answered.push_back(answered_ms);
      p50.push_back(p50_ms);
      p99.push_back(p99_ms);
      closes.push_back(close_ms);
      client_cpu.push_back(cpu * 1e3);
      peer_cpus.push_back(peer_cpu * 1e3);
    }
    char label[32];
    if (warm) {
      std::snprintf(label, sizeof label, "warm-up %u", k + 1);
    } else {
      std::snprintf(label, sizeof label, "run %u", k + 1 - o.warmup);
    }
    std::printf(
        "%s: issued in %.2f ms; all OPEN %s; all %u answered %.1f ms; per address p50 %.1f "
        "ms, p99 %.1f ms, first %.1f ms; errors %s; connections_created %llu; client CPU %.1f "
        "ms, %ld page faults; peer CPU %.1f ms; close() %.1f ms\n",
        label, issued_ms, open_text.c_str(), o.addresses, answered_ms, p50_ms, p99_ms,
        r.answer_ms.empty() ? 0.0 : r.answer_ms.front(), errors_text(r.errors).c_str(),
        static_cast<unsigned long long>(st.pool.connections_created), cpu * 1e3, faults,
        peer_cpu * 1e3, close_ms);
    std::fflush(stdout);
    std::this_thread::sleep_for(200ms);
  }
  char open_median[32] = "not watched";
  if (!open.empty()) std::snprintf(open_median, sizeof open_median, "%.1f ms", median(open));
  std::printf(
      "median of %u runs (worker_threads %u): issued %.2f ms; all OPEN %s; all answered %.1f ms; "
      "p50 %.1f ms; p99 %.1f ms; client CPU %.1f ms; peer CPU %.1f ms; close() %.1f ms\n",
      o.runs, o.threads, median(issued), open_median, median(answered), median(p50), median(p99),
      median(client_cpu), median(peer_cpus), median(closes));
  return 0;
}

struct mem_sample {
  long vm_rss = 0, rss_anon = 0;          // /proc/self/status, KiB
  long anonymous = 0, private_dirty = 0;  // /proc/self/smaps_rollup, KiB
};

long kib_field(const char* path, std::string_view key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      return std::atol(line.c_str() + key.size() + 1);
    }
  }
  return -1;
}

mem_sample read_memory() {
  ::malloc_trim(0);
  mem_sample s;
  s.vm_rss = kib_field("/proc/self/status", "VmRSS");
  s.rss_anon = kib_field("/proc/self/status", "RssAnon");
  s.anonymous = kib_field("/proc/self/smaps_rollup", "Anonymous");
  s.private_dirty = kib_field("/proc/self/smaps_rollup", "Private_Dirty");
  return s;
}

void print_memory(const char* label, const mem_sample& s) {
  std::printf(
      "%-36s VmRSS %7ld KiB  RssAnon %7ld KiB  Anonymous %7ld KiB  Private_Dirty %7ld KiB\n", label,
      s.vm_rss, s.rss_anon, s.anonymous, s.private_dirty);
}

void print_growth(const char* label, const mem_sample& from, const mem_sample& to, std::size_t n) {
  const double k = 1024.0 / static_cast<double>(n);
  std::printf(
      "%-36s VmRSS %7.0f B    RssAnon %7.0f B    Anonymous %7.0f B    Private_Dirty %7.0f B\n",
      label, static_cast<double>(to.vm_rss - from.vm_rss) * k,
      static_cast<double>(to.rss_anon - from.rss_anon) * k,
      static_cast<double>(to.anonymous - from.anonymous) * k,
      static_cast<double>(to.private_dirty - from.private_dirty) * k);
}

int run_idle(const options& o, peer_process& peer) {
  const unsigned step = o.step == 0 ? o.addresses : std::min(o.step, o.addresses);
  const pool_config cfg = client_config(o);
  std::printf(
      "mode idle: %u addresses in steps of %u, worker_threads %u, recv_buffer_size %zu KiB, "
      "settle %u ms; malloc_trim(0) before each reading\n",
      o.addresses, step, o.threads, cfg.recv_buffer_size, o.settle_ms);
  auto requests = requests_for(o.addresses, 1);  // made before the first reading
  const mem_sample before = read_memory();
  print_memory("before the client", before);
  auto client = std::make_unique<address_client>(cfg, null_logger());
  std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));
  const mem_sample created = read_memory();
  print_memory("client created, no connection", created);
  mem_sample previous = created;
  std::size_t open = 0;
  while (open < o.addresses) {
    const std::size_t n = std::min<std::size_t>(step, o.addresses - open);
    std::vector<std::string> addrs(
        peer.addresses().begin() + static_cast<std::ptrdiff_t>(open),
        peer.addresses().begin() + static_cast<std::ptrdiff_t>(open + n));
    std::vector<bytes> batch(
        std::make_move_iterator(requests.begin() + static_cast<std::ptrdiff_t>(open)),
        std::make_move_iterator(requests.begin() + static_cast<std::ptrdiff_t>(open + n)));
    const batch_result r = send_batch(*client, addrs, std::move(batch), false, open);
    if (!r.errors.empty()) std::printf("errors: %s\n", errors_text(r.errors).c_str());
    open += n;
    std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));
    const std::size_t active = client->active_connections();
    const mem_sample now = read_memory();
    char label[64];
    std::snprintf(label, sizeof label, "%zu open (%zu active), idle", open, active);
    print_memory(label, now);
    std::snprintf(label, sizeof label, "  per connection since previous");
    print_growth(label, previous, now, n);
    previous = now;
  }
  print_growth("per connection since client created", created, previous, open);
  print_growth("per connection since before client", before, previous, open);
  std::fflush(stdout);
  if (!o.massif_snapshot.empty()) {
#ifdef POOL_SCALE_VALGRIND
    if (RUNNING_ON_VALGRIND) {
      const std::string cmd = "detailed_snapshot " + o.massif_snapshot;
      VALGRIND_MONITOR_COMMAND(cmd.c_str());
      std::printf("massif detailed snapshot written to %s\n", o.massif_snapshot.c_str());
    } else {
      std::printf("--massif-snapshot: not running under valgrind, no snapshot\n");
    }
#else
    std::printf("--massif-snapshot: built without valgrind/valgrind.h, no snapshot\n");
#endif
  }
  if (o.exit_idle) {
    std::printf("exiting at the idle point, client not closed\n");
    std::fflush(stdout);
    peer.stop();
    std::_Exit(0);
  }
  client->close();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(std::string(a) + ": missing value", 2);
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::printf(
          "pool_scale [--mode open|idle] [--addresses N] [--runs R] [--warmup W] [--threads T] "
          "[--watch-open] [--step K] [--settle-ms MS] [--recv-kib KIB] [--cpu C] "
          "[--peer-cpu C] [--peer BINARY] [--massif-snapshot FILE] [--exit-idle]\n");
      return 0;
    } else if (a == "--mode") {
      o.mode = value();
    } else if (a == "--addresses") {
      o.addresses = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--runs") {
      o.runs = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--warmup") {
      o.warmup = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--threads") {
      o.threads = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--watch-open") {
      o.watch_open = true;
    } else if (a == "--step") {
      o.step = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--settle-ms") {
      o.settle_ms = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--recv-kib") {
      o.recv_kib = std::stoul(value());
    } else if (a == "--cpu") {
      o.cpu = std::stoi(value());
    } else if (a == "--peer-cpu") {
      o.peer_cpu = std::stoi(value());
    } else if (a == "--peer") {
      o.peer = value();
    } else if (a == "--massif-snapshot") {
      o.massif_snapshot = value();
    } else if (a == "--exit-idle") {
      o.exit_idle = true;
    } else {
      fail("unknown option " + std::string(a), 2);
    }
  }
  if (o.mode != "open" && o.mode != "idle") fail("--mode expects open or idle", 2);
  if (o.addresses < 1 || o.addresses > 10000) fail("--addresses expects 1..10000", 2);
  if (o.runs < 1 || o.threads < 1) fail("--runs and --threads expect at least 1", 2);
  if (o.peer.empty()) {
    o.peer = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "raw_peer").string();
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (o.cpu >= 0) pin(0, o.cpu);  // before any thread: they inherit it
  const rlim_t fds = raise_fd_limit();
  if (fds < 2 * static_cast<rlim_t>(o.addresses) + 64) {
    fail("RLIMIT_NOFILE " + std::to_string(fds) + " is too low for " + std::to_string(o.addresses) +
         " addresses");
  }
  double load[3] = {0, 0, 0};
  ::getloadavg(load, 3);
  std::printf("load average %.2f %.2f %.2f; client CPU %s, peer CPU %s; RLIMIT_NOFILE %llu\n",
              load[0], load[1], load[2], o.cpu >= 0 ? std::to_string(o.cpu).c_str() : "any",
              o.peer_cpu >= 0 ? std::to_string(o.peer_cpu).c_str() : "any",
              static_cast<unsigned long long>(fds));
  peer_process peer(o.peer, o.addresses, o.peer_cpu);
  const int status = o.mode == "open" ? run_open(o, peer) : run_idle(o, peer);
  const std::string summary = peer.stop();
  std::printf("%s\n", summary.c_str());
  return status;
}
