#include "diampool/pool_config.hpp"

#include <algorithm>

#include "diampool/error.hpp"

namespace diampool {

connection_config pool_config::connection() const {
  connection_config c;
  capabilities& l = c.peer.local;
  l.origin_host = origin_host;
  l.origin_realm = origin_realm;
  l.host_ip_addresses = host_ip_addresses;
  l.vendor_id = vendor_id;
  l.product_name = product_name;
  l.origin_state_id = origin_state_id;
  l.supported_vendor_ids = supported_vendor_ids;
  l.auth_application_ids = auth_app_ids;
  l.acct_application_ids = acct_app_ids;
  l.vendor_specific_application_ids = vendor_specific_app_ids;
  l.firmware_revision = firmware_revision;
  c.peer.cer_timeout = cer_timeout;
  c.peer.dwr_interval = dwr_interval;
  c.peer.dwr_jitter = dwr_jitter;
  c.peer.dwr_timeout = dwr_timeout;
  c.peer.max_dwr_failures = max_dwr_failures;
  c.peer.reopen_dwas = reopen_dwas;
  c.peer.dpa_timeout = dpa_timeout;
  c.peer.drain_timeout = drain_timeout;
  c.peer.disconnect_cause = disconnect_cause;
  c.peer.max_message_size = max_message_size;
  c.dial_timeout = dial_timeout;
  c.send_buffer_size = send_buffer_size;
  c.max_backlog = max_backlog;
  c.write_timeout = write_timeout;
  c.read_buffer_size = std::max<std::size_t>(recv_buffer_size, 4) * 1024;
  return c;
}

backoff_policy pool_config::backoff() const {
  return {reconnect_interval, reconnect_backoff, max_reconnect_delay, reconnect_jitter};
}

std::error_code pool_config::validate(std::string* field) const {
  auto bad = [&](const char* name) {
    if (field != nullptr) *field = name;
    return std::error_code(error::invalid_config);
  };
  using std::chrono::nanoseconds;
  const nanoseconds zero{0};
  if (origin_host.empty()) return bad("origin_host");
  if (origin_realm.empty()) return bad("origin_realm");
  if (product_name.empty()) return bad("product_name");
  if (dial_timeout <= zero) return bad("dial_timeout");
  if (send_timeout <= zero) return bad("send_timeout");
  if (cer_timeout <= zero) return bad("cer_timeout");
  if (dwr_interval <= zero) return bad("dwr_interval");
  if (dwr_timeout <= zero) return bad("dwr_timeout");
  if (max_dwr_failures == 0) return bad("max_dwr_failures");
  std::string inner;
  if (backoff().validate(&inner)) {
    if (inner == "initial") return bad("reconnect_interval");
    if (inner == "multiplier") return bad("reconnect_backoff");
    if (inner == "max") return bad("max_reconnect_delay");
    return bad("reconnect_jitter");
  }
  if (idle_timeout < zero) return bad("idle_timeout");
  if (max_conn_lifetime < zero) return bad("max_conn_lifetime");
  if (send_buffer_size == 0) return bad("send_buffer_size");
  if (recv_buffer_size == 0) return bad("recv_buffer_size");
  if (health_check_interval <= zero) return bad("health_check_interval");
  for (const auto& v : vendor_specific_app_ids) {
    if (v.vendor_id == 0 || (v.auth_application_id == 0) == (v.acct_application_id == 0)) {
      return bad("vendor_specific_app_ids");
    }
  }
  if (dwr_jitter < zero || dwr_jitter >= dwr_interval) return bad("dwr_jitter");
  if (dpa_timeout <= zero) return bad("dpa_timeout");
  if (drain_timeout < zero) return bad("drain_timeout");
  if (max_message_size < header_size || max_message_size > max_length_field) {
    return bad("max_message_size");
  }
  if (write_timeout <= zero) return bad("write_timeout");
  if (worker_threads == 0) return bad("worker_threads");
  // Anything the layers below check that the rules above missed, under their own field name.
  if (auto ec = connection().validate(&inner)) {
    if (field != nullptr) *field = inner;
    return ec;
  }
  if (field != nullptr) field->clear();
  return {};
}

}  // namespace diampool
