// blocking_bench: the synchronous address_client::send from many threads at once, against one
// raw_peer process with a listener per address.
//
// T threads each call send(address, request, ec) in a loop for --duration seconds, thread t's
// i-th call going to address (t + i) mod A, so that every address is used by every thread. The
// connections are opened (one request each) before the timed part. Each run prints the answers
// per second, the spread of answers over threads (min, max, max/min), the latency of send()
// (p50, p99, max), the client's CPU time and context switches per answer (getrusage of the whole
// process), and the peer's CPU time per answer; with --runs R, the medians follow.
//
//   blocking_bench [--threads T] [--addresses A] [--duration S] [--runs R] [--workers W]
//                  [--cpu C] [--peer-cpu C] [--peer BINARY]
//
// --workers: the client's worker_threads (default 2). --cpu pins this process, --peer-cpu the
// peer.
#include <fcntl.h>
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
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <diampool/address_client.hpp>
#include <diampool/builder.hpp>
#include <diampool/codes.hpp>
#include <diampool/histogram.hpp>
#include <diampool/logger.hpp>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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

bytes make_request(std::uint32_t hbh, const std::string& session) {
  message_header h;
  h.flags = cmd_flags::request | cmd_flags::proxiable;
  h.command_code = 272;
  h.application_id = 4;
  h.hop_by_hop = hbh;
  h.end_to_end = hbh;
  bytes out;
  message_builder b(out, h);
  b.add_string(avp_code::session_id, session)
      .add_string(avp_code::origin_host, "bench.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, "example.net");
  b.finish();
  return out;
}

struct usage {
  double user = 0, sys = 0;
  long voluntary = 0, involuntary = 0;
};

usage process_usage() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return {static_cast<double>(u.ru_utime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec) / 1e6,
          static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) / 1e6,
          u.ru_nvcsw, u.ru_nivcsw};
}

