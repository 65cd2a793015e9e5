// The README's first snippet: an address_client sending one request to an embedded peer on
// loopback. Compiled and run by the tests; tests/component/readme_check.sh checks that the
// README shows exactly the lines between the markers.
#include <cstdio>

#include <diampool/embedded_peer.hpp>

// clang-format off

// README-BEGIN
#include <diampool/diampool.hpp>
using namespace diampool;
using namespace std::chrono_literals;

// README-END
int main() {
  embedded_peer peer;  // a Diameter server on 127.0.0.1, for the example
  // README-BEGIN
auto config = pool_config::defaults();                   // the seed's defaults
config.origin_host = "client.example.com";
config.origin_realm = "example.com";
config.auth_app_ids = {4};                               // Credit-Control, in the CER
address_client client(config);                           // its own I/O threads

std::vector<std::uint8_t> ccr;                           // any encoded request
message_builder b(ccr, {.flags = cmd_flags::request, .command_code = 272, .application_id = 4});
b.add_string(avp_code::session_id, "client.example.com;1;1")
 .add_string(avp_code::origin_host, config.origin_host)
 .add_string(avp_code::origin_realm, config.origin_realm)
 .add_string(avp_code::destination_realm, "example.net");
b.finish();

std::error_code ec;                                      // first send: dial, CER/CEA
auto answer = client.send(peer.address(), ccr, 2s, ec);  // then one connection, reused
if (!ec) std::fputs(to_text(message_view::parse(answer, ec)).c_str(), stdout);
else if (ec == condition::timeout) std::puts("no answer within 2 s");
  // README-END
  return ec ? 1 : 0;
}
