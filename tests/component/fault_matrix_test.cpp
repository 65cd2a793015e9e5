// The fault matrix: every way a peer or the network can fail, under load, against the
// address_client, each case checking the same promises:
//   - every request issued gets exactly one outcome (an answer or an error), by its deadline;
//   - no request is answered twice or with another request's answer (Hop-by-Hop id and
//     Session-Id are checked on every answer);
//   - every error is one the fault can explain (each case lists them);
//   - once the fault is gone the pool serves the address again (per its backoff);
//   - close() returns within its bound, leaves nothing in flight, and no fd or thread is left
//     behind (counted before and after; memory by LeakSanitizer in the ASan build).
// Each case also runs a second time with close() called while the fault is active.
//
// Peers are embedded_peers with fault knobs, or `diampool peer` processes for the faults only
// a process has (SIGKILL, SIGSTOP). The black hole inside a private network namespace is a
// separate CTest entry (fault_matrix_netns) that runs this binary under `unshare --net`.
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <asio/post.hpp>
#include <asio/system_executor.hpp>

#include "diampool/address_client.hpp"
#include "diampool/builder.hpp"
#include "diampool/embedded_peer.hpp"
#include "test_support.hpp"

extern char** environ;

// Fault knobs are written as designated initializers, naming only the knobs a case turns.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace diampool {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
using clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// How late an outcome may come after its deadline: the completion has to be scheduled on a
// busy 2-vCPU machine, slower still under the sanitizers.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr ms outcome_slack = 1500ms;
#else
constexpr ms outcome_slack = 500ms;
#endif

// ---- resources of this process ----

