// diampool: the configuration of an AddressClient pool (the seed's PoolConfig).
//
// Every field of the seed's PoolConfig is here under a snake_case name, with the seed's
// default; fields diampool adds are marked "(diampool)". validate() names the first bad field.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "diampool/backoff.hpp"
#include "diampool/codes.hpp"
#include "diampool/connection.hpp"
#include "diampool/message.hpp"
#include "diampool/peer_machine.hpp"

namespace diampool {

struct pool_config {
  // ---- Diameter identity ----
  std::string origin_host;                ///< [OriginHost] required, e.g. "gateway.example.com"
  std::string origin_realm;               ///< [OriginRealm] required, e.g. "example.com"
  std::string product_name = "diampool";  ///< [ProductName] in CER
  std::uint32_t vendor_id = 0;            ///< [VendorID] in CER, e.g. 10415 for 3GPP

  // ---- timeouts ----
  std::chrono::nanoseconds dial_timeout = std::chrono::seconds(10);  ///< [DialTimeout]
  std::chrono::nanoseconds send_timeout =
      std::chrono::seconds(5);  ///< [SendTimeout] default deadline of send()
  std::chrono::nanoseconds cer_timeout = std::chrono::seconds(5);    ///< [CERTimeout]
  std::chrono::nanoseconds dwr_interval = std::chrono::seconds(30);  ///< [DWRInterval] Tw
  std::chrono::nanoseconds dwr_timeout = std::chrono::seconds(10);   ///< [DWRTimeout]
  unsigned max_dwr_failures = 3;                                     ///< [MaxDWRFailures]

  // ---- reconnection ----
  bool reconnect_enabled = true;                                           ///< [ReconnectEnabled]
  std::chrono::nanoseconds reconnect_interval = std::chrono::seconds(5);   ///< [ReconnectInterval]
  std::chrono::nanoseconds max_reconnect_delay = std::chrono::minutes(5);  ///< [MaxReconnectDelay]
  double reconnect_backoff = 1.5;                                          ///< [ReconnectBackoff]
  double reconnect_jitter = 0.2;  ///< (diampool) each delay within +-20 % of its value

  // ---- applications ----
  std::vector<std::uint32_t> auth_app_ids;  ///< [AuthAppIDs] Auth-Application-Id in CER
  std::vector<std::uint32_t> acct_app_ids;  ///< [AcctAppIDs] Acct-Application-Id in CER
  /// (diampool) Vendor-Specific-Application-Id in CER (3GPP applications).
  std::vector<vendor_application> vendor_specific_app_ids;
  std::vector<std::uint32_t> supported_vendor_ids;  ///< (diampool) Supported-Vendor-Id in CER

  // ---- connection lifecycle ----
  std::chrono::nanoseconds idle_timeout{0};       ///< [IdleTimeout] 0 = never
  std::chrono::nanoseconds max_conn_lifetime{0};  ///< [MaxConnLifetime] 0 = unlimited

  // ---- buffers ----
  /// [SendBufferSize] requests per connection accepted but not yet written.
  std::size_t send_buffer_size = 100;
  /// [RecvBufferSize] answers are handed to their callers as they arrive, so there is no
  /// receive queue to size: this caps a connection's read buffer at recv_buffer_size KiB (at
  /// least 4). The buffer starts at 1 KiB, doubles after each read that fills it, and goes
  /// back to 1 KiB when nothing is pending.
  std::size_t recv_buffer_size = 100;

  // ---- health check ----
  std::chrono::nanoseconds health_check_interval =
      std::chrono::seconds(30);  ///< [HealthCheckInterval]

  // ---- diampool additions ----
  std::optional<std::uint32_t> origin_state_id;    ///< Origin-State-Id in CER/DWR
  std::optional<std::uint32_t> firmware_revision;  ///< Firmware-Revision in CER
  std::vector<ip_address> host_ip_addresses;       ///< empty: the socket's local address
  std::chrono::nanoseconds dwr_jitter = std::chrono::seconds(2);  ///< Tw +- this
  unsigned reopen_dwas = 3;  ///< RFC 3539 REOPEN: DWAs needed after a reconnection
  std::chrono::nanoseconds dpa_timeout = std::chrono::seconds(2);
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(2);
  std::int32_t disconnect_cause = disconnect_cause::rebooting;  ///< of the DPR on close
  std::size_t max_message_size = default_max_message_size;
  std::size_t max_backlog = 10000;  ///< requests waiting for room in a connection's send queue
  std::chrono::nanoseconds write_timeout = std::chrono::seconds(10);
  unsigned worker_threads = 2;  ///< I/O threads of the pool's own io_context
  /// Requests from a peer other than DWR and DPR (e.g. a server-initiated RAR): returns the
  /// answer to write (same Hop-by-Hop and End-to-End ids). Called on an I/O thread with the
  /// address the request came from; must not block. Not set: answered with 3001
  /// (DIAMETER_COMMAND_UNSUPPORTED).
  std::function<std::vector<std::uint8_t>(std::string_view address, const message_view& request)>
      request_handler;

  /// The seed's DefaultPoolConfig(): every default above; origin_host and origin_realm are
  /// still to be set.
  static pool_config defaults() { return {}; }

  /// invalid_config naming the first bad field (the field names above) in `field`.
  std::error_code validate(std::string* field = nullptr) const;

  /// The settings of each connection of the pool.
  connection_config connection() const;
  /// The reconnection schedule of each address.
  backoff_policy backoff() const;
};

}  // namespace diampool
