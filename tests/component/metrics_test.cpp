// The CLI's Prometheus endpoint (apps/diampool/metrics.cpp): scraped over HTTP on loopback
// and parsed line by line.
#include "metrics.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>

#include "diampool/address_client.hpp"
#include "diampool/builder.hpp"
#include "diampool/embedded_peer.hpp"

namespace diampool::cli {
namespace {

using namespace std::chrono_literals;

// GET /metrics from "127.0.0.1:port"; the body.
std::string scrape(const std::string& address) {
  const auto colon = address.rfind(':');
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return {};
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto body = out.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : out.substr(body + 4);
}

// "name{labels}" -> value, for every sample line.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

std::vector<std::uint8_t> request() {
  message_header h;
  h.flags = cmd_flags::request;
  h.command_code = 272;
  h.application_id = 4;
  std::vector<std::uint8_t> out;
  message_builder b(out, h);
  b.add_string(avp_code::session_id, "m;1")
      .add_string(avp_code::origin_host, "client.example.com")
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, "example.net");
  b.finish();
  return out;
}

TEST(metrics_server, exposes_client_pool_address_and_peer_counters) {
  embedded_peer_options po;
  po.auth_application_ids = {4};
  embedded_peer peer(po);
  pool_config c = pool_config::defaults();
  c.origin_host = "client.example.com";
  c.origin_realm = "example.com";
  c.auth_app_ids = {4};
  address_client client(c, null_logger());
  metrics_server server("127.0.0.1:0");
  server.add(client);
  server.add(peer);
  std::error_code ec;
  for (int i = 0; i < 3; ++i)
    client.send(peer.address(), request(), ec);
  ASSERT_FALSE(ec);

  const std::string text = scrape(server.address());
  ASSERT_FALSE(text.empty()) << "no answer from " << server.address();
  EXPECT_NE(text.find("# TYPE diampool_requests_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE diampool_request_duration_seconds histogram"), std::string::npos);
  const auto s = samples(text);
  const std::string a = "{address=\"" + peer.address() + "\"}";
  EXPECT_EQ(s.at("diampool_requests_total"), 3);
  EXPECT_EQ(s.at("diampool_responses_total"), 3);
  EXPECT_EQ(s.at("diampool_connections_created_total"), 1);
  EXPECT_EQ(s.at("diampool_active_connections"), 1);
  EXPECT_EQ(s.at("diampool_connection_up" + a), 1);
  EXPECT_EQ(s.at("diampool_connection_state{address=\"" + peer.address() + "\",state=\"OPEN\"}"),
            1);
  EXPECT_EQ(s.at("diampool_request_duration_seconds_count" + a), 3);
  // One at a time: the CER and each request in a write of its own, the CEA and each answer in
  // a read of its own.
  EXPECT_EQ(s.at("diampool_connection_socket_writes_total" + a), 4);
  EXPECT_EQ(s.at("diampool_connection_socket_reads_total" + a), 4);
  EXPECT_EQ(s.at("diampool_request_duration_seconds_bucket{address=\"" + peer.address() +
                 "\",le=\"+Inf\"}"),
            3);
  // Cumulative buckets never decrease.
  std::vector<double> all_buckets;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("diampool_request_duration_seconds_bucket{address=\"all\"", 0) == 0) {
      all_buckets.push_back(std::stod(line.substr(line.rfind(' ') + 1)));
    }
  }
  ASSERT_EQ(all_buckets.size(), 18U);
  for (std::size_t i = 1; i < all_buckets.size(); ++i) {
    EXPECT_LE(all_buckets[i - 1], all_buckets[i]);
  }
  EXPECT_EQ(all_buckets.back(), 3);
  EXPECT_EQ(s.at("diampool_peer_requests_total"), 3);
  EXPECT_EQ(s.at("diampool_peer_cers_total"), 1);
  EXPECT_EQ(s.at("diampool_messages_sent_total"), s.at("diampool_peer_messages_received_total"));
  client.close();
}

TEST(metrics_server, a_bad_listen_address_is_a_clear_error) {
  EXPECT_THROW(metrics_server("nonsense"), std::runtime_error);
}

}  // namespace
}  // namespace diampool::cli
