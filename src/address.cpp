#include "diampool/address.hpp"

#include <charconv>

namespace diampool {

std::error_code split_address(std::string_view address, std::string& host, std::string& port,
                              bool allow_port_zero) {
  const std::error_code invalid = error::invalid_address;
  std::string_view h;
  std::string_view p;
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return invalid;
    }
    h = address.substr(1, close - 1);
    p = address.substr(close + 2);
    if (h.find(':') == std::string_view::npos) return invalid;  // brackets are for IPv6
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return invalid;
    h = address.substr(0, colon);
    p = address.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return invalid;  // IPv6 needs brackets
  }
  if (h.empty() || p.empty() || p.size() > 5) return invalid;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc{} || end != p.data() + p.size() || (value == 0 && !allow_port_zero) ||
      value > 65535) {
    return invalid;
  }
  host.assign(h);
  port.assign(p);
  return {};
}

}  // namespace diampool
