// diampool: incremental, sans-I/O framing of a Diameter byte stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "diampool/message.hpp"

namespace diampool {

/// What one call to frame_decoder::put() produced.
enum class decode_status {
  need_more,  ///< All bytes given were consumed; the message is not complete yet.
  message,    ///< A complete message is ready: frame_decoder::message().
  error,      ///< The stream is malformed; the decoder stays in this state.
};

struct decode_result {
  decode_status status = decode_status::need_more;
  std::size_t consumed = 0;  ///< Bytes of the input used; feed the rest to the next put().
};

/// Splits a TCP byte stream into Diameter messages.
///
/// Feed it bytes with put(); it consumes up to the end of one message and says whether a
/// message is ready. The header is checked (version, length bounds, alignment) as soon as its
/// 20 bytes are in, before anything is allocated, so a hostile length costs nothing. When the
/// whole message is inside the bytes given, message() views them in place (no copy); otherwise
/// the decoder gathers the pieces in a buffer it reuses, bounded by the maximum message size.
///
/// Not thread-safe; one decoder per stream.
class frame_decoder {
 public:
  explicit frame_decoder(std::size_t max_message_size = default_max_message_size) noexcept
      : max_size_(max_message_size) {}

  /// Consumes bytes up to the end of the next message. On decode_status::message, message()
  /// is valid until the next put() (and, if viewed in place, while `bytes` is). On error, `ec`
  /// says why and every later put() returns the same error.
  decode_result put(std::span<const std::uint8_t> bytes, std::error_code& ec);

  /// The message completed by the last put().
  const message_view& message() const noexcept { return message_; }

  /// Bytes still needed before the current message can be completed (a hint for reads).
  std::size_t bytes_needed() const noexcept;

  std::size_t max_message_size() const noexcept { return max_size_; }

  /// Forgets any partial message and error.
  void reset() noexcept;

 private:
  std::size_t max_size_;
  std::vector<std::uint8_t> buffer_;
  std::size_t expected_ = 0;  // length of the message being gathered, 0 until header known
  bool ready_ = false;
  std::error_code error_{};
  message_view message_{};
};

}  // namespace diampool
