#include "diampool/error.hpp"

namespace diampool {
namespace {

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "diampool"; }

  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      // clang-format off
      case error::bad_version: return "Diameter version is not 1";
      case error::message_too_short: return "message length below the 20-byte header";
      case error::message_too_long: return "message length exceeds the maximum message size";
      case error::bad_message_length:
        return "message length is not a multiple of 4 or does not match the data";
      case error::truncated_avp_header: return "truncated AVP header";
      case error::bad_avp_length: return "AVP length smaller than the AVP header";
      case error::avp_overrun: return "AVP runs past the end of its parent";
      case error::bad_padding: return "AVP padding missing";
      case error::nesting_too_deep: return "grouped AVPs nested deeper than the limit";
      case error::bad_value_length: return "AVP data has the wrong size for its type";
      case error::bad_address: return "malformed Address AVP";
      case error::time_out_of_range: return "time outside the Diameter Time range";
      case error::invalid_utf8: return "UTF8String AVP is not valid UTF-8";
      case error::type_mismatch: return "value type does not match the AVP's dictionary type";
      case error::unknown_name: return "name not found in the dictionary";
      case error::buffer_too_small: return "output buffer too small";
      case error::value_too_long: return "AVP or message too long for its length field";
      case error::unbalanced_group: return "grouped AVP not closed, or closed out of order";
      case error::connection_closed: return "connection closed before the answer arrived";
      case error::connection_timeout: return "connection not established in time";
      case error::handshake_failed: return "capabilities exchange (CER/CEA) failed";
      case error::watchdog_timeout: return "peer did not answer the watchdog (DWR)";
      case error::disconnected_by_peer: return "peer sent Disconnect-Peer-Request";
      case error::timed_out: return "request timed out";
      case error::cancelled: return "request cancelled";
      case error::not_open: return "connection not open for requests";
      case error::invalid_request: return "not a well-formed Diameter request";
      case error::send_queue_full: return "send queue full";
      case error::invalid_config: return "invalid configuration";
      case error::pool_closed: return "client closed";
      case error::invalid_address: return "invalid address (expected host:port or [v6]:port)";
        // clang-format on
    }
    return "unknown diampool error";
  }

  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<error>(ev)) {
      case error::bad_version:
      case error::message_too_short:
      case error::message_too_long:
      case error::bad_message_length:
      case error::truncated_avp_header:
      case error::bad_avp_length:
      case error::avp_overrun:
      case error::bad_padding:
      case error::nesting_too_deep:
      case error::bad_value_length:
      case error::bad_address:
      case error::invalid_utf8:
        return condition::malformed_message;
      case error::timed_out:
      case error::connection_timeout:
        return condition::timeout;
      case error::cancelled:
        return condition::cancelled;
      case error::connection_closed:
      case error::handshake_failed:
      case error::watchdog_timeout:
      case error::disconnected_by_peer:
        return condition::connection_failed;
      case error::invalid_address:
        return std::errc::invalid_argument;
      default:
        return {ev, *this};
    }
  }
};

class condition_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "diampool.condition"; }

  std::string message(int ev) const override {
    switch (static_cast<condition>(ev)) {
      case condition::malformed_message:
        return "malformed Diameter message";
      case condition::timeout:
        return "timed out";
      case condition::cancelled:
        return "cancelled";
      case condition::connection_failed:
        return "connection failed";
    }
    return "unknown diampool condition";
  }

  // System and generic errors that mean the same thing as a diampool condition, so that
  // `ec == condition::timeout` holds whatever layer produced ec (asio reports through the
  // system category with errno values).
  bool equivalent(const std::error_code& code, int cond) const noexcept override {
    if (code.category() == diampool::error_category()) {
      return code.default_error_condition() == std::error_condition(cond, *this);
    }
    if (code.category() != std::system_category() && code.category() != std::generic_category()) {
      return false;
    }
    const auto e = static_cast<std::errc>(code.value());
    switch (static_cast<condition>(cond)) {
      case condition::timeout:
        return e == std::errc::timed_out;
      case condition::cancelled:
        return e == std::errc::operation_canceled;
      case condition::connection_failed:
        return e == std::errc::connection_refused || e == std::errc::connection_reset ||
               e == std::errc::connection_aborted || e == std::errc::broken_pipe ||
               e == std::errc::network_unreachable || e == std::errc::host_unreachable ||
               e == std::errc::not_connected;
      case condition::malformed_message:
        return false;
    }
    return false;
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const error_category_impl instance;
  return instance;
}

const std::error_category& condition_category() noexcept {
  static const condition_category_impl instance;
  return instance;
}

}  // namespace diampool