std::size_t entries(const char* dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

struct resources {
  std::size_t fds = 0;
  std::size_t threads = 0;
  bool operator==(const resources&) const = default;
};

resources current_resources() {
  return {entries("/proc/self/fd"), entries("/proc/self/task")};
}

// ---- requests and answers ----

using test::make_request;

// True when `answer` is the answer to the request with this Hop-by-Hop id and Session-Id.
bool answers(const bytes& answer, std::uint32_t hbh, const std::string& session) {
  std::error_code ec;
  const auto v = message_view::parse(answer, ec);
  if (ec || v.header().is_request() || v.header().hop_by_hop != hbh ||
      v.header().command_code != 272)
    return false;
  for (const avp& a : v.avps()) {
    if (a.code() == avp_code::session_id) return a.as_string() == session;
  }
  return false;
}

// ---- which errors a fault may explain ----

using error_filter = std::function<bool(const std::error_code&)>;

error_filter none() {
  return [](const std::error_code&) { return false; };
}
// Connection failures (closed, refused, reset, handshake, watchdog, DPR) and timeouts.
error_filter connection_trouble() {
  return [](const std::error_code& ec) {
    return ec == condition::connection_failed || ec == condition::timeout;
  };
}
error_filter timeouts() {
  return [](const std::error_code& ec) { return ec == condition::timeout; };
}
error_filter operator|(error_filter a, error_filter b) {
  return [a = std::move(a), b = std::move(b)](const std::error_code& ec) { return a(ec) || b(ec); };
}
error_filter is(std::error_code code) {
  return [code](const std::error_code& ec) { return ec == code; };
}
error_filter is(std::error_condition cond) {
  return [cond](const std::error_code& ec) { return ec == cond; };
}

// ---- load: a window of async requests with deadlines, every outcome accounted for ----

struct load_options {
  std::vector<std::string> addresses;
  std::size_t inflight = 128;
  ms deadline = 800ms;
  std::uint64_t max_requests = 30000;
  std::size_t padding = 0;     // bytes added to each ~100-byte request
  ms pause_after_error = 1ms;  // so addresses that fail at once do not make a busy loop
};

struct summary {
  std::uint64_t issued = 0;
  std::uint64_t answered = 0;
  std::uint64_t failed = 0;
  std::uint64_t missing = 0;     // issued, no outcome
  std::uint64_t duplicated = 0;  // a second outcome for one request
  std::uint64_t mismatched = 0;  // an answer that is not the request's
  std::uint64_t late = 0;        // outcome later than deadline + slack
  ms worst_lateness{0};
  std::vector<std::uint64_t> failed_by_address;        // index in load_options::addresses
  std::map<std::string, std::uint64_t> errors;         // by message
  std::map<std::string, std::error_code> error_codes;  // one of each
};

std::ostream& operator<<(std::ostream& os, const summary& s) {
  os << "issued " << s.issued << ", answered " << s.answered << ", failed " << s.failed
     << ", missing " << s.missing << ", duplicated " << s.duplicated << ", mismatched "
     << s.mismatched << ", late " << s.late << " (worst " << s.worst_lateness.count() << " ms)";
  for (std::size_t i = 0; i < s.failed_by_address.size(); ++i)
    os << "; failed at address " << i << ": " << s.failed_by_address[i];
  for (const auto& [k, n] : s.errors)
    os << "; " << k << ": " << n;
  return os;
}

class load {
 public:
  load(address_client& client, load_options o)
      : client_(client),
        o_(std::move(o)),
        records_(new record[o_.max_requests]),
        failed_by_address_(o_.addresses.size()) {
    thread_ = std::thread([this] { run(); });
  }
  ~load() { stop(); }
  load(const load&) = delete;
  load& operator=(const load&) = delete;

  // Waits until `n` more requests than now have been answered (or errors, or outcomes).
  bool wait_answers(std::uint64_t n, ms timeout = 10s) {
    return wait_more(&load::answered_, n, timeout);
  }
  bool wait_errors(std::uint64_t n, ms timeout = 10s) {
    return wait_more(&load::failed_, n, timeout);
  }

  // Stops issuing, waits for every outcome (bounded: the last deadline + slack + 5 s).
  summary stop() {
    {
      std::unique_lock lk(m_);
      if (stopped_) return result_;
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::unique_lock lk(m_);
    cv_.wait_until(lk, last_deadline_ + outcome_slack + 5s, [&] { return outstanding_ == 0; });
    stopped_ = true;
    summary& s = result_;
    s.issued = issued_;
    s.answered = answered_;
    s.failed = failed_;
    s.duplicated = duplicated_;
    s.mismatched = mismatched_;
    s.late = late_;
    s.worst_lateness = worst_lateness_;
    s.errors = errors_;
    s.error_codes = error_codes_;
    s.failed_by_address = failed_by_address_;
    for (std::uint64_t i = 0; i < issued_; ++i) {
      if (records_[i].outcomes.load() == 0) ++s.missing;
    }
    return s;
  }

 private:
  struct record {
    std::string session;
    std::size_t address = 0;
    clock::time_point deadline;
    std::atomic<unsigned> outcomes{0};
  };

  bool wait_more(std::uint64_t load::*counter, std::uint64_t n, ms timeout) {
    std::unique_lock lk(m_);
    const std::uint64_t target = this->*counter + n;
    return cv_.wait_for(lk, timeout, [&] { return this->*counter >= target; });
  }

  void run() {
    std::size_t next_address = 0;
    for (;;) {
      std::unique_lock lk(m_);
      cv_.wait(lk, [&] { return stopping_ || outstanding_ < o_.inflight; });
      if (stopping_ || issued_ == o_.max_requests || client_.closed()) return;
      if (pause_) {
        pause_ = false;
        if (cv_.wait_for(lk, o_.pause_after_error, [&] { return stopping_; })) return;
      }
      const std::uint64_t seq = issued_++;
      ++outstanding_;
      record& r = records_[seq];
      r.session = "fault-matrix;" + std::to_string(seq);
      r.deadline = clock::now() + o_.deadline;
      r.address = next_address++ % o_.addresses.size();
      last_deadline_ = r.deadline;
      lk.unlock();
      const auto hbh = static_cast<std::uint32_t>(seq + 1);
      client_.async_send(
          o_.addresses[r.address], make_request(hbh, r.session, o_.padding), r.deadline,
          [this, seq, hbh](std::error_code ec, bytes answer) { outcome(seq, hbh, ec, answer); });
    }
  }

  void outcome(std::uint64_t seq, std::uint32_t hbh, const std::error_code& ec,
               const bytes& answer) {
    record& r = records_[seq];
    const auto now = clock::now();
    const bool first = r.outcomes.fetch_add(1) == 0;
    std::lock_guard lk(m_);
    if (!first) {
      ++duplicated_;
      return;
    }
    if (now > r.deadline + outcome_slack) {
      ++late_;
      worst_lateness_ = std::max(worst_lateness_, std::chrono::duration_cast<ms>(now - r.deadline));
    }
    if (ec) {
      ++failed_;
      ++failed_by_address_[r.address];
      pause_ = true;
      ++errors_[ec.message()];
      error_codes_.emplace(ec.message(), ec);
    } else {
      ++answered_;
      if (!answers(answer, hbh, r.session)) ++mismatched_;
    }
    --outstanding_;
    cv_.notify_all();
  }

  address_client& client_;
  const load_options o_;
  std::unique_ptr<record[]> records_;
  std::mutex m_;
  std::condition_variable cv_;
  std::uint64_t issued_ = 0;
  std::uint64_t outstanding_ = 0;
  std::uint64_t answered_ = 0;
  std::uint64_t failed_ = 0;
  std::uint64_t duplicated_ = 0;
  std::uint64_t mismatched_ = 0;
  std::uint64_t late_ = 0;
  ms worst_lateness_{0};
  std::vector<std::uint64_t> failed_by_address_;
  std::map<std::string, std::uint64_t> errors_;
  std::map<std::string, std::error_code> error_codes_;
  clock::time_point last_deadline_ = clock::now();
  bool pause_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
  summary result_;
  std::thread thread_;  // last: started once everything above exists
};

// ---- a `diampool peer` process ----

class peer_process {
 public:
  explicit peer_process(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    start("127.0.0.1:0");
  }
  ~peer_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
  }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;

  const std::string& address() const { return address_; }
  void signal(int sig) { ::kill(pid_, sig); }
  void kill_and_reap() {
    ::kill(pid_, SIGKILL);
    reap();
  }
  void restart() { start(address_); }  // same address (the peer's listener reuses it)

 private:
  void start(const std::string& listen) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    std::vector<std::string> args = {DIAMPOOL_CLI_PATH, "peer", "--listen",      listen,
                                     "--auth-app",      "4",    "--dpr-wait-ms", "200"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    const int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    ASSERT_EQ(rc, 0) << "spawn " << argv[0];
    // Drains the peer's event lines until it exits, noting the address it listens on.
    listening_.clear();
    reader_ = std::thread([this, fd = fds[0]] {
      std::string buf;
      char chunk[4096];
      ssize_t n;
      while ((n = ::read(fd, chunk, sizeof chunk)) > 0) {
        buf.append(chunk, static_cast<std::size_t>(n));
        const auto at = buf.find("listening on ");
        const auto eol = at == std::string::npos ? at : buf.find('\n', at);
        if (eol != std::string::npos) {
          std::lock_guard lk(m_);
          if (listening_.empty()) listening_ = buf.substr(at + 13, eol - at - 13);
          cv_.notify_all();
          buf.erase(0, eol + 1);
        }
        if (buf.size() > 65536) buf.clear();
      }
      ::close(fd);
    });
    std::unique_lock lk(m_);
    ASSERT_TRUE(cv_.wait_for(lk, 20s, [&] { return !listening_.empty(); }))
        << "diampool peer did not start";
    address_ = listening_;
  }

  void reap() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (reader_.joinable()) reader_.join();  // EOF once the process is gone
  }

  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex m_;
  std::condition_variable cv_;
  std::string listening_;
  std::string address_;
};

