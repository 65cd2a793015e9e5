// diampool: building Diameter messages in place.
//
// message_builder writes the header and each AVP straight into the caller's buffer (no
// intermediate AVP objects, no copy per AVP); grouped AVP and message lengths are patched when
// they are closed. Errors are sticky: the first one is kept, later calls do nothing, and
// finish() reports it, so a chain of add_* calls needs one check at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "diampool/avp.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/message.hpp"
#include "diampool/types.hpp"

namespace diampool {

/// A value for dictionary-driven building. The alternative must fit the AVP's type:
/// int32_t for Integer32 and Enumerated, std::string_view for OctetString and every text
/// type, ip_address for Address, diameter_time for Time, and so on.
using avp_value =
    std::variant<std::int32_t, std::int64_t, std::uint32_t, std::uint64_t, float, double,
                 std::string_view, std::span<const std::uint8_t>, ip_address, diameter_time>;

class message_builder {
 public:
  /// Marks an open grouped AVP; pass it back to end_group().
  struct group {
    std::size_t offset = 0;
    std::size_t depth = 0;
  };

  /// Appends the message to `out` (which may already hold earlier messages, e.g. a batch to
  /// write). The vector grows as needed; reuse it to avoid allocation.
  message_builder(std::vector<std::uint8_t>& out, const message_header& header);

  /// Writes the message at the start of a fixed buffer; buffer_too_small if it does not fit.
  message_builder(std::span<std::uint8_t> out, const message_header& header) noexcept;

  message_builder(const message_builder&) = delete;
  message_builder& operator=(const message_builder&) = delete;
  message_builder(message_builder&&) noexcept = default;
  message_builder& operator=(message_builder&&) = delete;
  ~message_builder() = default;

  // -- by code: flags default to M; V and the Vendor-ID field are added when vendor_id != 0.

  message_builder& add_octets(std::uint32_t code, std::span<const std::uint8_t> data,
                              std::uint8_t flags = avp_flags::mandatory,
                              std::uint32_t vendor_id = 0);
  /// OctetString, UTF8String, DiameterIdentity, DiameterURI, IPFilterRule.
  message_builder& add_string(std::uint32_t code, std::string_view text,
                              std::uint8_t flags = avp_flags::mandatory,
                              std::uint32_t vendor_id = 0);
  message_builder& add_integer32(std::uint32_t code, std::int32_t v,
                                 std::uint8_t flags = avp_flags::mandatory,
                                 std::uint32_t vendor_id = 0);
  message_builder& add_integer64(std::uint32_t code, std::int64_t v,
                                 std::uint8_t flags = avp_flags::mandatory,
                                 std::uint32_t vendor_id = 0);
  message_builder& add_unsigned32(std::uint32_t code, std::uint32_t v,
                                  std::uint8_t flags = avp_flags::mandatory,
                                  std::uint32_t vendor_id = 0);
  message_builder& add_unsigned64(std::uint32_t code, std::uint64_t v,
                                  std::uint8_t flags = avp_flags::mandatory,
                                  std::uint32_t vendor_id = 0);
  message_builder& add_float32(std::uint32_t code, float v,
                               std::uint8_t flags = avp_flags::mandatory,
                               std::uint32_t vendor_id = 0);
  message_builder& add_float64(std::uint32_t code, double v,
                               std::uint8_t flags = avp_flags::mandatory,
                               std::uint32_t vendor_id = 0);
  message_builder& add_address(std::uint32_t code, const ip_address& a,
                               std::uint8_t flags = avp_flags::mandatory,
                               std::uint32_t vendor_id = 0);
  /// time_out_of_range outside 1968-01-20 .. 2104-02-26.
  message_builder& add_time(std::uint32_t code, diameter_time t,
                            std::uint8_t flags = avp_flags::mandatory, std::uint32_t vendor_id = 0);

  /// Copies a received AVP as it is: code, flags, vendor and data (e.g. into Failed-AVP, or
  /// echoing a request's AVP in its answer).
  message_builder& add_avp(const avp& a);

  /// Opens a Grouped AVP: AVPs added until end_group() go inside it. Groups nest.
  group begin_group(std::uint32_t code, std::uint8_t flags = avp_flags::mandatory,
                    std::uint32_t vendor_id = 0);
  /// Closes the innermost open group (unbalanced_group if `g` is not that one).
  message_builder& end_group(group g);

  // -- by dictionary entry: code, vendor and flags come from the definition.

  /// type_mismatch if the value's alternative does not fit def.type.
  message_builder& add(const avp_definition& def, const avp_value& value);
  /// type_mismatch unless def.type is grouped.
  group begin_group(const avp_definition& def);

  /// Patches the message length and returns the message bytes (a view into the buffer).
  /// Sets ec and returns an empty span on the first error met while building.
  std::span<const std::uint8_t> finish(std::error_code& ec) noexcept;
  /// As above; throws std::system_error.
  std::span<const std::uint8_t> finish();

  /// The first error so far (sticky).
  std::error_code error() const noexcept { return ec_; }

  /// Bytes written for this message so far.
  std::size_t size() const noexcept { return pos_ - start_; }

 private:
  std::uint8_t* reserve(std::size_t n);
  std::uint8_t* begin_avp(std::uint32_t code, std::uint8_t flags, std::uint32_t vendor_id,
                          std::size_t data_size);
  void fail(std::error_code ec) noexcept {
    if (!ec_) ec_ = ec;
  }

  std::vector<std::uint8_t>* vec_ = nullptr;
  std::span<std::uint8_t> fixed_{};
  std::size_t start_ = 0;
  std::size_t pos_ = 0;
  std::size_t open_groups_ = 0;
  std::error_code ec_{};
};

}  // namespace diampool
