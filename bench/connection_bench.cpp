// End-to-end throughput of one diampool::connection against the embedded peer on loopback:
// W requests in flight (async, callbacks), for a fixed count. Prints answers/s and the client
// process's CPU time per answer (the peer runs in this process too when started here, so the
// CPU figure includes both unless --to points at a peer in another process). With --pool, the
// same load goes through an address_client (one address, so one connection) instead: the
// pool's own cost is the difference between the two.
//   connection_bench [--inflight W] [--requests N] [--to host:port] [--pool 1]
#include <sys/resource.h>

#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <diampool/diampool.hpp>
#include <diampool/embedded_peer.hpp>
#include <future>
#include <optional>
#include <string>
#include <thread>

namespace {

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace diampool;
  using namespace std::chrono_literals;
  std::size_t inflight = 256;
  std::size_t total = 200000;
  std::string to;
  bool use_pool = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--pool") == 0) use_pool = std::strcmp(argv[i + 1], "0") != 0;
    if (std::strcmp(argv[i], "--inflight") == 0) inflight = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--requests") == 0) total = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--to") == 0) to = argv[i + 1];
  }
  std::optional<embedded_peer> peer;
  if (to.empty()) {
    peer.emplace();
    to = peer->address();
  }
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  connection_config cfg;
  cfg.peer.local.origin_host = "bench.example.com";
  cfg.peer.local.origin_realm = "example.com";
  cfg.send_buffer_size = inflight * 2;
  std::shared_ptr<connection> conn;
  std::optional<address_client> client;
  if (use_pool) {
    pool_config pc = pool_config::defaults();
    pc.origin_host = cfg.peer.local.origin_host;
    pc.origin_realm = cfg.peer.local.origin_realm;
    pc.send_buffer_size = cfg.send_buffer_size;
    pc.worker_threads = 1;  // as the connection's single io thread
    client.emplace(pc, null_logger(), io.get_executor());
  } else {
    conn = connection::create(io.get_executor(), cfg);
    if (auto ec = conn->connect(to, std::chrono::steady_clock::now() + 5s)) {
      std::fprintf(stderr, "connect %s: %s\n", to.c_str(), ec.message().c_str());
      return 1;
    }
  }

  // A ~200-byte application request.
  std::vector<std::uint8_t> request;
  message_header h;
  h.flags = cmd_flags::request | cmd_flags::proxiable;
  h.command_code = 272;
  h.application_id = 4;
  message_builder b(request, h);
  b.add_string(avp_code::session_id, "bench.example.com;1234567890;1;bench")
      .add_string(avp_code::origin_host, "bench.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, "example.net")
      .add_unsigned32(avp_code::auth_application_id, 4)
      .add_unsigned32(416, 1)
      .add_unsigned32(415, 0)
      .add_string(avp_code::user_name, "user@example.com")
      .add_unsigned32(avp_code::origin_state_id, 1)
      .add_string(avp_code::destination_host, "peer.example.net");
  b.finish();

  std::atomic<std::size_t> issued{0};
  std::atomic<std::size_t> answered{0};
  std::atomic<std::size_t> failed{0};
  std::promise<void> done;
  std::function<void()> issue_one;
  auto on_answer = [&](std::error_code ec, std::vector<std::uint8_t>) {
    (ec ? failed : answered).fetch_add(1);
    if (answered + failed == total) done.set_value();
    issue_one();
  };
  issue_one = [&] {
    if (issued.fetch_add(1) >= total) return;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    if (client) {
      client->async_send(to, request, deadline, on_answer);
    } else {
      conn->async_send(request, deadline, on_answer);
    }
  };
  if (client) {  // establish first, outside the measurement
    std::error_code ec;
    client->send(to, request, ec);
    if (ec) {
      std::fprintf(stderr, "connect %s: %s\n", to.c_str(), ec.message().c_str());
      return 1;
    }
  }
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < inflight; ++i)
    issue_one();
  done.get_future().wait();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf(
      "%s: %zu requests, %zu in flight, %zu answered, %zu failed, %.3f s, "
      "%.0f answers/s, %.2f us CPU per answer (%s)\n",
      client ? "address_client" : "connection", total, inflight, answered.load(), failed.load(),
      secs, static_cast<double>(answered) / secs, cpu * 1e6 / static_cast<double>(total),
      peer ? "peer in this process" : "client only");
  if (client) {
    client->close();
    client.reset();
  } else {
    conn->close();
    conn.reset();
  }
  work.reset();
  runner.join();
  return failed == 0 ? 0 : 1;
}