// ---- the matrix ----

pool_config matrix_config() {
  pool_config c = pool_config::defaults();
  c.origin_host = "client.example.com";
  c.origin_realm = "example.com";
  c.auth_app_ids = {4};
  c.dial_timeout = 500ms;
  c.cer_timeout = 300ms;
  c.send_timeout = 1s;
  c.dwr_timeout = 300ms;
  c.reconnect_interval = 50ms;
  c.max_reconnect_delay = 400ms;
  c.reconnect_jitter = 0.1;
  c.dpa_timeout = 300ms;
  c.drain_timeout = 300ms;
  c.write_timeout = 1s;
  c.worker_threads = 2;
  return c;
}

embedded_peer_options peer_options(embedded_peer_faults faults = {}) {
  embedded_peer_options o;
  o.auth_application_ids = {4};
  o.faults = std::move(faults);
  return o;
}

// Establishment attempts one address can make in `span` under config c's backoff (every delay
// at its shortest, jitter included), counting the first.
std::uint64_t attempts_within(const pool_config& c, clock::duration span) {
  std::uint64_t n = 1;
  double delay = std::chrono::duration<double>(c.reconnect_interval).count();
  const double cap = std::chrono::duration<double>(c.max_reconnect_delay).count();
  double t = 0;
  const double end = std::chrono::duration<double>(span).count();
  for (;;) {
    t += std::min(delay, cap) * (1 - c.reconnect_jitter);
    if (t > end) return n;
    ++n;
    delay *= c.reconnect_backoff;
  }
}

class fault_matrix;
struct fault_case {
  const char* name;
  void (*run)(fault_matrix&);
  friend void PrintTo(const fault_case& c, std::ostream* os) { *os << c.name; }
};

class fault_matrix : public ::testing::TestWithParam<std::tuple<fault_case, bool>> {
 public:
  void SetUp() override {
    // Completions of requests refused after close() run on asio's system executor, whose
    // threads start on its first use and live as long as the process: start them first.
    std::promise<void> started;
    asio::post(asio::system_executor(), [&] { started.set_value(); });
    started.get_future().wait();
    before_ = current_resources();
  }

