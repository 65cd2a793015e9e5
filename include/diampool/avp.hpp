// diampool: AVP header, a read-only AVP view, and a bounds-checked AVP reader.
//
// Nothing here allocates or copies: an `avp` views bytes owned by someone else (a frame
// decoder, a socket buffer, a caller's vector) and is valid as long as those bytes are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string_view>
#include <system_error>

#include "diampool/detail/endian.hpp"
#include "diampool/types.hpp"

namespace diampool {

/// AVP flag bits (RFC 6733 section 4.1).
namespace avp_flags {
inline constexpr std::uint8_t vendor = 0x80;     ///< V: Vendor-ID field present.
inline constexpr std::uint8_t mandatory = 0x40;  ///< M: receiver must understand the AVP.
inline constexpr std::uint8_t protect = 0x20;    ///< P: reserved since RFC 6733 (was E2E security).
}  // namespace avp_flags

/// Default limit on grouped AVP nesting: a message's own AVPs are at depth 1.
inline constexpr unsigned default_max_avp_depth = 16;

/// The fixed part of an AVP.
struct avp_header {
  std::uint32_t code = 0;
  std::uint8_t flags = 0;
  std::uint32_t length = 0;  ///< Header plus data, without padding (24 bits on the wire).
  std::uint32_t vendor_id = 0;

  /// 12 bytes with the V flag, else 8.
  std::size_t size() const noexcept { return (flags & avp_flags::vendor) != 0 ? 12 : 8; }
};

class avp_range;

/// One AVP viewed in place. Typed accessors come in pairs: one fills an error_code, the other
/// throws std::system_error.
class avp {
 public:
  avp() = default;
  avp(const avp_header& h, std::span<const std::uint8_t> data, unsigned depth_left) noexcept
      : header_(h), data_(data), depth_left_(depth_left) {}

  const avp_header& header() const noexcept { return header_; }
  std::uint32_t code() const noexcept { return header_.code; }
  std::uint8_t flags() const noexcept { return header_.flags; }
  std::uint32_t vendor_id() const noexcept { return header_.vendor_id; }
  bool is_mandatory() const noexcept { return (header_.flags & avp_flags::mandatory) != 0; }
  bool is_vendor_specific() const noexcept { return (header_.flags & avp_flags::vendor) != 0; }

  /// The AVP data, without header and padding.
  std::span<const std::uint8_t> data() const noexcept { return data_; }

  /// The AVP data as characters (OctetString and its derived types), no validation.
  std::string_view as_string() const noexcept {
    return {reinterpret_cast<const char*>(data_.data()), data_.size()};
  }

  std::int32_t as_integer32(std::error_code& ec) const noexcept;
  std::int64_t as_integer64(std::error_code& ec) const noexcept;
  std::uint32_t as_unsigned32(std::error_code& ec) const noexcept;
  std::uint64_t as_unsigned64(std::error_code& ec) const noexcept;
  float as_float32(std::error_code& ec) const noexcept;
  double as_float64(std::error_code& ec) const noexcept;
  /// UTF8String: the text, checked to be valid UTF-8.
  std::string_view as_utf8(std::error_code& ec) const noexcept;
  /// Address: family and bytes; bad_address if shorter than 2 bytes or wrong for its family.
  address_view as_address(std::error_code& ec) const noexcept;
  /// Time: bad_value_length unless exactly 4 bytes.
  diameter_time as_time(std::error_code& ec) const noexcept;

  std::int32_t as_integer32() const;
  std::int64_t as_integer64() const;
  std::uint32_t as_unsigned32() const;
  std::uint64_t as_unsigned64() const;
  float as_float32() const;
  double as_float64() const;
  std::string_view as_utf8() const;
  address_view as_address() const;
  diameter_time as_time() const;

  /// The AVPs inside this one, read as a Grouped AVP. Iterating reports nesting_too_deep if
  /// this AVP is already at the depth limit.
  avp_range children() const noexcept;

