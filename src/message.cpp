#include "diampool/message.hpp"

#include "diampool/detail/endian.hpp"
#include "diampool/error.hpp"

namespace diampool {

void message_header::write(std::uint8_t* p) const noexcept {
  p[0] = version;
  detail::store_u24(p + 1, length);
  p[4] = flags;
  detail::store_u24(p + 5, command_code);
  detail::store_u32(p + 8, application_id);
  detail::store_u32(p + 12, hop_by_hop);
  detail::store_u32(p + 16, end_to_end);
}

std::size_t check_header(const std::uint8_t* p, std::size_t max_size,
                         std::error_code& ec) noexcept {
  ec.clear();
  const std::size_t length = detail::load_u24(p + 1);
  if (p[0] != 1) {
    ec = error::bad_version;
  } else if (length < header_size) {
    ec = error::message_too_short;
  } else if (length > max_size) {
    ec = error::message_too_long;
  } else if ((length & 3) != 0) {
    ec = error::bad_message_length;
  }
  return ec ? 0 : length;
}

message_view message_view::parse_checked(std::span<const std::uint8_t> bytes, std::error_code& ec,
                                         std::size_t max_size) noexcept {
  if (bytes.size() < header_size) {
    ec = error::message_too_short;
    return {};
  }
  const std::size_t length = check_header(bytes.data(), max_size, ec);
  if (ec) return {};
  if (length != bytes.size()) {
    ec = error::bad_message_length;
    return {};
  }
  message_view m;
  m.header_ = message_header::read(bytes.data());
  m.bytes_ = bytes;
  return m;
}

std::optional<avp> message_view::find(std::uint32_t code, std::uint32_t vendor_id) const noexcept {
  avp_reader r(body(), default_max_avp_depth);
  avp a;
  std::error_code ec;
  while (r.next(a, ec)) {
    if (a.code() == code && a.vendor_id() == vendor_id) return a;
  }
  return std::nullopt;
}

}  // namespace diampool