  void TearDown() override {
    load_.reset();
    if (client_) {
      client_->close();
      client_.reset();
    }
    // Threads and sockets are released by the time close() and the destructors return.
    EXPECT_EQ(current_resources().fds, before_.fds) << "file descriptors leaked";
    EXPECT_EQ(current_resources().threads, before_.threads) << "threads leaked";
  }

  address_client& client(pool_config c = matrix_config()) {
    config_ = c;
    client_ = std::make_unique<address_client>(std::move(c), null_logger());
    return *client_;
  }
  const pool_config& config() const { return config_; }

  load& start_load(load_options o) {
    load_ = std::make_unique<load>(*client_, std::move(o));
    return *load_;
  }

  // In the close-during variant: closes the client now, while the fault is active, and checks
  // what close() promises (bounded, nothing left in flight, every request accounted for, only
  // `expected` errors or pool_closed). Returns true then: the case ends there.
  bool interrupt(const error_filter& expected) {
    if (!std::get<1>(GetParam())) return false;
    const auto start = clock::now();
    client_->close();
    const auto took = clock::now() - start;
    EXPECT_LE(took, config_.drain_timeout + config_.dpa_timeout + outcome_slack + 500ms)
        << "close() took " << std::chrono::duration_cast<ms>(took).count() << " ms";
    finish(expected | is(make_error_code(error::pool_closed)));
    EXPECT_EQ(client_->stats().in_flight, 0U);
    std::error_code ec;
    client_->send("127.0.0.1:1", make_request(1), 100ms, ec);
    EXPECT_EQ(ec, error::pool_closed);
    return true;
  }

  // Stops the load and checks every request's outcome; returns the summary.
  summary finish(const error_filter& expected) {
    const summary s = load_->stop();
    EXPECT_GT(s.issued, 0U);
    EXPECT_EQ(s.missing, 0U) << s;
    EXPECT_EQ(s.duplicated, 0U) << s;
    EXPECT_EQ(s.mismatched, 0U) << s;
    EXPECT_EQ(s.late, 0U) << s;
    for (const auto& [message, code] : s.error_codes)
      EXPECT_TRUE(expected(code)) << "unexpected error \"" << message << "\" (" << code << "); "
                                  << s;
    return s;
  }

  // The pool serves `address` again: a request gets its own answer within `within`.
  void expect_usable(const std::string& address, ms within = 5s) {
    std::error_code ec;
    const auto answer = client_->send(address, make_request(77, "fault-matrix;after", 0),
                                      clock::now() + within, ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(answers(answer, 77, "fault-matrix;after"));
  }

  // Ends a case that was not interrupted: the fault is gone and traffic flows again.
  void recovered(load& l, const error_filter& expected, const std::string& address) {
    EXPECT_TRUE(l.wait_answers(50)) << "no traffic after the fault was removed";
    const summary s = finish(expected);
    expect_usable(address);
    std::printf("  %s\n", testing::PrintToString(s).c_str());
  }

 private:
  resources before_;
  pool_config config_;
  std::unique_ptr<address_client> client_;
  std::unique_ptr<load> load_;
};

// ---- the cases ----

void peer_killed_mid_load_and_restarted(fault_matrix& m) {
  peer_process peer;
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}, .inflight = 64});
  ASSERT_TRUE(l.wait_answers(500));
  peer.kill_and_reap();
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.connections_closed >= 1; }));
  if (m.interrupt(connection_trouble())) return;
  ASSERT_TRUE(l.wait_errors(10));
  peer.restart();
  m.recovered(l, connection_trouble(), peer.address());
  EXPECT_GE(c.stats().pool.connections_created, 2U);
}

void peer_stopped_then_continued(fault_matrix& m) {
  peer_process peer;
  pool_config cfg = matrix_config();
  cfg.dwr_interval = 200ms;
  cfg.dwr_jitter = 0ms;
  cfg.dwr_timeout = 200ms;
  cfg.max_dwr_failures = 1;
  auto& c = m.client(cfg);
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(200));
  peer.signal(SIGSTOP);  // no FIN, no RST, no answers: only the watchdog can tell
  ASSERT_TRUE(l.wait_errors(32));
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.connections_closed >= 1; }))
      << "the watchdog did not take the connection down";
  if (m.interrupt(connection_trouble())) {
    peer.signal(SIGCONT);
    return;
  }
  peer.signal(SIGCONT);
  m.recovered(l, connection_trouble(), peer.address());
}

