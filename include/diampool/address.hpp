// diampool: remote addresses as users write them.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

#include "diampool/error.hpp"

namespace diampool {

/// Splits "host:port" or "[v6-address]:port" into host and port, checking the form before
/// anything is resolved or dialled. Fails with error::invalid_address (equal to
/// std::errc::invalid_argument) on: a missing host
/// or port, unbalanced brackets, an IPv6 literal without brackets (or brackets around anything
/// else), a port that is not a number in 1..65535 (0 too when `allow_port_zero`, for listening
/// on an ephemeral port). Examples: "127.0.0.1:3868", "[::1]:3868", "peer.example.net:3868".
std::error_code split_address(std::string_view address, std::string& host, std::string& port,
                              bool allow_port_zero = false);

}  // namespace diampool
