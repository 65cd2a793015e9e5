// `diampool send`: builds one Diameter request from the command line, sends it through an
// address_client and prints the answer as an AVP tree or as JSON.
//
// Exit status: 0 for an answer with a 2xxx Result-Code (or Experimental-Result-Code), 3 for
// any other answer (other code, no code, or the E bit), 4 when no answer came (refused,
// timeout, capabilities exchange failed, connection lost...), 2 for bad arguments.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "commands.hpp"
#include "diampool/address.hpp"
#include "diampool/address_client.hpp"
#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/print.hpp"
#include "json.hpp"
#include "metrics.hpp"

namespace diampool::cli {
namespace {

constexpr int exit_success = 0;
constexpr int exit_usage = 2;
constexpr int exit_error_answer = 3;
constexpr int exit_transport = 4;

constexpr std::string_view default_origin_host = "diampool.example.com";
constexpr std::string_view fallback_realm = "example.com";

struct send_options {
  std::string to;
  std::string app;
  std::string cmd;
  std::vector<std::string> avps;
  std::string timeout = "5";
  bool json = false;
  bool no_proxiable = false;
  std::string origin_host{default_origin_host};
  std::string origin_realm;
  std::string destination_realm;
  std::string destination_host;
};

// A bad argument: the message is printed after "diampool send: " and the exit status is 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- parsing values from text -----------------------------------------------------------------

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Decimal, or hexadecimal with a 0x prefix; the whole text must be the number.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  if (s.empty() || s[0] == '+' || s[0] == '-') return std::nullopt;
  std::uint64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> parse_i64(std::string_view s) {
  const bool negative = !s.empty() && s[0] == '-';
  if (negative) s.remove_prefix(1);
  const auto magnitude = parse_u64(s);
  if (!magnitude) return std::nullopt;
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (negative) {
    if (*magnitude > max + 1) return std::nullopt;
    return *magnitude == max + 1 ? std::numeric_limits<std::int64_t>::min()
                                 : -static_cast<std::int64_t>(*magnitude);
  }
  if (*magnitude > max) return std::nullopt;
  return static_cast<std::int64_t>(*magnitude);
}

std::optional<double> parse_double(const std::string& s) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// Reads exactly `n` digits at `pos` into `out`.
bool take_digits(std::string_view s, std::size_t& pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

// Seconds since 1970-01-01 UTC, or ISO-8601: YYYY-MM-DD, optionally followed by T (or a
// space) and HH:MM[:SS], then Z, +HH:MM, -HH:MM or nothing (UTC).
std::optional<diameter_time> parse_time(std::string_view s) {
  if (auto n = parse_i64(s)) return diameter_time(std::chrono::seconds(*n));
  using namespace std::chrono;
  std::size_t pos = 0;
  int y = 0;
  int mo = 0;
  int d = 0;
  if (!take_digits(s, pos, 4, y) || pos >= s.size() || s[pos++] != '-' ||
      !take_digits(s, pos, 2, mo) || pos >= s.size() || s[pos++] != '-' ||
      !take_digits(s, pos, 2, d)) {
    return std::nullopt;
  }
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)),
                           day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  int h = 0;
  int mi = 0;
  int sec = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
    ++pos;
    if (!take_digits(s, pos, 2, h) || pos >= s.size() || s[pos++] != ':' ||
        !take_digits(s, pos, 2, mi)) {
      return std::nullopt;
    }
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!take_digits(s, pos, 2, sec)) return std::nullopt;
    }
    if (h > 23 || mi > 59 || sec > 59) return std::nullopt;
  }
  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos++] == '-' ? -1 : 1;
    int oh = 0;
    int om = 0;
    if (!take_digits(s, pos, 2, oh)) return std::nullopt;
    if (pos < s.size() && s[pos] == ':') ++pos;
    if (!take_digits(s, pos, 2, om) || oh > 23 || om > 59) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
  }
  if (pos != s.size()) return std::nullopt;
  return sys_days(ymd) + hours(h) + minutes(mi) + seconds(sec) - minutes(offset_minutes);
}

// A value as parsed from the command line, owning its bytes.
using owned_value =
    std::variant<std::int32_t, std::int64_t, std::uint32_t, std::uint64_t, float, double,
                 std::string, std::vector<std::uint8_t>, ip_address, diameter_time>;