void connection_refused(fault_matrix& m) {
  auto refused = std::make_unique<test::refused_port>();
  const std::string address = refused->address();
  auto& c = m.client();
  const auto start = clock::now();
  auto& l = m.start_load({.addresses = {address}});
  ASSERT_TRUE(l.wait_errors(64));
  // No dial storm: establishments follow the backoff schedule, not the sends.
  const auto dials = c.stats().pool.failed_establishments;
  EXPECT_LE(dials, attempts_within(m.config(), clock::now() - start));
  EXPECT_GE(dials, 1U);
  if (m.interrupt(connection_trouble())) return;
  refused.reset();
  auto o = peer_options();
  o.listen = address;
  embedded_peer back(o);
  m.recovered(l, connection_trouble(), address);
}

void black_hole(fault_matrix& m) {
  auto hole = std::make_unique<test::black_hole>();
  const std::string address = hole->address();
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {address}, .deadline = 400ms});
  ASSERT_TRUE(l.wait_errors(32));
  EXPECT_EQ(c.stats().pool.connections_created, 0U);
  if (m.interrupt(connection_trouble())) return;
  hole.reset();
  auto o = peer_options();
  o.listen = address;
  embedded_peer back(o);
  m.recovered(l, connection_trouble(), address);
}

void cea_never_sent(fault_matrix& m) {
  embedded_peer peer(peer_options({.answer_cer = false}));
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_errors(32));
  EXPECT_EQ(c.stats().pool.connections_created, 0U);
  EXPECT_GE(peer.stats().cers, 1U);
  if (m.interrupt(connection_trouble())) return;
  peer.set_faults({});
  m.recovered(l, connection_trouble(), peer.address());
}

template <std::uint32_t Code>
void cea_error(fault_matrix& m) {
  embedded_peer peer(peer_options({.cea_result_code = Code}));
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_errors(32));
  EXPECT_EQ(c.stats().pool.connections_created, 0U);
  const auto info = c.connection(peer.address());
  ASSERT_TRUE(info);
  ASSERT_TRUE(info->stats.handshake);
  EXPECT_EQ(info->stats.handshake->result_code, Code);
  if (m.interrupt(connection_trouble())) return;
  peer.set_faults({});
  m.recovered(l, connection_trouble(), peer.address());
}

void watchdog_unanswered(fault_matrix& m) {
  embedded_peer peer(peer_options());
  pool_config cfg = matrix_config();
  cfg.dwr_interval = 150ms;
  cfg.dwr_jitter = 0ms;
  cfg.dwr_timeout = 150ms;
  cfg.max_dwr_failures = 1;
  auto& c = m.client(cfg);
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(200));
  // A peer that is connected but mute: no DWA, no answers.
  peer.set_faults({.answer_dwr = false, .drop_every_nth_answer = 1});
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.connections_closed >= 1; }))
      << "the watchdog did not take the connection down";
  EXPECT_GE(peer.stats().dwrs, 1U);
  if (m.interrupt(connection_trouble())) return;
  peer.set_faults({});
  m.recovered(l, connection_trouble(), peer.address());
}

template <std::int32_t Cause>
void peer_sends_dpr(fault_matrix& m) {
  embedded_peer peer(peer_options());
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(200));
  peer.send_dpr(Cause);
  ASSERT_TRUE(peer.wait_for([](const auto& s) { return s.dpas_received >= 1; }, 5s));
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.connections_closed >= 1; }));
  if (m.interrupt(connection_trouble())) return;
  m.recovered(l, connection_trouble(), peer.address());
  EXPECT_GE(c.stats().pool.connections_created, 2U);
}

// The peer writes `bad` on the open connection in the middle of the load.
void bad_input(fault_matrix& m, bytes bad, bool then_close) {
  embedded_peer peer(peer_options());
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(200));
  peer.write_raw(std::move(bad));
  if (then_close) {
    ASSERT_TRUE(peer.wait_for([](const auto& s) { return s.raw_writes >= 1; }, 5s));
    peer.close_all();
  }
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.connections_closed >= 1; }));
  const auto errors = connection_trouble() | is(condition::malformed_message);
  if (m.interrupt(errors)) return;
  m.recovered(l, errors, peer.address());
}

bytes header(std::uint8_t version, std::uint32_t length) {
  return {version,
          static_cast<std::uint8_t>(length >> 16),
          static_cast<std::uint8_t>(length >> 8),
          static_cast<std::uint8_t>(length),
          0,
          0,
          1,
          16,  // answer, command 272
          0,
          0,
          0,
          4,  // application 4
          0xfe,
          0xed,
          0xfa,
          0xce,
          0xde,
          0xad,
          0xbe,
          0xef};
}

