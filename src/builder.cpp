#include "diampool/builder.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "diampool/detail/endian.hpp"
#include "diampool/error.hpp"

namespace diampool {

message_builder::message_builder(std::vector<std::uint8_t>& out, const message_header& header)
    : vec_(&out), start_(out.size()), pos_(out.size()) {
  if (std::uint8_t* p = reserve(header_size)) header.write(p);
}

message_builder::message_builder(std::span<std::uint8_t> out, const message_header& header) noexcept
    : fixed_(out) {
  if (std::uint8_t* p = reserve(header_size)) header.write(p);
}

std::uint8_t* message_builder::reserve(std::size_t n) {
  if (ec_) return nullptr;
  if (pos_ - start_ + n > max_length_field) {
    fail(error::value_too_long);
    return nullptr;
  }
  std::uint8_t* base = nullptr;
  if (vec_ != nullptr) {
    if (vec_->size() < pos_ + n) {
      // Grow geometrically; resize() value-initialises, which the writes below overwrite.
      if (vec_->capacity() < pos_ + n) vec_->reserve(std::max(pos_ + n, vec_->capacity() * 2));
      vec_->resize(pos_ + n);
    }
    base = vec_->data();
  } else {
    if (fixed_.size() < pos_ + n) {
      fail(error::buffer_too_small);
      return nullptr;
    }
    base = fixed_.data();
  }
  std::uint8_t* p = base + pos_;
  pos_ += n;
  return p;
}

std::uint8_t* message_builder::begin_avp(std::uint32_t code, std::uint8_t flags,
                                         std::uint32_t vendor_id, std::size_t data_size) {
  if (vendor_id != 0) {
    flags |= avp_flags::vendor;
  } else {
    flags &= static_cast<std::uint8_t>(~avp_flags::vendor);
  }
  const std::size_t hsize = vendor_id != 0 ? 12 : 8;
  if (data_size > max_length_field - hsize) {
    fail(error::value_too_long);
    return nullptr;
  }
  const std::size_t length = hsize + data_size;
  const std::size_t pad = detail::padding(length);
  std::uint8_t* p = reserve(length + pad);
  if (p == nullptr) return nullptr;
  detail::store_u32(p, code);
  p[4] = flags;
  detail::store_u24(p + 5, static_cast<std::uint32_t>(length));
  if (vendor_id != 0) detail::store_u32(p + 8, vendor_id);
  std::memset(p + length, 0, pad);
  return p + hsize;
}

message_builder& message_builder::add_octets(std::uint32_t code, std::span<const std::uint8_t> data,
                                             std::uint8_t flags, std::uint32_t vendor_id) {
  if (std::uint8_t* p = begin_avp(code, flags, vendor_id, data.size()); p && !data.empty()) {
    std::memcpy(p, data.data(), data.size());
  }
  return *this;
}

message_builder& message_builder::add_string(std::uint32_t code, std::string_view text,
                                             std::uint8_t flags, std::uint32_t vendor_id) {
  return add_octets(code, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, flags,
                    vendor_id);
}

message_builder& message_builder::add_unsigned32(std::uint32_t code, std::uint32_t v,
                                                 std::uint8_t flags, std::uint32_t vendor_id) {
  if (std::uint8_t* p = begin_avp(code, flags, vendor_id, 4)) detail::store_u32(p, v);
  return *this;
}

message_builder& message_builder::add_unsigned64(std::uint32_t code, std::uint64_t v,
                                                 std::uint8_t flags, std::uint32_t vendor_id) {
  if (std::uint8_t* p = begin_avp(code, flags, vendor_id, 8)) detail::store_u64(p, v);
  return *this;
}

message_builder& message_builder::add_integer32(std::uint32_t code, std::int32_t v,
                                                std::uint8_t flags, std::uint32_t vendor_id) {
  return add_unsigned32(code, std::bit_cast<std::uint32_t>(v), flags, vendor_id);
}

message_builder& message_builder::add_integer64(std::uint32_t code, std::int64_t v,
                                                std::uint8_t flags, std::uint32_t vendor_id) {
  return add_unsigned64(code, std::bit_cast<std::uint64_t>(v), flags, vendor_id);
}

message_builder& message_builder::add_float32(std::uint32_t code, float v, std::uint8_t flags,
                                              std::uint32_t vendor_id) {
  return add_unsigned32(code, std::bit_cast<std::uint32_t>(v), flags, vendor_id);
}

message_builder& message_builder::add_float64(std::uint32_t code, double v, std::uint8_t flags,
                                              std::uint32_t vendor_id) {
  return add_unsigned64(code, std::bit_cast<std::uint64_t>(v), flags, vendor_id);
}

message_builder& message_builder::add_address(std::uint32_t code, const ip_address& a,
                                              std::uint8_t flags, std::uint32_t vendor_id) {
  const auto bytes = a.bytes();
  if (std::uint8_t* p = begin_avp(code, flags, vendor_id, 2 + bytes.size())) {
    p[0] = static_cast<std::uint8_t>(a.family() >> 8);
    p[1] = static_cast<std::uint8_t>(a.family());
    std::memcpy(p + 2, bytes.data(), bytes.size());
  }
  return *this;
}

message_builder& message_builder::add_time(std::uint32_t code, diameter_time t, std::uint8_t flags,
                                           std::uint32_t vendor_id) {
  std::error_code ec;
  const std::uint32_t ntp = to_ntp_seconds(t, ec);
  if (ec) {
    fail(ec);
    return *this;
  }
  return add_unsigned32(code, ntp, flags, vendor_id);
}

message_builder& message_builder::add_avp(const avp& a) {
  return add_octets(a.code(), a.data(), a.flags(), a.vendor_id());
}

message_builder::group message_builder::begin_group(std::uint32_t code, std::uint8_t flags,
                                                    std::uint32_t vendor_id) {
  const std::size_t offset = pos_;
  if (begin_avp(code, flags, vendor_id, 0) == nullptr) return {offset, 0};
  ++open_groups_;
  return {offset, open_groups_};
}

message_builder& message_builder::end_group(group g) {
  if (ec_) return *this;
  if (open_groups_ == 0 || g.depth != open_groups_) {
    fail(error::unbalanced_group);
    return *this;
  }
  --open_groups_;
  std::uint8_t* base = vec_ != nullptr ? vec_->data() : fixed_.data();
  // Children are padded, so the group length is a multiple of 4 and needs no padding itself.
  detail::store_u24(base + g.offset + 5, static_cast<std::uint32_t>(pos_ - g.offset));
  return *this;
}

namespace {

// Which avp_value alternative each type takes, as the variant's index.
bool fits(avp_type t, const avp_value& v) noexcept {
  switch (t) {
    case avp_type::integer32:
    case avp_type::enumerated:
      return std::holds_alternative<std::int32_t>(v);
    case avp_type::integer64:
      return std::holds_alternative<std::int64_t>(v);
    case avp_type::unsigned32:
      return std::holds_alternative<std::uint32_t>(v);
    case avp_type::unsigned64:
      return std::holds_alternative<std::uint64_t>(v);
    case avp_type::float32:
      return std::holds_alternative<float>(v);
    case avp_type::float64:
      return std::holds_alternative<double>(v);
    case avp_type::address:
      return std::holds_alternative<ip_address>(v);
    case avp_type::time:
      return std::holds_alternative<diameter_time>(v);
    case avp_type::grouped:
      return false;
    case avp_type::octet_string:
    case avp_type::utf8_string:
    case avp_type::diameter_identity:
    case avp_type::diameter_uri:
    case avp_type::ip_filter_rule:
      return std::holds_alternative<std::string_view>(v) ||
             std::holds_alternative<std::span<const std::uint8_t>>(v);
  }
  return false;
}

}  // namespace

message_builder& message_builder::add(const avp_definition& def, const avp_value& value) {
  if (!fits(def.type, value)) {
    fail(error::type_mismatch);
    return *this;
  }
  if (def.type == avp_type::utf8_string) {
    if (const auto* s = std::get_if<std::string_view>(&value); s && !is_valid_utf8(*s)) {
      fail(error::invalid_utf8);
      return *this;
    }
  }
  const std::uint8_t flags = def.default_flags();
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::int32_t>) {
          add_integer32(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          add_integer64(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::uint32_t>) {
          add_unsigned32(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          add_unsigned64(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, float>) {
          add_float32(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, double>) {
          add_float64(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::string_view>) {
          add_string(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::span<const std::uint8_t>>) {
          add_octets(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, ip_address>) {
          add_address(def.code, v, flags, def.vendor_id);
        } else {
          add_time(def.code, v, flags, def.vendor_id);
        }
      },
      value);
  return *this;
}

message_builder::group message_builder::begin_group(const avp_definition& def) {
  if (def.type != avp_type::grouped) {
    fail(error::type_mismatch);
    return {pos_, 0};
  }
  return begin_group(def.code, def.default_flags(), def.vendor_id);
}

std::span<const std::uint8_t> message_builder::finish(std::error_code& ec) noexcept {
  if (!ec_ && open_groups_ != 0) fail(error::unbalanced_group);
  ec = ec_;
  if (ec) return {};
  std::uint8_t* base = vec_ != nullptr ? vec_->data() : fixed_.data();
  detail::store_u24(base + start_ + 1, static_cast<std::uint32_t>(pos_ - start_));
  return {base + start_, pos_ - start_};
}

std::span<const std::uint8_t> message_builder::finish() {
  std::error_code ec;
  auto bytes = finish(ec);
  if (ec) throw std::system_error(ec);
  return bytes;
}

}  // namespace diampool
