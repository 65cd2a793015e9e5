// diampool: UTF-8 and JSON string escaping (include/diampool/detail/text.hpp).
#include "diampool/detail/text.hpp"

namespace diampool::detail {

std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return n;
}

bool is_control_character(std::string_view s, std::size_t i, std::size_t len) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (len == 1) return b0 < 0x20 || b0 == 0x7F;
  return len == 2 && b0 == 0xC2 && static_cast<unsigned char>(s[i + 1]) <= 0x9F;
}

namespace {

void append_u00(std::string& out, unsigned code) {
  static constexpr char hex[] = "0123456789abcdef";
  out += "\\u00";
  out += hex[(code >> 4) & 0xF];
  out += hex[code & 0xF];
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view s, bool quote) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t len = utf8_sequence_length(s, i);
    if (len == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    const char c = s[i];
    if (is_control_character(s, i, len)) {
      switch (c) {
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          append_u00(
              out, len == 1 ? static_cast<unsigned char>(c) : static_cast<unsigned char>(s[i + 1]));
      }
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out.append(s.data() + i, len);
    }
    i += len;
  }
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  append_json_escaped(out, s, true);
  out += '"';
}

}  // namespace diampool::detail