void garbage(fault_matrix& m) {
  bytes junk(256);
  for (std::size_t i = 0; i < junk.size(); ++i)
    junk[i] = static_cast<std::uint8_t>(i * 37 + 11);
  bad_input(m, junk, false);
}
void length_16_mib(fault_matrix& m) {
  bad_input(m, header(1, 16u * 1024 * 1024), false);
}
void length_under_20(fault_matrix& m) {
  bad_input(m, header(1, 12), false);
}
void truncated_frame_then_close(fault_matrix& m) {
  bytes partial = header(1, 200);
  partial.resize(60, 0);
  bad_input(m, partial, true);
}

void slowloris_from_the_start(fault_matrix& m) {
  embedded_peer peer(peer_options({.trickle_interval = 100ms}));
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_errors(32));
  EXPECT_EQ(c.stats().pool.connections_created, 0U);  // a CEA byte per 100 ms misses cer_timeout
  if (m.interrupt(connection_trouble())) return;
  peer.set_faults({});
  m.recovered(l, connection_trouble(), peer.address());
}

void slowloris_once_open(fault_matrix& m) {
  embedded_peer peer(peer_options());
  pool_config cfg = matrix_config();
  cfg.dwr_interval = 200ms;
  cfg.dwr_jitter = 0ms;
  cfg.dwr_timeout = 200ms;
  cfg.max_dwr_failures = 1;
  auto& c = m.client(cfg);
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(200));
  peer.set_faults({.trickle_interval = 100ms});
  ASSERT_TRUE(l.wait_errors(32));
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.connections_closed >= 1; }))
      << "a peer trickling bytes kept its connection";
  if (m.interrupt(connection_trouble())) return;
  peer.set_faults({});
  m.recovered(l, connection_trouble(), peer.address());
}

void peer_stops_reading(fault_matrix& m) {
  embedded_peer peer(peer_options());
  auto& c = m.client();
  // 16 KiB requests, 256 in flight: 4 MiB a window, enough to fill the socket buffers.
  auto& l = m.start_load(
      {.addresses = {peer.address()}, .inflight = 256, .max_requests = 6000, .padding = 16384});
  ASSERT_TRUE(l.wait_answers(200));
  peer.set_faults({.stop_reading = true});
  const std::uint64_t read_before = peer.stats().requests;
  ASSERT_TRUE(l.wait_errors(256));
  // Meanwhile the peer read at most the batch under way (64 KiB, four of these requests): the
  // window's requests waited in the client and the socket buffers until their deadlines.
  EXPECT_LE(peer.stats().requests - read_before, 8U);
  EXPECT_GE(c.stats().total_timeouts, 256U);
  const auto errors = connection_trouble() | is(make_error_code(error::send_queue_full));
  if (m.interrupt(errors)) return;
  peer.set_faults({});
  m.recovered(l, errors, peer.address());
}

void answer_after_the_deadline(fault_matrix& m) {
  embedded_peer peer(peer_options());
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}, .deadline = 300ms});
  ASSERT_TRUE(l.wait_answers(200));
  peer.set_faults({.answer_delay = 600ms});
  ASSERT_TRUE(l.wait_errors(32));
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.unmatched_answers >= 1; }))
      << "late answers are not counted";
  if (m.interrupt(timeouts())) return;
  peer.set_faults({});
  m.recovered(l, timeouts(), peer.address());
  EXPECT_EQ(c.stats().pool.connections_created, 1U) << "a late answer cost the connection";
}

void duplicate_answers(fault_matrix& m) {
  embedded_peer peer(peer_options({.duplicate_every_nth_answer = 1}));
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(500));
  if (m.interrupt(none())) return;
  const summary s = m.finish(none());
  // Every copy is counted as unmatched, none reaches a caller.
  EXPECT_TRUE(test::eventually([&] {
    return c.stats().pool.unmatched_answers == peer.stats().answers_duplicated;
  })) << c.stats().pool.unmatched_answers
      << " unmatched, " << peer.stats().answers_duplicated << " duplicated";
  EXPECT_EQ(s.answered, s.issued);
  EXPECT_EQ(c.stats().pool.connections_created, 1U);
}

void answers_for_unknown_hop_by_hop_ids(fault_matrix& m) {
  embedded_peer peer(peer_options());
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(200));
  message_header h;
  h.command_code = 272;
  h.application_id = 4;
  h.end_to_end = 0x01020304;
  for (std::uint32_t i = 0; i < 10; ++i) {
    h.hop_by_hop = 0xfffffff0U + i;
    bytes stray;
    message_builder b(stray, h);
    b.add_string(avp_code::session_id, "stray;" + std::to_string(i))
        .add_unsigned32(avp_code::result_code, result_code::success)
        .add_string(avp_code::origin_host, "peer.example.net")
        .add_string(avp_code::origin_realm, "example.net");
    b.finish();
    peer.write_raw(stray);
  }
  ASSERT_TRUE(test::eventually([&] { return c.stats().pool.unmatched_answers >= 10; }));
  if (m.interrupt(none())) return;
  m.finish(none());
  EXPECT_EQ(c.stats().pool.unmatched_answers, 10U);
  EXPECT_EQ(c.stats().pool.connections_created, 1U);
}