struct user_avp {
  avp_definition def;
  owned_value value;
};

std::string type_hint(const avp_definition& def) {
  switch (def.type) {
    case avp_type::integer32:
    case avp_type::integer64:
      return "an integer";
    case avp_type::unsigned32:
    case avp_type::unsigned64:
      return "a non-negative integer";
    case avp_type::float32:
    case avp_type::float64:
      return "a number";
    case avp_type::enumerated:
      return "a number or one of its names";
    case avp_type::address:
      return "an IPv4 or IPv6 address";
    case avp_type::time:
      return "ISO-8601 (2024-05-01T12:00:00Z) or seconds since 1970-01-01";
    case avp_type::utf8_string:
      return "UTF-8 text";
    case avp_type::diameter_identity:
      return "a host or realm name (ASCII, no spaces)";
    case avp_type::octet_string:
      return "text, or hex bytes after 'hex:'";
    default:
      return "text";
  }
}

template <typename T>
std::optional<T> in_range(std::optional<std::int64_t> v) {
  if (!v || *v < std::numeric_limits<T>::min() || *v > std::numeric_limits<T>::max())
    return std::nullopt;
  return static_cast<T>(*v);
}

// The value of `text` for an AVP of `def`'s type; nullopt when it does not parse.
std::optional<owned_value> parse_value(const avp_definition& def, const std::string& text) {
  // Named values (Enumerated, and Unsigned32 codes such as Result-Code) by name.
  for (const enum_value& e : def.values) {
    if (e.name == text) {
      if (def.type == avp_type::unsigned32) {
        if (e.value < 0) return std::nullopt;
        return owned_value(static_cast<std::uint32_t>(e.value));
      }
      if (def.type == avp_type::integer32 || def.type == avp_type::enumerated)
        return owned_value(static_cast<std::int32_t>(e.value));
    }
  }
  switch (def.type) {
    case avp_type::integer32:
    case avp_type::enumerated:
      if (auto v = in_range<std::int32_t>(parse_i64(text))) return owned_value(*v);
      return std::nullopt;
    case avp_type::integer64:
      if (auto v = parse_i64(text)) return owned_value(*v);
      return std::nullopt;
    case avp_type::unsigned32: {
      const auto v = parse_u64(text);
      if (!v || *v > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
      return owned_value(static_cast<std::uint32_t>(*v));
    }
    case avp_type::unsigned64:
      if (auto v = parse_u64(text)) return owned_value(*v);
      return std::nullopt;
    case avp_type::float32: {
      const auto v = parse_double(text);
      if (!v || (std::isfinite(*v) && std::fabs(*v) > std::numeric_limits<float>::max()))
        return std::nullopt;
      return owned_value(static_cast<float>(*v));
    }
    case avp_type::float64:
      if (auto v = parse_double(text)) return owned_value(*v);
      return std::nullopt;
    case avp_type::address:
      if (auto a = ip_address::parse(text)) return owned_value(*a);
      return std::nullopt;
    case avp_type::time: {
      const auto t = parse_time(text);
      if (!t) return std::nullopt;
      std::error_code ec;
      to_ntp_seconds(*t, ec);
      if (ec) return std::nullopt;
      return owned_value(*t);
    }
    case avp_type::utf8_string:
      if (!is_valid_utf8(text)) return std::nullopt;
      return owned_value(text);
    case avp_type::diameter_identity:
      if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) {
            return c > ' ' && static_cast<unsigned char>(c) < 0x7f;
          })) {
        return std::nullopt;
      }
      return owned_value(text);
    case avp_type::octet_string:
      if (text.starts_with("hex:")) {
        bool ok = false;
        auto bytes = from_hex(std::string_view(text).substr(4), ok);
        if (!ok) return std::nullopt;
        return owned_value(std::move(bytes));
      }
      return owned_value(text);
    case avp_type::diameter_uri:
    case avp_type::ip_filter_rule:
      return owned_value(text);
    case avp_type::grouped:
      return std::nullopt;
  }
  return std::nullopt;
}

