// diampool CLI: JSON output shared by the subcommands that print it.
#pragma once

#include <string>
#include <string_view>

#include "diampool/detail/text.hpp"

namespace diampool::cli {

/// Appends `s` as a JSON string literal. Valid UTF-8 passes through; quotes, backslashes and
/// control characters are escaped; each byte of an invalid UTF-8 sequence becomes U+FFFD, so
/// the output is valid JSON whatever bytes a peer sent (the structured logger's escaping).
using detail::append_json_string;

/// `s` as a JSON string literal.
inline std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

}  // namespace diampool::cli
