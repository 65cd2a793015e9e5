// The AddressClient, basic usage: one client, requests to two addresses. The first request to
// an address creates its connection (TCP, then CER/CEA), the next request to it reuses that
// connection, and a request to another address creates a second connection.
//
//   basic_client [host:port host:port]
//
// Without addresses it starts two embedded peers on loopback and talks to those. Exits 0 when
// every answer carries Result-Code 2001 and exactly two connections were made.
#include <diampool/address_client.hpp>
#include <diampool/diampool.hpp>
#include <diampool/embedded_peer.hpp>

#include <deque>
#include <iostream>
#include <string>
#include <vector>

using namespace diampool;

namespace {

// A Credit-Control-Request (RFC 4006, application 4): any request would do.
std::vector<std::uint8_t> make_ccr(int n) {
  std::vector<std::uint8_t> out;
  message_header h{.flags = cmd_flags::request | cmd_flags::proxiable,
                   .command_code = 272,
                   .application_id = application::credit_control};
  message_builder b(out, h);
  b.add_string(avp_code::session_id, "client.example.com;basic;" + std::to_string(n))
      .add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, "example.net")
      .add_unsigned32(avp_code::auth_application_id, application::credit_control)
      .add_integer32(416, 4)    // CC-Request-Type: EVENT_REQUEST
      .add_unsigned32(415, 0);  // CC-Request-Number
  b.finish();
  return out;
}

// The answer's Result-Code, 0 if it has none.
std::uint32_t result_code_of(const std::vector<std::uint8_t>& answer) {
  std::error_code ec;
  const message_view m = message_view::parse(answer, ec);
  const auto rc = ec ? std::nullopt : m.find(avp_code::result_code);
  return rc ? rc->as_unsigned32(ec) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> addresses(argv + 1, argv + argc);
  std::deque<embedded_peer> peers;  // declared before the client: they outlive it
  if (addresses.empty()) {
    embedded_peer_options options;
    options.auth_application_ids = {application::credit_control};
    for (int i = 0; i < 2; ++i)
      addresses.push_back(peers.emplace_back(options).address());
  }
  if (addresses.size() != 2) {
    std::cerr << "usage: " << argv[0] << " [host:port host:port]\n";
    return 2;
  }

  pool_config config = pool_config::defaults();  // [DefaultPoolConfig]
  config.origin_host = "client.example.com";
  config.origin_realm = "example.com";
  config.auth_app_ids = {application::credit_control};  // advertised in the CER
  address_client client(config);  // [NewAddressClient] logs to stderr, level info

  bool ok = true;
  auto send = [&](const std::string& address, int n, const char* what) {
    std::error_code ec;
    const std::vector<std::uint8_t> answer = client.send(address, make_ccr(n), ec);  // [Send]
    if (ec) {
      std::cout << "request " << n << " to " << address << " failed: " << ec.message() << '\n';
      ok = false;
      return;
    }
    const std::uint32_t rc = result_code_of(answer);
    ok = ok && rc == result_code::success;
    const client_stats s = client.stats();  // [GetStats]
    std::cout << "request " << n << " to " << address << " (" << what << "): Result-Code " << rc
              << "; active connections " << s.pool.active_connections << ", created "
              << s.pool.connections_created << '\n';
  };
  send(addresses[0], 1, "connection created");
  send(addresses[0], 2, "connection reused");
  send(addresses[1], 3, "another address: new connection");

  for (const std::string& a : client.list_connections())
    std::cout << "connected to " << a << '\n';
  const client_stats s = client.stats();
  ok = ok && s.pool.connections_created == 2;
  client.close();  // [Close] DPR/DPA on each connection
  std::cout << (ok ? "OK" : "FAILED") << ": " << s.total_requests << " requests, "
            << s.total_responses << " answers, " << s.total_errors << " errors, "
            << s.pool.connections_created << " connections created\n";
  return ok ? 0 : 1;
}
