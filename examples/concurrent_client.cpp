// The AddressClient, concurrent sends: threads send to several addresses at once through one
// client. However many threads race for a new address, the pool makes exactly one connection
// to it: the first request establishes it and the others wait for that establishment.
//
//   concurrent_client [-t threads-per-address] [-n sends-per-thread] [host:port ...]
//
// Defaults: 1 thread per address, 100 sends each. Without addresses it starts three embedded
// peers on loopback. Exits 1 unless every request got a 2001 answer and each address got
// exactly one connection.
#include <diampool/address_client.hpp>
#include <diampool/diampool.hpp>
#include <diampool/embedded_peer.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <latch>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace diampool;

namespace {

std::vector<std::uint8_t> make_ccr(const std::string& session) {
  std::vector<std::uint8_t> out;
  message_header h{.flags = cmd_flags::request | cmd_flags::proxiable,
                   .command_code = 272,  // Credit-Control (RFC 4006)
                   .application_id = application::credit_control};
  message_builder b(out, h);
  b.add_string(avp_code::session_id, session)
      .add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, "example.net")
      .add_unsigned32(avp_code::auth_application_id, application::credit_control)
      .add_integer32(416, 4)    // CC-Request-Type: EVENT_REQUEST
      .add_unsigned32(415, 0);  // CC-Request-Number
  b.finish();
  return out;
}

bool is_success(const std::vector<std::uint8_t>& answer) {
  std::error_code ec;
  const message_view m = message_view::parse(answer, ec);
  const auto rc = ec ? std::nullopt : m.find(avp_code::result_code);
  return rc && rc->as_unsigned32(ec) == result_code::success && !ec;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = 1;
  unsigned sends = 100;
  std::vector<std::string> addresses;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-t" && i + 1 < argc) {
      threads = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else if (arg == "-n" && i + 1 < argc) {
      sends = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else {
      addresses.emplace_back(arg);
    }
  }
  if (threads == 0 || sends == 0) {
    std::cerr << "usage: " << argv[0]
              << " [-t threads-per-address] [-n sends-per-thread] [host:port ...]\n";
    return 2;
  }
  std::deque<embedded_peer> peers;  // declared before the client: they outlive it
  if (addresses.empty()) {
    embedded_peer_options options;
    options.auth_application_ids = {application::credit_control};
    for (int i = 0; i < 3; ++i)
      addresses.push_back(peers.emplace_back(options).address());
  }

  pool_config config = pool_config::defaults();
  config.origin_host = "client.example.com";
  config.origin_realm = "example.com";
  config.auth_app_ids = {application::credit_control};
  spdlog_logger_options log_options;
  log_options.level = log_level::warn;  // quiet: connection problems only
  address_client client(config, make_spdlog_logger(log_options));

  const auto start = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> answered_2001{0};
  std::latch go(static_cast<std::ptrdiff_t>(addresses.size() * threads));
  {
    std::vector<std::jthread> workers;
    for (const std::string& address : addresses) {
      for (unsigned t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
          go.arrive_and_wait();  // all threads hit the new addresses at the same moment
          for (unsigned i = 0; i < sends; ++i) {
            std::error_code ec;
            const auto session =
                "client.example.com;" + std::to_string(t) + ";" + std::to_string(i);
            const auto answer = client.send(address, make_ccr(session), ec);
            if (!ec && is_success(answer)) answered_2001.fetch_add(1);
          }
        });
      }
    }
  }  // joins the workers
  const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);

  const client_stats s = client.stats();
  const std::uint64_t expected = std::uint64_t{addresses.size()} * threads * sends;
  bool one_per_address = s.pool.connections_created == addresses.size();
  for (const embedded_peer& p : peers) {  // the servers' view, when they are ours
    one_per_address = one_per_address && p.stats().connections_accepted == 1;
  }
  const bool all_answered = s.total_responses == expected && answered_2001 == expected;
  client.close();

  std::cout << addresses.size() << " addresses x " << threads << " threads x " << sends
            << " sends in " << elapsed.count() << " s\n"
            << "requests " << s.total_requests << ", responses " << s.total_responses
            << " (2001: " << answered_2001 << "), errors " << s.total_errors << ", timeouts "
            << s.total_timeouts << '\n'
            << "connections created " << s.pool.connections_created << " for " << addresses.size()
            << " addresses\n"
            << (one_per_address && all_answered ? "OK: one connection per address, all answered"
                                                : "FAILED")
            << '\n';
  return one_per_address && all_answered ? 0 : 1;
}
