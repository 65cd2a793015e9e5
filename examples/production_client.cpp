// The AddressClient, production configuration: a 3GPP S13 client (ME-Identity-Check towards an
// EIR) with every pool setting spelled out, then the ways to send: asynchronously (a future,
// then callbacks) and synchronously with a deadline and a std::stop_token.
//
//   production_client [host:port]
//
// Without an address it starts an embedded peer on loopback that advertises S13. Exits 0 when
// every request got Result-Code 2001 and the stopped one was cancelled.
#include <diampool/address_client.hpp>
#include <diampool/diampool.hpp>
#include <diampool/embedded_peer.hpp>

#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <iostream>
#include <latch>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

using namespace diampool;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t s13 = 16777252;  // 3GPP TS 29.272, S13/S13' application

// An ME-Identity-Check-Request (ECR, command 324) for one IMEI.
std::vector<std::uint8_t> make_ecr(int n) {
  std::vector<std::uint8_t> out;
  message_header h{.flags = cmd_flags::request | cmd_flags::proxiable,
                   .command_code = 324,
                   .application_id = s13};
  message_builder b(out, h);
  b.add_string(avp_code::session_id, "dra-gateway.telco.com;s13;" + std::to_string(n))
      .add_integer32(avp_code::auth_session_state, 1)  // NO_STATE_MAINTAINED
      .add_string(avp_code::origin_host, "dra-gateway.telco.com")
      .add_string(avp_code::origin_realm, "telco.com")
      .add_string(avp_code::destination_realm, "telco.com");
  const auto terminal = b.begin_group(1401, avp_flags::mandatory, vendor::tgpp);  // Terminal-Info
  b.add_string(1402, "3563070" + std::to_string(10000000 + n), avp_flags::mandatory,
               vendor::tgpp);  // IMEI
  b.end_group(terminal);
  b.finish();
  return out;
}

bool is_success(std::error_code ec, const std::vector<std::uint8_t>& answer) {
  const message_view m = ec ? message_view{} : message_view::parse(answer, ec);
  const auto rc = ec ? std::nullopt : m.find(avp_code::result_code);
  return rc && rc->as_unsigned32(ec) == result_code::success && !ec;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<embedded_peer> eir;  // declared before the client: it outlives it
  std::string address = argc > 1 ? argv[1] : "";
  if (address.empty()) {
    embedded_peer_options options;
    options.origin_host = "eir.telco.com";
    options.origin_realm = "telco.com";
    options.vendor_id = vendor::tgpp;
    options.auth_application_ids = {s13};
    address = eir.emplace(options).address();
  }

  pool_config config;  // [PoolConfig] every field of the seed, with production values
  // Identity
  config.origin_host = "dra-gateway.telco.com";
  config.origin_realm = "telco.com";
  config.product_name = "Telco-DRA-Gateway";
  config.vendor_id = vendor::tgpp;  // 10415
  // Timeouts
  config.dial_timeout = 10s;
  config.send_timeout = 5s;
  config.cer_timeout = 5s;
  config.dwr_interval = 30s;
  config.dwr_timeout = 10s;
  config.max_dwr_failures = 3;
  // Reconnection with exponential backoff
  config.reconnect_enabled = true;
  config.reconnect_interval = 5s;
  config.max_reconnect_delay = 5min;
  config.reconnect_backoff = 2.0;  // double the delay on each retry
  // Connection lifecycle
  config.idle_timeout = 30min;     // close after 30 min idle
  config.max_conn_lifetime = 24h;  // refresh daily
  // Application ids (S13)
  config.auth_app_ids = {s13};
  // Performance tuning
  config.send_buffer_size = 500;
  config.recv_buffer_size = 500;
  // Health monitoring
  config.health_check_interval = 1min;

  spdlog_logger_options log_options;  // structured logs, one JSON object per line
  log_options.name = "dra-gateway";
  log_options.format = log_format::json;
  address_client client(config, make_spdlog_logger(log_options));
  bool ok = true;

  // 1. Asynchronous, with a future (the first request also establishes the connection).
  std::future<std::vector<std::uint8_t>> future =
      client.async_send(address, make_ecr(0), asio::use_future);
  try {
    ok = is_success({}, future.get()) && ok;
  } catch (const std::system_error& e) {
    std::cout << "async_send failed: " << e.code().message() << '\n';
    ok = false;
  }

  // 2. Asynchronous, with callbacks (they run on the client's threads and must not block).
  constexpr int batch = 10;
  std::atomic<int> succeeded{0};
  std::latch done(batch);
  for (int n = 1; n <= batch; ++n) {
    client.async_send(address, make_ecr(n), [&](std::error_code ec, std::vector<std::uint8_t> a) {
      if (is_success(ec, a)) ++succeeded;
      done.count_down();
    });
  }
  done.wait();
  ok = succeeded == batch && ok;

  // 3. [SendWithContext] Synchronous, with a deadline and a stop token (request_stop() cancels).
  std::stop_source stop;
  std::error_code ec;
  auto answer = client.send(address, make_ecr(11), std::chrono::steady_clock::now() + 2s, ec,
                            stop.get_token());
  ok = is_success(ec, answer) && ok;
  stop.request_stop();  // a stopped token: this request is cancelled before it is sent
  answer = client.send(address, make_ecr(12), std::chrono::steady_clock::now() + 2s, ec,
                       stop.get_token());
  ok = ec == condition::cancelled && ok;
  std::cout << "stopped request: " << ec.message() << '\n';

  // Monitoring: the client's counters, and what the pool knows of the address.
  const client_stats s = client.stats();  // [GetStats]
  std::cout << "requests " << s.total_requests << ", responses " << s.total_responses << ", errors "
            << s.total_errors << " (timeouts " << s.total_timeouts << ", cancelled "
            << s.total_cancelled << ")\n"
            << "pool: " << s.pool.active_connections << " active, " << s.pool.connections_created
            << " created, " << s.pool.failed_establishments << " failed establishments, "
            << s.pool.messages_sent << " messages sent (base protocol included)\n";
  if (const auto info = client.connection(address)) {  // [GetConnection]
    std::cout << address << ": " << to_string(info->state) << ", peer "
              << (info->peer.origin_host.empty() ? "-" : info->peer.origin_host) << ", "
              << info->stats.messages_sent << " messages sent, last error: "
              << (info->last_error ? info->last_error.message() : "none") << '\n';
  }
  client.close();  // DPR (REBOOTING), wait for the DPA, release every thread
  std::cout << (ok ? "OK" : "FAILED") << '\n';
  return ok ? 0 : 1;
}
