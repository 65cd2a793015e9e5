#include "diampool/print.hpp"

#include <chrono>
#include <cstdio>

#include "diampool/error.hpp"

namespace diampool {
namespace {

void append_f(std::string& out, const char* fmt, auto... args) {
  char buf[128];
  const int n = std::snprintf(buf, sizeof buf, fmt, args...);
  if (n > 0) out.append(buf, std::min(static_cast<std::size_t>(n), sizeof buf - 1));
}

void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      append_f(out, "\\x%02x", c);
    } else {
      out += ch;  // printable ASCII and UTF-8 bytes pass through
    }
  }
  out += '"';
}

void append_time(std::string& out, diameter_time t) {
  using namespace std::chrono;
  const auto days = floor<std::chrono::days>(t);
  const year_month_day ymd{days};
  const hh_mm_ss hms{t - days};
  append_f(out, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
           static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
           static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
           static_cast<int>(hms.seconds().count()));
}

void append_flags(std::string& out, std::uint8_t flags) {
  out += '[';
  out += (flags & avp_flags::vendor) != 0 ? 'V' : '-';
  out += (flags & avp_flags::mandatory) != 0 ? 'M' : '-';
  out += (flags & avp_flags::protect) != 0 ? 'P' : '-';
  out += ']';
}

void append_value(std::string& out, const avp& a, const avp_definition& def) {
  std::error_code ec;
  auto named = [&](std::int64_t v) {
    if (auto name = def.value_name(v); !name.empty()) {
      out += ' ';
      out += name;
    }
  };
  switch (def.type) {
    case avp_type::integer32:
    case avp_type::enumerated: {
      const auto v = a.as_integer32(ec);
      if (!ec) append_f(out, "%d", v), named(v);
      break;
    }
    case avp_type::integer64: {
      const auto v = a.as_integer64(ec);
      if (!ec) append_f(out, "%lld", static_cast<long long>(v));
      break;
    }
    case avp_type::unsigned32: {
      const auto v = a.as_unsigned32(ec);
      if (!ec) append_f(out, "%u", v), named(v);
      break;
    }
    case avp_type::unsigned64: {
      const auto v = a.as_unsigned64(ec);
      if (!ec) append_f(out, "%llu", static_cast<unsigned long long>(v));
      break;
    }
    case avp_type::float32: {
      const auto v = a.as_float32(ec);
      if (!ec) append_f(out, "%.9g", static_cast<double>(v));
      break;
    }
    case avp_type::float64: {
      const auto v = a.as_float64(ec);
      if (!ec) append_f(out, "%.17g", v);
      break;
    }
    case avp_type::address: {
      const auto v = a.as_address(ec);
      if (ec) break;
      if (auto ip = v.ip()) {
        out += ip->to_string();
      } else {
        append_f(out, "family %u: ", static_cast<unsigned>(v.family));
        out += to_hex(v.address);
      }
      break;
    }
    case avp_type::time: {
      const auto v = a.as_time(ec);
      if (!ec) append_time(out, v);
      break;
    }
    case avp_type::utf8_string:
    case avp_type::diameter_identity:
    case avp_type::diameter_uri:
    case avp_type::ip_filter_rule:
      append_quoted(out, a.as_string());
      break;
    case avp_type::octet_string:
    case avp_type::grouped:
      out += to_hex(a.data());
      break;
  }
  if (ec) {
    out += "!! ";
    out += ec.message();
    out += ": ";
    out += to_hex(a.data());
  }
}

void render(std::string& out, avp_range range, const dictionary& dict, int indent);

void render_one(std::string& out, const avp& a, const dictionary& dict, int indent) {
  out.append(static_cast<std::size_t>(indent), ' ');
  const avp_definition* def = dict.find_avp(a.code(), a.vendor_id());
  if (def != nullptr) {
    out += def->name;
    append_f(out, " (%u", a.code());
  } else {
    append_f(out, "AVP (%u", a.code());
  }
  if (a.vendor_id() != 0) append_f(out, ", vendor %u", a.vendor_id());
  out += ") ";
  append_flags(out, a.flags());
  if (def == nullptr) {
    append_f(out, " %zu bytes: ", a.data().size());
    out += to_hex(a.data());
    out += '\n';
    return;
  }
  out += ' ';
  out += to_string(def->type);
  if (def->type == avp_type::grouped) {
    out += ":\n";
    render(out, a.children(), dict, indent + 2);
    return;
  }
  out += ": ";
  append_value(out, a, *def);
  out += '\n';
}

void render(std::string& out, avp_range range, const dictionary& dict, int indent) {
  for (const avp& a : range)
    render_one(out, a, dict, indent);
  if (auto ec = range.error()) {
    out.append(static_cast<std::size_t>(indent), ' ');
    out += "!! malformed: ";
    out += ec.message();
    out += '\n';
  }
}

}  // namespace

std::string to_text(const message_view& msg, const dictionary& dict) {
  const message_header& h = msg.header();
  std::string out;
  const command_definition* cmd = dict.find_command(h.command_code);
  if (cmd != nullptr) {
    out += h.is_request() ? cmd->request_abbr : cmd->answer_abbr;
    out += ' ';
    out += cmd->name;
    out += h.is_request() ? "-Request" : "-Answer";
  } else {
    append_f(out, "Command %u %s", h.command_code, h.is_request() ? "Request" : "Answer");
  }
  out += "  flags=";
  out += h.is_request() ? 'R' : '-';
  out += h.is_proxiable() ? 'P' : '-';
  out += h.is_error() ? 'E' : '-';
  out += h.is_retransmit() ? 'T' : '-';
  append_f(out, " app=%u", h.application_id);
  if (const application_definition* app = dict.find_application(h.application_id)) {
    out += " (" + app->name + ")";
  }
  append_f(out, " hbh=0x%08x e2e=0x%08x length=%u\n", h.hop_by_hop, h.end_to_end, h.length);
  render(out, msg.avps(), dict, 2);
  return out;
}

std::string to_text(const avp& a, const dictionary& dict, int indent) {
  std::string out;
  render_one(out, a, dict, indent);
  return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::vector<std::uint8_t> from_hex(std::string_view text, bool& ok) {
  std::vector<std::uint8_t> out;
  ok = false;
  int high = -1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == ':') continue;
    if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X') && high < 0) {
      ++i;
      continue;
    }
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    if (v < 0) return {};
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>((high << 4) | v));
      high = -1;
    }
  }
  if (high >= 0) return {};
  ok = true;
  return out;
}

}  // namespace diampool