  /// Remaining nesting allowance: children of this AVP may be read while it is above zero.
  unsigned depth_left() const noexcept { return depth_left_; }

 private:
  avp_header header_{};
  std::span<const std::uint8_t> data_{};
  unsigned depth_left_ = 0;
};

/// Reads AVPs one after another from a byte span (a message body or a grouped AVP's data).
/// It never reads outside the span it was given. After an error it stays at the end.
class avp_reader {
 public:
  avp_reader() = default;

  /// `depth_left` is how many levels of nesting the AVPs read here may still open; 0 means the
  /// reader itself is beyond the limit and reports nesting_too_deep at once (unless empty).
  avp_reader(std::span<const std::uint8_t> data, unsigned depth_left) noexcept
      : rest_(data), depth_left_(depth_left) {}

  /// Reads the next AVP into `out`. Returns true if one was read; false at the end (ec
  /// cleared) or on a malformed AVP (ec set, the reader then stays at the end).
  bool next(avp& out, std::error_code& ec) noexcept;

  /// Bytes not read yet.
  std::size_t remaining() const noexcept { return rest_.size(); }

 private:
  // The whole of next(): the end of the span and every fault (the inline part reads
  // well-formed AVPs only).
  bool next_checked(avp& out, std::error_code& ec) noexcept;

  std::span<const std::uint8_t> rest_{};
  unsigned depth_left_ = 0;
};

/// A range of AVPs for range-for. Iteration stops at the end or at the first malformed AVP;
/// error() then says which (keep the range in a variable to ask it).
class avp_range {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = avp;
    using difference_type = std::ptrdiff_t;
    using pointer = const avp*;
    using reference = const avp&;

    iterator() = default;
    const avp& operator*() const noexcept { return current_; }
    const avp* operator->() const noexcept { return &current_; }
    iterator& operator++() noexcept {
      advance();
      return *this;
    }
    void operator++(int) noexcept { advance(); }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.range_ == b.range_;
    }

   private:
    friend class avp_range;
    explicit iterator(avp_range* r) noexcept : range_(r) { advance(); }
    void advance() noexcept;

    avp_range* range_ = nullptr;
    avp current_{};
  };

  avp_range() = default;
  avp_range(std::span<const std::uint8_t> data, unsigned depth_left) noexcept
      : reader_(data, depth_left) {}

  iterator begin() noexcept { return iterator(this); }
  iterator end() noexcept { return iterator(); }

  /// The error that stopped iteration, if any.
  std::error_code error() const noexcept { return ec_; }

 private:
  avp_reader reader_{};
  std::error_code ec_{};
};

// Inline because every received message is walked AVP by AVP (check_avps, find()): a
// well-formed AVP is read here; the end and malformed AVPs go to next_checked().
inline bool avp_reader::next(avp& out, std::error_code& ec) noexcept {
  const std::size_t size = rest_.size();
  if (size >= 8 && depth_left_ != 0) {
    const std::uint8_t* p = rest_.data();
    avp_header h;
    h.flags = p[4];
    h.length = detail::load_u24(p + 5);
    const std::size_t hsize = h.size();
    const std::size_t padded = h.length + detail::padding(h.length);
    if (h.length >= hsize && padded <= size) {  // (hence hsize <= size)
      h.code = detail::load_u32(p);
      if (hsize == 12) h.vendor_id = detail::load_u32(p + 8);
      out = avp(h, rest_.subspan(hsize, h.length - hsize), depth_left_ - 1);
      rest_ = rest_.subspan(padded);
      if (ec) ec.clear();  // (clear() is a call into the library: not for every AVP)
      return true;
    }
  }
  return next_checked(out, ec);
}

inline void avp_range::iterator::advance() noexcept {
  if (range_ != nullptr && !range_->reader_.next(current_, range_->ec_)) range_ = nullptr;
}

}  // namespace diampool
