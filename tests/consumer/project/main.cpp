// Uses the installed diampool as an application would: builds a DWR and decodes it back,
// then sends a request through an address_client to an embedded_peer on loopback.
#include <diampool/diampool.hpp>
#include <diampool/embedded_peer.hpp>

#include <cstdio>

int main() {
  std::vector<std::uint8_t> out;
  diampool::message_header h;
  h.flags = diampool::cmd_flags::request;
  h.command_code = diampool::command::device_watchdog;
  h.hop_by_hop = 42;
  diampool::message_builder b(out, h);
  b.add_string(diampool::avp_code::origin_host, "consumer.example.com")
      .add_string(diampool::avp_code::origin_realm, "example.com");
  const auto bytes = b.finish();

  diampool::frame_decoder decoder;
  std::error_code ec;
  const auto r = decoder.put(bytes, ec);
  if (r.status != diampool::decode_status::message || decoder.message().header().hop_by_hop != 42) {
    std::puts("round trip failed");
    return 1;
  }
  std::fputs(diampool::to_text(decoder.message()).c_str(), stdout);

  // A request and its answer through the pool.
  diampool::embedded_peer_options po;
  po.auth_application_ids = {4};
  diampool::embedded_peer peer(po);
  auto config = diampool::pool_config::defaults();
  config.origin_host = "consumer.example.com";
  config.origin_realm = "example.com";
  config.auth_app_ids = {4};
  diampool::address_client client(config, diampool::null_logger());
  std::vector<std::uint8_t> request;
  diampool::message_header rh;
  rh.flags = diampool::cmd_flags::request;
  rh.command_code = 272;
  rh.application_id = 4;
  rh.hop_by_hop = 7;
  diampool::message_builder rb(request, rh);
  rb.add_string(diampool::avp_code::session_id, "consumer.example.com;1;1")
      .add_string(diampool::avp_code::origin_host, "consumer.example.com")
      .add_string(diampool::avp_code::origin_realm, "example.com")
      .add_string(diampool::avp_code::destination_realm, "example.net");
  rb.finish();
  const auto answer = client.send(peer.address(), request, ec);
  if (ec || answer.size() < 20) {
    std::printf("send failed: %s\n", ec.message().c_str());
    return 1;
  }
  std::printf("answer of %zu bytes from %s\n", answer.size(), peer.address().c_str());
  return 0;
}
