// diampool: the Diameter message header and a read-only message view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>

#include "diampool/avp.hpp"
#include "diampool/detail/endian.hpp"

namespace diampool {

/// Size of the fixed Diameter header.
inline constexpr std::size_t header_size = 20;

/// Default maximum message size accepted by decoders (64 KiB): large enough for any base
/// protocol or common 3GPP message, small enough that a hostile length costs nothing.
inline constexpr std::size_t default_max_message_size = std::size_t{64} * 1024;

/// Largest value of the 24-bit Message Length and AVP Length fields.
inline constexpr std::size_t max_length_field = 0xFFFFFF;

/// Command flag bits (RFC 6733 section 3).
namespace cmd_flags {
inline constexpr std::uint8_t request = 0x80;     ///< R: request (clear: answer).
inline constexpr std::uint8_t proxiable = 0x40;   ///< P: may be proxied, relayed or redirected.
inline constexpr std::uint8_t error = 0x20;       ///< E: answer carries a protocol error.
inline constexpr std::uint8_t retransmit = 0x10;  ///< T: possible retransmission.
}  // namespace cmd_flags

/// The 20-byte Diameter header.
struct message_header {
  std::uint8_t version = 1;
  std::uint32_t length = 0;  ///< Whole message in bytes (24 bits on the wire).
  std::uint8_t flags = 0;
  std::uint32_t command_code = 0;  ///< 24 bits on the wire.
  std::uint32_t application_id = 0;
  std::uint32_t hop_by_hop = 0;
  std::uint32_t end_to_end = 0;

  bool is_request() const noexcept { return (flags & cmd_flags::request) != 0; }
  bool is_proxiable() const noexcept { return (flags & cmd_flags::proxiable) != 0; }
  bool is_error() const noexcept { return (flags & cmd_flags::error) != 0; }
  bool is_retransmit() const noexcept { return (flags & cmd_flags::retransmit) != 0; }

  /// Reads the header from 20 bytes without any check.
  static message_header read(const std::uint8_t* p) noexcept {
    message_header h;
    h.version = p[0];
    h.length = detail::load_u24(p + 1);
    h.flags = p[4];
    h.command_code = detail::load_u24(p + 5);
    h.application_id = detail::load_u32(p + 8);
    h.hop_by_hop = detail::load_u32(p + 12);
    h.end_to_end = detail::load_u32(p + 16);
    return h;
  }

  /// Writes the header into 20 bytes (length and command code truncated to 24 bits).
  void write(std::uint8_t* p) const noexcept;

  friend bool operator==(const message_header&, const message_header&) = default;
};

/// Checks the first 20 bytes of a frame: version 1, length at least 20, a multiple of 4 and
/// at most `max_size`. Returns the length, or 0 with `ec` set.
std::size_t check_header(const std::uint8_t* p, std::size_t max_size, std::error_code& ec) noexcept;

/// A complete Diameter message viewed in place (no copy, no allocation).
class message_view {
 public:
  message_view() = default;

  /// Views `bytes` as one message. The header must pass check_header() and its length must be
  /// exactly bytes.size(). The AVPs are not checked here: walk them, or call validate().
  static message_view parse(std::span<const std::uint8_t> bytes, std::error_code& ec,
                            std::size_t max_size = max_length_field) noexcept {
    // Inline, as every message sent or received goes through here (up to four times per
    // request): the header's fields go straight into the view. Errors are told out of line.
    if (bytes.size() >= header_size) {
      const std::uint8_t* p = bytes.data();
      const std::size_t length = detail::load_u24(p + 1);
      if (p[0] == 1 && length == bytes.size() && length <= max_size && (length & 3) == 0) {
        ec.clear();
        message_view m;
        m.header_ = message_header::read(p);
        m.bytes_ = bytes;
        return m;
      }
    }
    return parse_checked(bytes, ec, max_size);
  }

  /// Whether parse() would view `bytes` as one message (`ec` says why not), without making
  /// the view. For hot paths that go on to read a field or two with message_header::read():
  /// a view returned through memory and read back at once stalls on store forwarding.
  static bool check(std::span<const std::uint8_t> bytes, std::error_code& ec,
                    std::size_t max_size = max_length_field) noexcept {
    (void)parse(bytes, ec, max_size);
    return !ec;
  }

  const message_header& header() const noexcept { return header_; }
  std::span<const std::uint8_t> bytes() const noexcept { return bytes_; }
  std::span<const std::uint8_t> body() const noexcept { return bytes_.subspan(header_size); }

  /// The top-level AVPs; grouped AVPs may nest up to `max_depth` levels in all.
  avp_range avps(unsigned max_depth = default_max_avp_depth) const noexcept {
    return {body(), max_depth};
  }

  /// The first top-level AVP with this code and vendor, if the AVPs before it are well formed.
  std::optional<avp> find(std::uint32_t code, std::uint32_t vendor_id = 0) const noexcept;

 private:
  friend class frame_decoder;
  // The view of a frame whose header the frame decoder has checked (check_header(), and
  // `frame` is exactly its length): the fields are written in place. Assigning parse()'s
  // result instead goes through a temporary whose wide reloads of narrow stores stall.
  void assign_frame(std::span<const std::uint8_t> frame) noexcept {
    header_ = message_header::read(frame.data());
    bytes_ = frame;
  }

  // parse() one check at a time, for the error of bytes that are not one valid message.
  static message_view parse_checked(std::span<const std::uint8_t> bytes, std::error_code& ec,
                                    std::size_t max_size) noexcept;

  message_header header_{};
  std::span<const std::uint8_t> bytes_{};
};

}  // namespace diampool
