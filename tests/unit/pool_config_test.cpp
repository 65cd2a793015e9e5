#include "diampool/pool_config.hpp"

#include <gtest/gtest.h>

#include <functional>

#include "diampool/error.hpp"

namespace diampool {
namespace {

using namespace std::chrono_literals;

pool_config valid() {
  pool_config c = pool_config::defaults();
  c.origin_host = "client.example.com";
  c.origin_realm = "example.com";
  return c;
}

TEST(pool_config, defaults_are_the_seeds) {
  const pool_config c = pool_config::defaults();
  EXPECT_EQ(c.dial_timeout, 10s);
  EXPECT_EQ(c.send_timeout, 5s);
  EXPECT_EQ(c.cer_timeout, 5s);
  EXPECT_EQ(c.dwr_interval, 30s);
  EXPECT_EQ(c.dwr_timeout, 10s);
  EXPECT_EQ(c.max_dwr_failures, 3U);
  EXPECT_TRUE(c.reconnect_enabled);
  EXPECT_EQ(c.reconnect_interval, 5s);
  EXPECT_EQ(c.max_reconnect_delay, 5min);
  EXPECT_DOUBLE_EQ(c.reconnect_backoff, 1.5);
  EXPECT_EQ(c.idle_timeout, 0s);
  EXPECT_EQ(c.max_conn_lifetime, 0s);
  EXPECT_EQ(c.send_buffer_size, 100U);
  EXPECT_EQ(c.recv_buffer_size, 100U);
  EXPECT_EQ(c.health_check_interval, 30s);
  EXPECT_TRUE(c.origin_host.empty());  // required: the defaults alone do not validate
  std::string field;
  EXPECT_EQ(c.validate(&field), error::invalid_config);
  EXPECT_EQ(field, "origin_host");
  EXPECT_FALSE(valid().validate(&field));
  EXPECT_TRUE(field.empty());
}

TEST(pool_config, validate_names_the_bad_field) {
  const std::pair<std::function<void(pool_config&)>, const char*> cases[] = {
      {[](pool_config& c) { c.origin_realm.clear(); }, "origin_realm"},
      {[](pool_config& c) { c.product_name.clear(); }, "product_name"},
      {[](pool_config& c) { c.dial_timeout = 0s; }, "dial_timeout"},
      {[](pool_config& c) { c.send_timeout = -1s; }, "send_timeout"},
      {[](pool_config& c) { c.cer_timeout = 0s; }, "cer_timeout"},
      {[](pool_config& c) { c.dwr_interval = 0s; }, "dwr_interval"},
      {[](pool_config& c) { c.dwr_timeout = 0s; }, "dwr_timeout"},
      {[](pool_config& c) { c.max_dwr_failures = 0; }, "max_dwr_failures"},
      {[](pool_config& c) { c.reconnect_interval = 0s; }, "reconnect_interval"},
      {[](pool_config& c) { c.reconnect_backoff = 0.9; }, "reconnect_backoff"},
      {[](pool_config& c) { c.max_reconnect_delay = 1s; }, "max_reconnect_delay"},
      {[](pool_config& c) { c.reconnect_jitter = 1.5; }, "reconnect_jitter"},
      {[](pool_config& c) { c.idle_timeout = -1s; }, "idle_timeout"},
      {[](pool_config& c) { c.max_conn_lifetime = -1s; }, "max_conn_lifetime"},
      {[](pool_config& c) { c.send_buffer_size = 0; }, "send_buffer_size"},
      {[](pool_config& c) { c.recv_buffer_size = 0; }, "recv_buffer_size"},
      {[](pool_config& c) { c.health_check_interval = 0s; }, "health_check_interval"},
      {[](pool_config& c) {
         c.vendor_specific_app_ids = {{10415, 0, 0}};
       },
       "vendor_specific_app_ids"},
      {[](pool_config& c) { c.dwr_jitter = 30s; }, "dwr_jitter"},
      {[](pool_config& c) { c.dpa_timeout = 0s; }, "dpa_timeout"},
      {[](pool_config& c) { c.drain_timeout = -1s; }, "drain_timeout"},
      {[](pool_config& c) { c.max_message_size = 19; }, "max_message_size"},
      {[](pool_config& c) { c.write_timeout = 0s; }, "write_timeout"},
      {[](pool_config& c) { c.worker_threads = 0; }, "worker_threads"},
  };
  for (const auto& [mutate, name] : cases) {
    pool_config c = valid();
    mutate(c);
    std::string field;
    EXPECT_EQ(c.validate(&field), error::invalid_config) << name;
    EXPECT_EQ(field, name);
  }
}

TEST(pool_config, maps_onto_each_connection_and_the_backoff) {
  pool_config p = valid();
  p.product_name = "Telco-DRA-Gateway";
  p.vendor_id = 10415;
  p.auth_app_ids = {16777252};
  p.acct_app_ids = {3};
  p.vendor_specific_app_ids = {{10415, 16777251, 0}};
  p.supported_vendor_ids = {10415};
  p.origin_state_id = 9;
  p.firmware_revision = 2;
  p.host_ip_addresses = {ip_address::v4({192, 0, 2, 1})};
  p.dial_timeout = 1s;
  p.cer_timeout = 2s;
  p.dwr_interval = 20s;
  p.dwr_jitter = 1s;
  p.dwr_timeout = 3s;
  p.max_dwr_failures = 4;
  p.reopen_dwas = 2;
  p.dpa_timeout = 4s;
  p.drain_timeout = 5s;
  p.disconnect_cause = disconnect_cause::busy;
  p.max_message_size = 100000;
  p.send_buffer_size = 500;
  p.recv_buffer_size = 500;
  p.max_backlog = 7;
  p.write_timeout = 6s;
  const connection_config c = p.connection();
  EXPECT_FALSE(c.validate());
  const capabilities& l = c.peer.local;
  EXPECT_EQ(l.origin_host, "client.example.com");
  EXPECT_EQ(l.origin_realm, "example.com");
  EXPECT_EQ(l.product_name, "Telco-DRA-Gateway");
  EXPECT_EQ(l.vendor_id, 10415U);
  EXPECT_EQ(l.auth_application_ids, std::vector<std::uint32_t>{16777252});
  EXPECT_EQ(l.acct_application_ids, std::vector<std::uint32_t>{3});
  EXPECT_EQ(l.vendor_specific_application_ids, p.vendor_specific_app_ids);
  EXPECT_EQ(l.supported_vendor_ids, std::vector<std::uint32_t>{10415});
  EXPECT_EQ(l.origin_state_id, 9U);
  EXPECT_EQ(l.firmware_revision, 2U);
  EXPECT_EQ(l.host_ip_addresses, p.host_ip_addresses);
  EXPECT_EQ(c.dial_timeout, 1s);
  EXPECT_EQ(c.peer.cer_timeout, 2s);
  EXPECT_EQ(c.peer.dwr_interval, 20s);
  EXPECT_EQ(c.peer.dwr_jitter, 1s);
  EXPECT_EQ(c.peer.dwr_timeout, 3s);
  EXPECT_EQ(c.peer.max_dwr_failures, 4U);
  EXPECT_EQ(c.peer.reopen_dwas, 2U);
  EXPECT_EQ(c.peer.dpa_timeout, 4s);
  EXPECT_EQ(c.peer.drain_timeout, 5s);
  EXPECT_EQ(c.peer.disconnect_cause, disconnect_cause::busy);
  EXPECT_EQ(c.peer.max_message_size, 100000U);
  EXPECT_EQ(c.send_buffer_size, 500U);
  EXPECT_EQ(c.read_buffer_size, 500U * 1024);
  EXPECT_EQ(c.max_backlog, 7U);
  EXPECT_EQ(c.write_timeout, 6s);
  const backoff_policy b = p.backoff();
  EXPECT_EQ(b.initial, 5s);
  EXPECT_EQ(b.max, 5min);
  EXPECT_DOUBLE_EQ(b.multiplier, 1.5);
  EXPECT_DOUBLE_EQ(b.jitter, 0.2);
}

}  // namespace
}  // namespace diampool