// Type names accepted in `--avp CODE:TYPE=VALUE`: the RFC 6733 names, case-insensitively.
std::optional<avp_type> parse_type(std::string_view name) {
  static constexpr avp_type all[] = {
      avp_type::octet_string, avp_type::integer32,   avp_type::integer64,
      avp_type::unsigned32,   avp_type::unsigned64,  avp_type::float32,
      avp_type::float64,      avp_type::grouped,     avp_type::address,
      avp_type::time,         avp_type::utf8_string, avp_type::diameter_identity,
      avp_type::diameter_uri, avp_type::enumerated,  avp_type::ip_filter_rule};
  const std::string wanted = lower(name);
  for (avp_type t : all) {
    if (lower(to_string(t)) == wanted) return t;
  }
  return std::nullopt;
}

// NAME=VALUE, CODE=VALUE (a code the dictionary knows) or CODE[/VENDOR]:TYPE=VALUE.
user_avp parse_avp_argument(const std::string& arg) {
  const auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw usage_error("--avp '" + arg + "': expected NAME=VALUE (e.g. User-Name=alice)");
  }
  const std::string name = arg.substr(0, eq);
  const std::string text = arg.substr(eq + 1);
  const dictionary& dict = dictionary::base();
  user_avp out;
  if (std::isdigit(static_cast<unsigned char>(name[0])) != 0) {
    const auto colon = name.find(':');
    const std::string number = name.substr(0, colon);
    const auto slash = number.find('/');
    const auto code = parse_u64(number.substr(0, slash));
    const auto vendor = slash == std::string::npos ? std::optional<std::uint64_t>(0)
                                                   : parse_u64(number.substr(slash + 1));
    if (!code || *code > std::numeric_limits<std::uint32_t>::max() || !vendor ||
        *vendor > std::numeric_limits<std::uint32_t>::max()) {
      throw usage_error("--avp '" + arg + "': expected CODE[/VENDOR][:TYPE]=VALUE");
    }
    const auto c = static_cast<std::uint32_t>(*code);
    const auto v = static_cast<std::uint32_t>(*vendor);
    if (const avp_definition* def = dict.find_avp(c, v)) {
      out.def = *def;
    } else {
      out.def.code = c;
      out.def.vendor_id = v;
      out.def.name = "AVP " + std::to_string(c);
      out.def.m_rule = flag_rule::must;
      if (colon == std::string::npos) {
        throw usage_error("--avp '" + arg + "': AVP code " + number +
                          " is not in the dictionary; give its type, e.g. --avp " + number +
                          ":UTF8String=" + text);
      }
    }
    if (colon != std::string::npos) {
      const auto type = parse_type(name.substr(colon + 1));
      if (!type) {
        throw usage_error("--avp '" + arg + "': unknown type '" + name.substr(colon + 1) +
                          "' (OctetString, Integer32, Integer64, Unsigned32, Unsigned64, "
                          "Float32, Float64, Address, Time, UTF8String, DiameterIdentity, "
                          "DiameterURI, Enumerated, IPFilterRule)");
      }
      if (*type != out.def.type) out.def.values.clear();
      out.def.type = *type;
    }
  } else if (const avp_definition* def = dict.find_avp(name)) {
    out.def = *def;
  } else {
    std::string hint;
    const std::string wanted = lower(name);
    for (const avp_definition& d : dict.avps()) {
      if (lower(d.name) == wanted) hint = " (did you mean '" + d.name + "'?)";
    }
    throw usage_error("--avp '" + arg + "': unknown AVP name '" + name + "'" + hint +
                      "; names are those of the RFC 6733 dictionary, or use CODE:TYPE=VALUE");
  }
  if (out.def.type == avp_type::grouped) {
    throw usage_error("--avp '" + arg + "': " + out.def.name +
                      " is a Grouped AVP; grouped AVPs cannot be given with --avp");
  }
  if (out.def.vendor_id == 0 &&
      (out.def.code == avp_code::origin_host || out.def.code == avp_code::origin_realm)) {
    throw usage_error("--avp '" + arg + "': use --origin-host / --origin-realm for " +
                      out.def.name);
  }
  auto value = parse_value(out.def, text);
  if (!value) {
    throw usage_error("--avp '" + arg + "': bad value '" + text + "' for " + out.def.name + " (" +
                      std::string(to_string(out.def.type)) + "): expected " + type_hint(out.def));
  }
  out.value = std::move(*value);
  return out;
}