// Before every 4th request's real answer (delayed 30 ms), the peer writes an answer with that
// request's Hop-by-Hop id but another Command-Code, or another End-to-End id and Session-Id.
// Taking either for the answer would hand a caller someone else's answer.
void answers_claiming_a_pending_hop_by_hop_id(fault_matrix& m) {
  std::atomic<embedded_peer*> self{nullptr};
  std::atomic<std::uint64_t> seen{0};
  std::atomic<std::uint64_t> conflicting{0};
  auto o = peer_options({.answer_delay = 30ms});
  o.on_message = [&](const message_view& request) {
    embedded_peer* peer = self.load();
    if (peer == nullptr || !request.header().is_request() || request.header().command_code != 272)
      return;
    const std::uint64_t n = ++seen;
    if (n % 4 != 0) return;
    message_header h = request.header();
    h.flags = 0;
    if (n % 8 == 0)
      h.command_code = 275;
    else
      h.end_to_end ^= 1;
    bytes wrong;
    message_builder b(wrong, h);
    b.add_string(avp_code::session_id, "someone-else;" + std::to_string(n))
        .add_unsigned32(avp_code::result_code, result_code::success)
        .add_string(avp_code::origin_host, "peer.example.net")
        .add_string(avp_code::origin_realm, "example.net");
    b.finish();
    peer->write_raw(std::move(wrong));
    ++conflicting;
  };
  embedded_peer peer(o);
  self = &peer;
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {peer.address()}});
  ASSERT_TRUE(l.wait_answers(1000));
  if (m.interrupt(none())) return;
  const summary s = m.finish(none());
  EXPECT_EQ(s.answered, s.issued);
  EXPECT_TRUE(test::eventually([&] {
    return c.stats().pool.unmatched_answers == conflicting.load();
  })) << c.stats().pool.unmatched_answers
      << " unmatched, " << conflicting.load() << " written";
  self = nullptr;
}

// Two healthy peers, a stopped one and a black hole, in one pool and one load: the faults stay
// with their addresses (no head-of-line blocking, no shared lock held across a dial).
void faults_stay_with_their_addresses(fault_matrix& m) {
  embedded_peer good0(peer_options());
  embedded_peer good1(peer_options());
  peer_process stopped;
  test::black_hole hole;
  auto& c = m.client();
  auto& l = m.start_load(
      {.addresses = {good0.address(), good1.address(), stopped.address(), hole.address()}});
  ASSERT_TRUE(l.wait_answers(200));
  stopped.signal(SIGSTOP);
  ASSERT_TRUE(l.wait_errors(64));
  ASSERT_TRUE(l.wait_answers(500)) << "the healthy addresses stalled";
  if (m.interrupt(connection_trouble())) {
    stopped.signal(SIGCONT);
    return;
  }
  const summary s = m.finish(connection_trouble());
  stopped.signal(SIGCONT);
  EXPECT_EQ(s.failed_by_address[0], 0U) << s;
  EXPECT_EQ(s.failed_by_address[1], 0U) << s;
  EXPECT_GT(s.failed_by_address[2] + s.failed_by_address[3], 0U) << s;
  EXPECT_EQ(c.connection(good0.address())->state, peer_state::open);
  EXPECT_EQ(c.connection(good1.address())->state, peer_state::open);
  EXPECT_EQ(good0.stats().connections_accepted, 1U);
  EXPECT_EQ(good1.stats().connections_accepted, 1U);
}

void ten_thousand_sends_to_a_thousand_unreachable_addresses(fault_matrix& m) {
  // A port held on every local address, so nothing listens on it anywhere on loopback.
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  socklen_t len = sizeof any;
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&any), &len);
  const auto port = std::to_string(ntohs(any.sin_port));
  std::vector<std::string> addresses;
  for (int i = 0; i < 1000; ++i)
    addresses.push_back("127.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) +
                        ":" + port);

  pool_config cfg = matrix_config();
  cfg.reconnect_interval = 200ms;
  cfg.max_reconnect_delay = 1s;
  auto& c = m.client(cfg);
  const auto start = clock::now();
  auto& l = m.start_load({.addresses = addresses,
                          .inflight = 10000,
                          .deadline = 1s,
                          .max_requests = 10000,
                          .pause_after_error = 0ms});
  const bool done = l.wait_errors(10000, 20s);
  if (!m.interrupt(connection_trouble())) {
    EXPECT_TRUE(done);
    const summary s = m.finish(connection_trouble());
    EXPECT_EQ(s.failed, 10000U);
  }
  // Dials follow each address's backoff, whatever the number of sends.
  const auto dials = c.stats().pool.failed_establishments + c.stats().pool.connections_created;
  EXPECT_EQ(c.stats().pool.connections_created, 0U);
  EXPECT_LE(dials, 1000 * attempts_within(cfg, clock::now() - start)) << dials << " dials";
  std::printf("  %llu dials for 10000 sends to 1000 addresses\n",
              static_cast<unsigned long long>(dials));
  ::close(holder);
}

