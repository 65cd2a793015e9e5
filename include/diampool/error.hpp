// diampool: errors and error conditions.
//
// Every failure diampool reports is a std::error_code in the "diampool" category. Callers that
// only care about the kind of failure compare against a diampool::condition instead of a
// specific value (`ec == diampool::condition::malformed_message`).
#pragma once

#include <string>
#include <system_error>

namespace diampool {

/// Error values of the diampool category. Zero is never used (it means success).
enum class error {
  // ---- framing (frame_decoder, message_view::parse) ----

  /// The message header's Version field is not 1.
  bad_version = 1,

  /// The Message Length field is below the 20-byte header size.
  message_too_short,

  /// The Message Length field exceeds the configured maximum message size.
  message_too_long,

  /// The Message Length field is not a multiple of 4, or does not match the bytes given.
  bad_message_length,

  // ---- AVP structure (avp_reader, avp accessors) ----

  /// Fewer bytes are left in the parent than an AVP header needs (8, or 12 with V flag).
  truncated_avp_header,

  /// An AVP Length field is smaller than the AVP's own header.
  bad_avp_length,

  /// An AVP's data runs past the end of its parent (message or grouped AVP).
  avp_overrun,

  /// An AVP's data fits in its parent but the padding to a 4-byte boundary is missing.
  bad_padding,

  /// Grouped AVPs are nested deeper than the configured depth limit.
  nesting_too_deep,

  // ---- AVP values ----

  /// The AVP data has the wrong size for the requested type (e.g. Unsigned32 not 4 bytes).
  bad_value_length,

  /// An Address AVP is too short for its family, or the family is not the one requested.
  bad_address,

  /// A Time value cannot be represented in the Diameter (NTP) Time range.
  time_out_of_range,

  /// A UTF8String AVP does not hold valid UTF-8.
  invalid_utf8,

  /// A value's type does not match the dictionary type of the AVP it is given for.
  type_mismatch,

  /// A name is not in the dictionary.
  unknown_name,

  // ---- building ----

  /// The caller-supplied fixed buffer is too small for the message being built.
  buffer_too_small,

  /// An AVP or message would exceed the 24-bit length field (or the builder's limit).
  value_too_long,

  /// A grouped AVP was opened and not closed, or closed out of order.
  unbalanced_group,

  // ---- connections and requests ----

  /// The connection closed (or failed) before the request got its answer.
  connection_closed,

  /// The TCP connection (name resolution included) was not established in time.
  connection_timeout,

  /// The capabilities exchange failed: the CEA carried a Result-Code other than 2001, no
  /// common application, no CEA within cer_timeout, or the peer closed first. The details
  /// (Result-Code, Error-Message, Failed-AVP) are kept with the connection.
  handshake_failed,

  /// The peer left max_dwr_failures watchdog requests (DWR) unanswered.
  watchdog_timeout,

  /// The peer sent a Disconnect-Peer-Request and the connection was closed.
  disconnected_by_peer,

  /// The request's deadline passed before its answer arrived.
  timed_out,

  /// The request was cancelled by its caller.
  cancelled,

  /// The connection is not open for requests (not connected yet, handshake or reopen under
  /// way, closing, or closed).
  not_open,

  /// The bytes given as a request are not a well-formed Diameter request (R flag clear,
  /// malformed header or AVPs).
  invalid_request,

  /// The connection's send queue is full (send_buffer_size requests waiting to be written).
  send_queue_full,

  /// A configuration value is invalid; the log and validate() name the field.
  invalid_config,

  // ---- pool (address_client) ----

  /// The client was closed: the request was refused, or was still pending at close().
  pool_closed,

  /// The address is not "host:port" or "[v6]:port" with a port in 1..65535. Compares equal
  /// to std::errc::invalid_argument.
  invalid_address,
};

/// Conditions that group diampool errors (and, where they fit, system errors) by kind.
enum class condition {
  /// The bytes received are not a well-formed Diameter message.
  malformed_message = 1,

  /// A deadline or timeout expired (request deadline, dial timeout, or a system timeout).
  timeout,

  /// The operation was cancelled (by its caller, or an asio / std cancellation).
  cancelled,

  /// The connection could not be established or was lost (closed, refused, reset, handshake
  /// or watchdog failure, disconnected by the peer).
  connection_failed,
};

/// The category of diampool::error values; its name() is "diampool".
const std::error_category& error_category() noexcept;

/// The category of diampool::condition values.
const std::error_category& condition_category() noexcept;

inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

inline std::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}

}  // namespace diampool

template <>
struct std::is_error_code_enum<diampool::error> : std::true_type {};

template <>
struct std::is_error_condition_enum<diampool::condition> : std::true_type {};