// One sender thread's results, on a cache line of its own.
struct alignas(64) sender {
  std::uint64_t answers = 0;
  std::uint64_t errors = 0;
  std::error_code first_error;
  latency_histogram latency;  // microseconds
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = 64;
  unsigned addresses = 4;
  double duration = 5;
  unsigned runs = 1;
  unsigned workers = 2;
  int cpu = -1;
  int peer_cpu = -1;
  std::string peer_binary;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(std::string(a) + ": missing value", 2);
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::printf(
          "blocking_bench [--threads T] [--addresses A] [--duration S] [--runs R] "
          "[--workers W] [--cpu C] [--peer-cpu C] [--peer BINARY]\n");
      return 0;
    } else if (a == "--threads") {
      threads = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--addresses") {
      addresses = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--duration") {
      duration = std::stod(value());
    } else if (a == "--runs") {
      runs = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--workers") {
      workers = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--cpu") {
      cpu = std::stoi(value());
    } else if (a == "--peer-cpu") {
      peer_cpu = std::stoi(value());
    } else if (a == "--peer") {
      peer_binary = value();
    } else {
      fail("unknown option " + std::string(a), 2);
    }
  }
  if (threads < 1 || addresses < 1 || runs < 1 || workers < 1 || duration <= 0) {
    fail("--threads, --addresses, --runs, --workers and --duration must be positive", 2);
  }
  if (peer_binary.empty()) {
    peer_binary =
        (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "raw_peer").string();
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (cpu >= 0) pin(0, cpu);  // before any thread: they inherit it
  double load[3] = {0, 0, 0};
  ::getloadavg(load, 3);
  std::printf(
      "blocking_bench: %u threads over %u addresses, %.1f s x %u runs, worker_threads %u; "
      "client CPU %s, peer CPU %s; load average %.2f %.2f %.2f\n",
      threads, addresses, duration, runs, workers, cpu >= 0 ? std::to_string(cpu).c_str() : "any",
      peer_cpu >= 0 ? std::to_string(peer_cpu).c_str() : "any", load[0], load[1], load[2]);

  peer_process peer(peer_binary, addresses, peer_cpu);
  const std::vector<std::string>& addrs = peer.addresses();

  pool_config cfg = pool_config::defaults();
  cfg.origin_host = "bench.example.com";
  cfg.origin_realm = "example.com";
  cfg.auth_app_ids = {4};
  cfg.worker_threads = workers;
  address_client client(cfg, null_logger());
  for (const auto& a : addrs) {  // every connection open before the clock starts
    std::error_code ec;
    client.send(a, make_request(0, "bench.example.com;warmup"), ec);
    if (ec) fail("warm-up send to " + a + ": " + ec.message());
  }

  std::vector<double> rates, spreads, cpu_per, p50s, p99s, csw_per;
  for (unsigned run = 1; run <= runs; ++run) {
    std::vector<sender> results(threads);
    std::atomic<bool> stop{false};
    std::latch ready(threads + 1);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const bytes request =
            make_request(t + 1, "bench.example.com;blocking;" + std::to_string(t));
        sender& me = results[t];
        ready.arrive_and_wait();
        for (std::size_t i = t; !stop.load(std::memory_order_relaxed); ++i) {
          const auto t0 = clock_type::now();
          std::error_code ec;
          const bytes answer = client.send(addrs[i % addrs.size()], request, ec);
          const auto us =
              std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0);
          if (ec) {
            if (me.errors++ == 0) me.first_error = ec;
            continue;
          }
          ++me.answers;
          me.latency.record(static_cast<std::uint64_t>(us.count()));
        }
      });
    }
    const usage u0 = process_usage();
    const double peer0 = peer.cpu_seconds();
    ready.arrive_and_wait();
    const auto start = clock_type::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(duration));
    stop = true;
    for (auto& th : pool)
      th.join();
    const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    const usage u1 = process_usage();
    const double peer_cpu_s = peer.cpu_seconds() - peer0;

    std::uint64_t total = 0, errors = 0, lo = UINT64_MAX, hi = 0;
    histogram_snapshot lat;
    std::error_code first_error;
    for (const sender& s : results) {
      total += s.answers;
      errors += s.errors;
      lo = std::min(lo, s.answers);
      hi = std::max(hi, s.answers);
      if (!first_error && s.first_error) first_error = s.first_error;
      lat.merge(s.latency.snapshot());
    }
    const double n = static_cast<double>(std::max<std::uint64_t>(total, 1));
    const double user = u1.user - u0.user, sys = u1.sys - u0.sys;
    const double vcsw = static_cast<double>(u1.voluntary - u0.voluntary);
    const double icsw = static_cast<double>(u1.involuntary - u0.involuntary);
    rates.push_back(static_cast<double>(total) / elapsed);
    spreads.push_back(lo == 0 ? 0 : static_cast<double>(hi) / static_cast<double>(lo));
    cpu_per.push_back((user + sys) * 1e6 / n);
    p50s.push_back(static_cast<double>(lat.quantile(0.5)));
    p99s.push_back(static_cast<double>(lat.quantile(0.99)));
    csw_per.push_back((vcsw + icsw) / n);
    std::printf(
        "run %u: %llu answers in %.2f s = %.0f answers/s; errors %llu%s%s\n"
        "  per thread: min %llu, max %llu, mean %.0f, max/min %.2f\n"
        "  send() latency: p50 %llu us, p99 %llu us, max %llu us\n"
        "  client CPU: %.2f us/answer (user %.2f, sys %.2f); context switches/answer: %.2f "
        "voluntary, %.2f involuntary; peer CPU %.2f us/answer\n",
        run, static_cast<unsigned long long>(total), elapsed, rates.back(),
        static_cast<unsigned long long>(errors), first_error ? " first: " : "",
        first_error ? first_error.message().c_str() : "", static_cast<unsigned long long>(lo),
        static_cast<unsigned long long>(hi), n / threads, spreads.back(),
        static_cast<unsigned long long>(lat.quantile(0.5)),
        static_cast<unsigned long long>(lat.quantile(0.99)),
        static_cast<unsigned long long>(lat.max), cpu_per.back(), user * 1e6 / n, sys * 1e6 / n,
        vcsw / n, icsw / n, peer_cpu_s * 1e6 / n);
    std::fflush(stdout);
  }
  if (runs > 1) {
    std::printf(
        "median of %u runs: %.0f answers/s; max/min per thread %.2f; p50 %.0f us; p99 %.0f us; "
        "client CPU %.2f us/answer; %.2f context switches/answer\n",
        runs, median(rates), median(spreads), median(p50s), median(p99s), median(cpu_per),
        median(csw_per));
  }
  client.close();
  std::printf("%s\n", peer.stop().c_str());
  return 0;
}