const fault_case cases[] = {
    {"peer_killed_mid_load_and_restarted", peer_killed_mid_load_and_restarted},
    {"peer_stopped_then_continued", peer_stopped_then_continued},
    {"connection_refused", connection_refused},
    {"black_hole", black_hole},
    {"cea_never_sent", cea_never_sent},
    {"cea_3010", cea_error<3010>},
    {"cea_5010", cea_error<5010>},
    {"cea_5012", cea_error<5012>},
    {"cea_4003", cea_error<4003>},
    {"watchdog_unanswered", watchdog_unanswered},
    {"dpr_rebooting", peer_sends_dpr<disconnect_cause::rebooting>},
    {"dpr_busy", peer_sends_dpr<disconnect_cause::busy>},
    {"dpr_do_not_want_to_talk_to_you",
     peer_sends_dpr<disconnect_cause::do_not_want_to_talk_to_you>},
    {"garbage", garbage},
    {"length_16_mib", length_16_mib},
    {"length_under_20", length_under_20},
    {"truncated_frame_then_close", truncated_frame_then_close},
    {"slowloris_from_the_start", slowloris_from_the_start},
    {"slowloris_once_open", slowloris_once_open},
    {"peer_stops_reading", peer_stops_reading},
    {"answer_after_the_deadline", answer_after_the_deadline},
    {"duplicate_answers", duplicate_answers},
    {"answers_for_unknown_hop_by_hop_ids", answers_for_unknown_hop_by_hop_ids},
    {"answers_claiming_a_pending_hop_by_hop_id", answers_claiming_a_pending_hop_by_hop_id},
    {"faults_stay_with_their_addresses", faults_stay_with_their_addresses},
    {"ten_thousand_sends_to_a_thousand_unreachable_addresses",
     ten_thousand_sends_to_a_thousand_unreachable_addresses},
};

TEST_P(fault_matrix, promises_hold) {
  std::get<0>(GetParam()).run(*this);
}

std::string case_name(const testing::TestParamInfo<fault_matrix::ParamType>& info) {
  return std::string(std::get<0>(info.param).name) +
         (std::get<1>(info.param) ? "_close_during" : "");
}

INSTANTIATE_TEST_SUITE_P(faults, fault_matrix,
                         testing::Combine(testing::ValuesIn(cases), testing::Bool()), case_name);

// ---- a real black hole: a route to nowhere inside a private network namespace ----
// Run by CTest as fault_matrix_netns: `unshare --net` with `lo` up and 10.99.0.0/24 routed
// to lo, where packets to addresses that are not local are dropped without an answer. Making
// 10.99.0.2 a local address heals it.

void netns_black_hole(fault_matrix& m) {
  if (std::getenv("DIAMPOOL_NETNS_BLACK_HOLE") == nullptr)
    GTEST_SKIP() << "runs inside its own network namespace (CTest: fault_matrix_netns)";
  const std::string address = "10.99.0.2:3868";
  auto& c = m.client();
  auto& l = m.start_load({.addresses = {address}, .deadline = 400ms});
  ASSERT_TRUE(l.wait_errors(32));
  EXPECT_EQ(c.stats().pool.connections_created, 0U);
  if (m.interrupt(connection_trouble())) return;
  ASSERT_EQ(std::system("ip addr add 10.99.0.2/32 dev lo"), 0);
  struct unheal {  // the next case needs the black hole again
    ~unheal() { EXPECT_EQ(std::system("ip addr del 10.99.0.2/32 dev lo"), 0); }
  } unheal;
  auto o = peer_options();
  o.listen = address;
  embedded_peer back(o);
  m.recovered(l, connection_trouble(), address);
}

const fault_case netns_cases[] = {{"black_hole_in_a_network_namespace", netns_black_hole}};
INSTANTIATE_TEST_SUITE_P(netns, fault_matrix,
                         testing::Combine(testing::ValuesIn(netns_cases), testing::Bool()),
                         case_name);

}  // namespace
}  // namespace diampool