// ---- building the request ---------------------------------------------------------------------

void add_value(message_builder& b, const avp_definition& def, const owned_value& value) {
  const std::uint8_t flags = def.default_flags();
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::int32_t>) {
          b.add_integer32(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          b.add_integer64(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::uint32_t>) {
          b.add_unsigned32(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          b.add_unsigned64(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, float>) {
          b.add_float32(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, double>) {
          b.add_float64(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::string>) {
          b.add_string(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, std::vector<std::uint8_t>>) {
          b.add_octets(def.code, v, flags, def.vendor_id);
        } else if constexpr (std::is_same_v<T, ip_address>) {
          b.add_address(def.code, v, flags, def.vendor_id);
        } else {
          b.add_time(def.code, v, flags, def.vendor_id);
        }
      },
      value);
}

struct request_plan {
  std::string address;
  std::uint32_t app = 0;
  std::uint32_t command_code = 0;
  bool proxiable = true;
  std::chrono::nanoseconds timeout{};
  std::string origin_host;
  std::string origin_realm;
  bool accounting = false;  // advertise the application as Acct-Application-Id
  std::vector<std::uint8_t> request;
};

std::uint32_t random_u32() {
  static std::mt19937 rng{std::random_device{}()};
  return static_cast<std::uint32_t>(rng());
}

// The part of a host name after its first label ("peer.example.net" -> "example.net"); empty
// for IP literals and single-label names.
std::string realm_of(const std::string& host) {
  if (ip_address::parse(host)) return {};
  const auto dot = host.find('.');
  if (dot == std::string::npos || dot + 1 >= host.size()) return {};
  return host.substr(dot + 1);
}

std::uint32_t parse_id(const std::string& text, const char* option, std::uint64_t max) {
  const auto v = parse_u64(text);
  if (!v || *v > max) {
    throw usage_error(std::string(option) + " '" + text + "': expected a number in 0.." +
                      std::to_string(max));
  }
  return static_cast<std::uint32_t>(*v);
}

request_plan plan_request(const send_options& o) {
  request_plan p;
  if (o.to.empty()) throw usage_error("--to is required (host:port of the Diameter peer)");
  std::string host;
  std::string port;
  if (split_address(o.to, host, port)) {
    throw usage_error("invalid --to address '" + o.to +
                      "': expected host:port or [IPv6]:port with a port in 1..65535");
  }
  p.address = o.to;

  if (o.cmd.empty()) throw usage_error("--cmd is required (a command code, or a name like ACR)");
  const dictionary& dict = dictionary::base();
  const command_definition* cmd_def = nullptr;
  if (std::isdigit(static_cast<unsigned char>(o.cmd[0])) != 0) {
    p.command_code = parse_id(o.cmd, "--cmd", 0xFFFFFF);
    cmd_def = dict.find_command(p.command_code);
  } else {
    cmd_def = dict.find_command(o.cmd);
    if (cmd_def == nullptr) {
      throw usage_error("--cmd '" + o.cmd + "': not a number nor a command of the dictionary");
    }
    p.command_code = cmd_def->code;
  }
  if (cmd_def != nullptr &&
      (cmd_def->code == command::capabilities_exchange ||
       cmd_def->code == command::device_watchdog || cmd_def->code == command::disconnect_peer)) {
    throw usage_error("--cmd " + o.cmd + ": " + cmd_def->name +
                      " belongs to the connection itself; diampool sends it on its own");
  }
  if (!o.app.empty()) {
    p.app = parse_id(o.app, "--app", 0xFFFFFFFF);
  } else if (cmd_def != nullptr) {
    p.app = cmd_def->application_id;
  } else {
    throw usage_error("--app is required (the Application-Id of the request)");
  }
  p.proxiable = !o.no_proxiable && (cmd_def == nullptr || cmd_def->proxiable);

  const auto seconds = parse_double(o.timeout);
  if (!seconds || !(*seconds > 0) || *seconds > 86400) {
    throw usage_error("--timeout '" + o.timeout + "': expected seconds, more than 0");
  }
  p.timeout =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(*seconds));

  if (o.origin_host.empty()) throw usage_error("--origin-host must not be empty");
  p.origin_host = o.origin_host;
  p.origin_realm = o.origin_realm;
  if (p.origin_realm.empty()) p.origin_realm = realm_of(o.origin_host);
  if (p.origin_realm.empty()) p.origin_realm = fallback_realm;
  std::string destination_realm = o.destination_realm;
  if (destination_realm.empty()) destination_realm = realm_of(host);
  if (destination_realm.empty()) destination_realm = p.origin_realm;

  std::vector<user_avp> user;
  for (const std::string& a : o.avps)
    user.push_back(parse_avp_argument(a));

  // AVPs the command adds itself are taken from --avp when given there (the first one), in
  // their usual place: Session-Id first, then the identities, then Auth-Application-Id.
  auto take = [&user](std::uint32_t code) -> std::optional<user_avp> {
    for (auto it = user.begin(); it != user.end(); ++it) {
      if (it->def.code == code && it->def.vendor_id == 0) {
        user_avp found = std::move(*it);
        user.erase(it);
        return found;
      }
    }
    return std::nullopt;
  };
  auto given = [&user](std::uint32_t code) {
    return std::any_of(user.begin(), user.end(), [code](const user_avp& a) {
      return a.def.code == code && a.def.vendor_id == 0;
    });
  };
  if (given(avp_code::destination_realm) && !o.destination_realm.empty()) {
    throw usage_error("Destination-Realm given twice (--destination-realm and --avp)");
  }
  if (given(avp_code::destination_host) && !o.destination_host.empty()) {
    throw usage_error("Destination-Host given twice (--destination-host and --avp)");
  }
  p.accounting = given(avp_code::acct_application_id);
  const auto session = take(avp_code::session_id);
  const auto dest_realm = take(avp_code::destination_realm);
  const auto dest_host = take(avp_code::destination_host);
  const auto auth_app = take(avp_code::auth_application_id);

  message_header h;
  h.flags = cmd_flags::request;
  if (p.proxiable) h.flags |= cmd_flags::proxiable;
  h.command_code = p.command_code;
  h.application_id = p.app;
  h.hop_by_hop = random_u32();
  h.end_to_end = 0;  // the client assigns one (RFC 6733 section 3)
  message_builder b(p.request, h);
  if (session) {
    add_value(b, session->def, session->value);
  } else {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    b.add_string(avp_code::session_id,
                 p.origin_host + ";" + std::to_string(now) + ";" + std::to_string(random_u32()));
  }
  b.add_string(avp_code::origin_host, p.origin_host)
      .add_string(avp_code::origin_realm, p.origin_realm);
  if (dest_realm) {
    add_value(b, dest_realm->def, dest_realm->value);
  } else {
    b.add_string(avp_code::destination_realm, destination_realm);
  }
  if (dest_host) {
    add_value(b, dest_host->def, dest_host->value);
  } else if (!o.destination_host.empty()) {
    b.add_string(avp_code::destination_host, o.destination_host);
  }
  if (auth_app) {
    add_value(b, auth_app->def, auth_app->value);
  } else if (!p.accounting) {
    b.add_unsigned32(avp_code::auth_application_id, p.app);
  }
  for (const user_avp& a : user)
    add_value(b, a.def, a.value);
  std::error_code ec;
  b.finish(ec);
  if (ec) throw usage_error("cannot build the request: " + ec.message());
  return p;
}

// ---- JSON ---------------------------------------------------------------------------------

void append_json_number(std::string& out, double v, const char* format) {
  if (!std::isfinite(v)) {
    append_json_string(out, std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity"));
    return;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  out += buf;
}

std::string iso_time(diameter_time t) {
  using namespace std::chrono;
  const auto days = floor<std::chrono::days>(t);
  const year_month_day ymd{days};
  const hh_mm_ss hms{t - days};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

// ,"value":... (and "value_name" for named values) of a non-grouped AVP; sets `ec` when the
// data does not decode as its type (the caller then adds the bytes in hex).
void append_json_value(std::string& out, const avp& a, const avp_definition& def,
                       std::error_code& ec) {
  std::string v;
  std::int64_t named = 0;
  bool has_name = false;
  switch (def.type) {
    case avp_type::integer32:
    case avp_type::enumerated: {
      const auto x = a.as_integer32(ec);
      v = std::to_string(x), named = x, has_name = true;
      break;
    }
    case avp_type::integer64:
      v = std::to_string(a.as_integer64(ec));
      break;
    case avp_type::unsigned32: {
      const auto x = a.as_unsigned32(ec);
      v = std::to_string(x), named = x, has_name = true;
      break;
    }
    case avp_type::unsigned64:
      v = std::to_string(a.as_unsigned64(ec));
      break;
    case avp_type::float32:
      append_json_number(v, static_cast<double>(a.as_float32(ec)), "%.9g");
      break;
    case avp_type::float64:
      append_json_number(v, a.as_float64(ec), "%.17g");
      break;
    case avp_type::address: {
      const auto x = a.as_address(ec);
      if (ec) break;
      if (auto ip = x.ip()) {
        append_json_string(v, ip->to_string());
      } else {
        append_json_string(v, "family " + std::to_string(x.family) + ": " + to_hex(x.address));
      }
      break;
    }
    case avp_type::time: {
      const auto x = a.as_time(ec);
      if (!ec) append_json_string(v, iso_time(x));
      break;
    }
    case avp_type::utf8_string:
      append_json_string(v, a.as_utf8(ec));
      break;
    case avp_type::diameter_identity:
    case avp_type::diameter_uri:
    case avp_type::ip_filter_rule:
      append_json_string(v, a.as_string());
      break;
    case avp_type::octet_string:
    case avp_type::grouped:
      append_json_string(v, to_hex(a.data()));
      break;
  }
  if (ec) return;
  out += ",\"value\":";
  out += v;
  if (has_name) {
    if (auto name = def.value_name(named); !name.empty()) {
      out += ",\"value_name\":";
      append_json_string(out, name);
    }
  }
}

void append_json_avps(std::string& out, avp_range range, const dictionary& dict);

void append_json_avp(std::string& out, const avp& a, const dictionary& dict) {
  const avp_definition* def = dict.find_avp(a.code(), a.vendor_id());
  out += "{\"name\":";
  if (def != nullptr) {
    append_json_string(out, def->name);
  } else {
    out += "null";
  }
  out += ",\"code\":" + std::to_string(a.code());
  out += ",\"vendor\":" + std::to_string(a.vendor_id());
  out += ",\"flags\":{\"V\":";
  out += a.is_vendor_specific() ? "true" : "false";
  out += ",\"M\":";
  out += a.is_mandatory() ? "true" : "false";
  out += ",\"P\":";
  out += (a.flags() & avp_flags::protect) != 0 ? "true" : "false";
  out += "},\"type\":";
  if (def != nullptr) {
    append_json_string(out, to_string(def->type));
  } else {
    out += "null";
  }
  if (def == nullptr) {
    out += ",\"value\":";
    append_json_string(out, to_hex(a.data()));
  } else if (def->type == avp_type::grouped) {
    out += ",\"avps\":";
    append_json_avps(out, a.children(), dict);
  } else {
    std::error_code ec;
    append_json_value(out, a, *def, ec);
    if (ec) {
      out += ",\"value\":";
      append_json_string(out, to_hex(a.data()));
      out += ",\"error\":";
      append_json_string(out, ec.message());
    }
  }
  out += '}';
}

// A JSON array of the AVPs; a malformed AVP ends it with {"error": "..."}.
void append_json_avps(std::string& out, avp_range range, const dictionary& dict) {
  out += '[';
  bool first = true;
  for (const avp& a : range) {
    if (!first) out += ',';
    first = false;
    append_json_avp(out, a, dict);
  }
  if (auto ec = range.error()) {
    if (!first) out += ',';
    out += "{\"error\":";
    append_json_string(out, ec.message());
    out += '}';
  }
  out += ']';
}

// ---- reading the answer ---------------------------------------------------------------------

struct outcome {
  std::optional<std::uint32_t> result_code;
  std::optional<std::uint32_t> experimental_result_code;
};

outcome outcome_of(const message_view& msg) {
  outcome o;
  std::error_code ec;
  if (auto rc = msg.find(avp_code::result_code)) {
    const auto v = rc->as_unsigned32(ec);
    if (!ec) o.result_code = v;
  }
  if (auto er = msg.find(avp_code::experimental_result)) {
    auto children = er->children();
    for (const avp& c : children) {
      if (c.code() == avp_code::experimental_result_code && c.vendor_id() == 0) {
        const auto v = c.as_unsigned32(ec);
        if (!ec) o.experimental_result_code = v;
        break;
      }
    }
  }
  return o;
}

std::string json_of(const message_view& msg, const outcome& oc) {
  const dictionary& dict = dictionary::base();
  const message_header& h = msg.header();
  std::string out = "{\"command_code\":" + std::to_string(h.command_code);
  out += ",\"command\":";
  if (const command_definition* c = dict.find_command(h.command_code)) {
    append_json_string(out, c->name + (h.is_request() ? "-Request" : "-Answer"));
  } else {
    out += "null";
  }
  out += ",\"flags\":{\"R\":";
  out += h.is_request() ? "true" : "false";
  out += ",\"P\":";
  out += h.is_proxiable() ? "true" : "false";
  out += ",\"E\":";
  out += h.is_error() ? "true" : "false";
  out += ",\"T\":";
  out += h.is_retransmit() ? "true" : "false";
  out += "},\"application_id\":" + std::to_string(h.application_id);
  out += ",\"hop_by_hop\":" + std::to_string(h.hop_by_hop);
  out += ",\"end_to_end\":" + std::to_string(h.end_to_end);
  out += ",\"length\":" + std::to_string(h.length);
  out += ",\"result_code\":";
  out += oc.result_code ? std::to_string(*oc.result_code) : "null";
  out += ",\"experimental_result_code\":";
  out += oc.experimental_result_code ? std::to_string(*oc.experimental_result_code) : "null";
  out += ",\"avps\":";
  append_json_avps(out, msg.avps(), dict);
  out += "}\n";
  return out;
}

std::string named_result(std::uint32_t code) {
  std::string out = std::to_string(code);
  if (const avp_definition* def = dictionary::base().find_avp(avp_code::result_code)) {
    if (auto name = def->value_name(code); !name.empty()) out += " " + std::string(name);
  }
  return out;
}

// ---- sending --------------------------------------------------------------------------------

std::string transport_error_text(const address_client& client, const request_plan& p,
                                 std::error_code ec) {
  std::string what = ec.message();
  if (!what.empty()) what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
  if (ec == error::timed_out) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " after %g s", std::chrono::duration<double>(p.timeout).count());
    what += buf;
  }
  what += " (" + p.address + ")";
  if (ec == error::handshake_failed) {
    if (auto info = client.connection(p.address); info && info->stats.handshake) {
      const handshake_failure& f = *info->stats.handshake;
      if (f.result_code != 0) what += ": CEA Result-Code " + named_result(f.result_code);
      if (!f.error_message.empty()) what += ", Error-Message \"" + f.error_message + "\"";
      if (f.result_code == 0 && !f.reason.empty()) what += ": " + f.reason;
    }
  }
  return what;
}

int run_send(const send_options& o, const common_options& common) {
  request_plan p;
  try {
    p = plan_request(o);
  } catch (const usage_error& e) {
    std::cerr << "diampool send: " << e.what() << "\n";
    return exit_usage;
  }

  pool_config cfg;
  cfg.origin_host = p.origin_host;
  cfg.origin_realm = p.origin_realm;
  if (p.accounting) {
    cfg.acct_app_ids = {p.app};
  } else {
    cfg.auth_app_ids = {p.app};
  }
  cfg.send_timeout = p.timeout;
  cfg.dial_timeout = p.timeout;
  cfg.cer_timeout = p.timeout;
  cfg.worker_threads = 1;
  cfg.drain_timeout = std::chrono::milliseconds(500);
  cfg.dpa_timeout = std::chrono::seconds(1);
  std::string field;
  if (cfg.validate(&field)) {
    std::cerr << "diampool send: invalid setting (" << field << ")\n";
    return exit_usage;
  }

  std::unique_ptr<address_client> client;
  try {
    client = std::make_unique<address_client>(cfg, common.make_logger());
  } catch (const std::exception& e) {
    std::cerr << "diampool send: " << e.what() << "\n";
    return exit_usage;
  }
  std::unique_ptr<metrics_server> metrics;
  if (!common.metrics_listen.empty()) {
    try {
      metrics = std::make_unique<metrics_server>(common.metrics_listen);
      metrics->add(*client);
    } catch (const std::exception& e) {
      std::cerr << "diampool send: --metrics-listen " << common.metrics_listen << ": " << e.what()
                << "\n";
      return 1;
    }
  }

  std::error_code ec;
  const std::vector<std::uint8_t> answer = client->send(p.address, p.request, p.timeout, ec);
  if (ec) {
    std::cerr << "diampool send: " << transport_error_text(*client, p, ec) << "\n";
    metrics.reset();
    client->close();
    return ec == error::invalid_address ? exit_usage : exit_transport;
  }
  metrics.reset();
  client->close();

  const message_view msg = message_view::parse(answer, ec);
  if (ec) {
    std::cerr << "diampool send: malformed answer (" << p.address << "): " << ec.message() << "\n";
    return exit_transport;
  }
  const outcome oc = outcome_of(msg);
  std::cout << (o.json ? json_of(msg, oc) : to_text(msg)) << std::flush;

  const std::optional<std::uint32_t> code =
      oc.result_code ? oc.result_code : oc.experimental_result_code;
  if (code && *code >= 2000 && *code < 3000 && !msg.header().is_error()) return exit_success;
  if (!code) {
    std::cerr << "diampool send: the answer carries no Result-Code"
              << (msg.header().is_error() ? " (E bit set)" : "") << "\n";
  } else {
    std::cerr << "diampool send: error answer: "
              << (oc.result_code ? "Result-Code " : "Experimental-Result-Code ")
              << named_result(*code) << (msg.header().is_error() ? " (E bit set)" : "") << "\n";
  }
  return exit_error_answer;
}

}  // namespace

void add_send(CLI::App& app, const common_options& common, int& exit_code) {
  auto o = std::make_shared<send_options>();
  CLI::App* cmd = app.add_subcommand(
      "send",
      "Send one Diameter request and print its answer. The request carries Session-Id "
      "(<origin-host>;<seconds>;<random>), Origin-Host, Origin-Realm, Destination-Realm, "
      "Destination-Host (if given), Auth-Application-Id (= --app, unless given with --avp or "
      "an Acct-Application-Id is), then the --avp AVPs in order. Exit status: 0 for a 2xxx "
      "answer, 3 for an error answer, 4 when no answer came (refused, timeout, CER/CEA "
      "failed...), 2 for bad arguments.");
  cmd->add_option("--to", o->to, "host:port or [IPv6]:port of the peer (required)");
  cmd->add_option("--app", o->app,
                  "Application-Id of the request (required unless --cmd names a command of the "
                  "dictionary); advertised in the CER too");
  cmd->add_option("--cmd", o->cmd, "Command code (required), or a dictionary name (e.g. ACR)");
  cmd->add_option("--avp", o->avps,
                  "AVP to add, repeatable: NAME=VALUE with a name of the RFC 6733 dictionary "
                  "(e.g. User-Name=alice, Event-Timestamp=2024-05-01T12:00:00Z, "
                  "Accounting-Record-Type=EVENT_RECORD, Host-IP-Address=192.0.2.1), or "
                  "CODE[/VENDOR]:TYPE=VALUE for others (e.g. 1000/10415:Unsigned32=7). "
                  "OctetString values are text, or hex after 'hex:'. Time: ISO-8601 or seconds "
                  "since 1970. Grouped AVPs are not supported")
      ->allow_extra_args(false);
  cmd->add_option("--timeout", o->timeout,
                  "Seconds the whole exchange may take (dial, CER/CEA, answer)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the answer as a JSON object instead of an AVP tree");
  cmd->add_option("--origin-host", o->origin_host, "Origin-Host of the CER and the request")
      ->capture_default_str();
  cmd->add_option("--origin-realm", o->origin_realm,
                  "Origin-Realm (default: --origin-host without its first label, or example.com)");
  cmd->add_option("--destination-realm", o->destination_realm,
                  "Destination-Realm (default: the --to host without its first label when it "
                  "is a name with dots, else the Origin-Realm)");
  cmd->add_option("--destination-host", o->destination_host, "Destination-Host (default: none)");
  cmd->add_flag("--no-proxiable", o->no_proxiable,
                "Clear the P bit (set by default, or as the dictionary says for its commands)");
  cmd->callback([o, &common, &exit_code] { exit_code = run_send(*o, common); });
}

}  // namespace diampool::cli
