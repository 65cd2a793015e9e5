// diampool: UTF-8 and JSON string escaping shared by the structured logger and the CLI.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace diampool::detail {

/// Length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0 if the bytes there are not
/// one (stray continuation byte, overlong form, surrogate, above U+10FFFF, truncated).
/// Requires i < s.size().
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept;

/// Whether the sequence of `len` bytes at s[i] is a control character: C0 (below U+0020), DEL,
/// or C1 (U+0080..U+009F).
bool is_control_character(std::string_view s, std::size_t i, std::size_t len) noexcept;

/// Appends `s` escaped as the body of a JSON string: backslashes and control characters
/// escaped (\n, \r, \t, \b, \f, else \u00XX), each byte of an invalid UTF-8 sequence as
/// \ufffd; double quotes escaped when `quote` is set (leave them for a text that is not
/// inside quotes). Valid UTF-8 otherwise passes through, so the output is valid UTF-8 and,
/// quoted, valid JSON whatever bytes `s` holds.
void append_json_escaped(std::string& out, std::string_view s, bool quote = true);

/// Appends `s` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);

}  // namespace diampool::detail
