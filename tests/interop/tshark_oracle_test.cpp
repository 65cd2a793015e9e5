// Interop: tshark's Diameter dissector as an independent oracle for message_builder.
//
// Every message below is built with diampool::message_builder and described a second time, by
// hand, as what a correct decoder must see (command, flags, ids, each AVP's code, flags, vendor,
// length, padding and value, grouped children). The bytes go through text2pcap into a pcap
// and tshark decodes them with its own dissector and dictionary; the test reads tshark's PDML
// and holds it to the description, AVP by AVP, and requires that tshark finds nothing
// malformed and raises no expert warning or error. Two deliberately corrupted packets at the
// end prove that the malformed/expert checks do fire.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/message.hpp"
#include "diampool/print.hpp"

namespace diampool {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

// ---------------------------------------------------------------------------------------------
// Running external tools

std::optional<fs::path> find_program(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const fs::path candidate = fs::path(dirs.substr(0, colon)) / name;
    std::error_code ec;
    if (!candidate.parent_path().empty() && fs::is_regular_file(candidate, ec) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

std::string read_text_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct run_result {
  int exit_status = -1;  ///< -1 unless the command exited normally.
  std::string out;
  std::string err;
};

// Runs `command` with /bin/sh, stdout captured through the pipe and stderr through a file.
run_result run(const std::string& command, const fs::path& stderr_file) {
  run_result r;
  FILE* pipe = ::popen((command + " 2>" + shell_quote(stderr_file.string())).c_str(), "r");
  if (pipe == nullptr) {
    r.err = "popen failed";
    return r;
  }
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) {
    r.out.append(buf, n);
  }
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) r.exit_status = WEXITSTATUS(status);
  r.err = read_text_file(stderr_file);
  return r;
}

// stderr lines other than the notice every Wireshark tool prints when run as root.
std::string unexpected_stderr(std::string_view err) {
  std::string out;
  std::istringstream in{std::string(err)};
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of('-') == std::string::npos) continue;  // text2pcap's rule
    if (line.find("This could be dangerous.") != std::string::npos) continue;
    out += line + "\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// A minimal reader for tshark's PDML (XML without text content: packet, proto, field elements)

struct pdml_node {
  std::string tag;
  std::vector<std::pair<std::string, std::string>> attrs;
  std::vector<pdml_node> children;

  std::string attr(std::string_view key) const {
    for (const auto& [k, v] : attrs) {
      if (k == key) return v;
    }
    return {};
  }
  std::string name() const { return attr("name"); }
  std::string show() const { return attr("show"); }
  std::string showname() const { return attr("showname"); }

  /// Direct children whose name attribute is `name`.
  std::vector<const pdml_node*> all(std::string_view name) const {
    std::vector<const pdml_node*> out;
    for (const auto& c : children) {
      if (c.attr("name") == name) out.push_back(&c);
    }
    return out;
  }
  /// The only direct child named `name`, or null if there is none (or more than one).
  const pdml_node* one(std::string_view name) const {
    const auto v = all(name);
    return v.size() == 1 ? v.front() : nullptr;
  }
};

void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const auto semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s.substr(i);
      break;
    }
    const auto ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out += '&';
    } else if (ent == "lt") {
      out += '<';
    } else if (ent == "gt") {
      out += '>';
    } else if (ent == "quot") {
      out += '"';
    } else if (ent == "apos") {
      out += '\'';
    } else if (ent.size() > 1 && ent[0] == '#') {
      const bool hex = ent[1] == 'x' || ent[1] == 'X';
      append_utf8(
          out, std::strtoul(std::string(ent.substr(hex ? 2 : 1)).c_str(), nullptr, hex ? 16 : 10));
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

// Parses PDML into `root` (whose children are the top-level elements). False on bad nesting.
bool parse_pdml(std::string_view text, pdml_node& root, std::string& error) {
  std::vector<pdml_node*> open{&root};
  auto is_name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.' ||
           c == ':';
  };
  std::size_t i = 0;
  while ((i = text.find('<', i)) != std::string_view::npos) {
    if (text.substr(i, 4) == "<!--") {
      i = text.find("-->", i);
      if (i == std::string_view::npos) break;
      i += 3;
      continue;
    }
    if (i + 1 < text.size() && (text[i + 1] == '?' || text[i + 1] == '!')) {
      i = text.find('>', i);
      if (i == std::string_view::npos) break;
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '/') {
      const auto end = text.find('>', i);
      if (end == std::string_view::npos) break;
      const auto tag = text.substr(i + 2, end - i - 2);
      if (open.size() < 2 || open.back()->tag != tag) {
        error = "unbalanced </" + std::string(tag) + "> at offset " + std::to_string(i);
        return false;
      }
      open.pop_back();
      i = end + 1;
      continue;
    }
    ++i;
    const std::size_t name_start = i;
    while (i < text.size() && is_name_char(text[i])) {
      ++i;
    }
    pdml_node& node = open.back()->children.emplace_back();
    node.tag = std::string(text.substr(name_start, i - name_start));
    for (;;) {
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) {
        ++i;
      }
      if (i >= text.size()) {
        error = "unterminated element " + node.tag;
        return false;
      }
      if (text.substr(i, 2) == "/>") {
        i += 2;
        break;
      }
      if (text[i] == '>') {
        ++i;
        open.push_back(&node);  // its parent's children do not change while it is open
        break;
      }
      const std::size_t key_start = i;
      while (i < text.size() && is_name_char(text[i])) {
        ++i;
      }
      const auto key = text.substr(key_start, i - key_start);
      if (key.empty() || text.substr(i, 2) != "=\"") {
        error = "bad attribute in " + node.tag + " at offset " + std::to_string(i);
        return false;
      }
      i += 2;
      const auto close = text.find('"', i);
      if (close == std::string_view::npos) {
        error = "unterminated attribute value";
        return false;
      }
      node.attrs.emplace_back(std::string(key), xml_unescape(text.substr(i, close - i)));
      i = close + 1;
    }
  }
  if (open.size() != 1) {
    error = "unclosed element " + open.back()->tag;
    return false;
  }
  return true;
}

// Every node named `name` anywhere under `n`.
void collect(const pdml_node& n, std::string_view name, std::vector<const pdml_node*>& out) {
  for (const auto& c : n.children) {
    if (c.name() == name) out.push_back(&c);
    collect(c, name, out);
  }
}

// ---------------------------------------------------------------------------------------------
// What tshark must see: a hand-written description of each message, independent of the codec

constexpr std::size_t pad4(std::size_t n) {
  return (n + 3) & ~std::size_t{3};
}

struct avp_spec {
  std::string name;  ///< tshark's dictionary name; the value field is "diameter.<name>".
  std::uint32_t code = 0;
  std::uint8_t flags = 0;  ///< V, M, P bits as on the wire.
  std::uint32_t vendor_id = 0;
  std::string vendor_name;  ///< tshark's name of the vendor (summary "vnd=...").
  std::size_t data_size = 0;
  bool grouped = false;
  std::string show;  ///< The value field's "show" attribute (not checked when empty).
  std::string val;   ///< The value as in the AVP summary line ("val=..."); none if empty.
  /// Sub-fields of the value field, as (suffix after "diameter.<name>.", show).
  std::vector<std::pair<std::string, std::string>> sub;
  /// Fields tshark adds beside the value for some types, as (field name, show).
  std::vector<std::pair<std::string, std::string>> extra;
  std::vector<avp_spec> children;

  std::size_t header_size() const { return (flags & avp_flags::vendor) != 0 ? 12 : 8; }
  std::size_t length() const { return header_size() + data_size; }
  std::size_t padded_length() const { return pad4(length()); }

  avp_spec vendor(std::uint32_t id, std::string tshark_name) && {
    flags |= avp_flags::vendor;
    vendor_id = id;
    vendor_name = std::move(tshark_name);
    return std::move(*this);
  }
};

constexpr std::uint8_t m_flag = avp_flags::mandatory;

avp_spec scalar(std::string name, std::uint32_t code, std::size_t size, std::string show,
                std::uint8_t flags, std::string val = {}) {
  avp_spec a;
  a.name = std::move(name);
  a.code = code;
  a.flags = flags;
  a.data_size = size;
  a.val = val.empty() ? show : std::move(val);
  a.show = std::move(show);
  return a;
}

avp_spec text(std::string name, std::uint32_t code, std::string v, std::uint8_t flags = m_flag) {
  const auto size = v.size();
  return scalar(std::move(name), code, size, std::move(v), flags);
}

avp_spec u32(std::string name, std::uint32_t code, std::uint32_t v, std::uint8_t flags = m_flag) {
  return scalar(std::move(name), code, 4, std::to_string(v), flags);
}

/// Vendor-Id and Supported-Vendor-Id: tshark also names the vendor in a diameter.vendorId field.
avp_spec vendor_id_avp(std::string name, std::uint32_t code, std::uint32_t v) {
  avp_spec a = u32(std::move(name), code, v);
  a.extra = {{"diameter.vendorId", std::to_string(v)}};
  return a;
}

avp_spec u64(std::string name, std::uint32_t code, std::uint64_t v, std::uint8_t flags = m_flag) {
  return scalar(std::move(name), code, 8, std::to_string(v), flags);
}

avp_spec i32(std::string name, std::uint32_t code, std::int32_t v, std::uint8_t flags = m_flag) {
  return scalar(std::move(name), code, 4, std::to_string(v), flags);
}

avp_spec i64(std::string name, std::uint32_t code, std::int64_t v, std::uint8_t flags = m_flag) {
  return scalar(std::move(name), code, 8, std::to_string(v), flags);
}

/// Enumerated (and Unsigned32 with named values): tshark shows the number and, in the
/// summary, "NAME (number)".
avp_spec named(std::string name, std::uint32_t code, std::int64_t v, const std::string& label,
               std::uint8_t flags = m_flag) {
  return scalar(std::move(name), code, 4, std::to_string(v), flags,
                label + " (" + std::to_string(v) + ")");
}

/// Float32 / Float64 written as tshark prints them.
avp_spec floating(std::string name, std::uint32_t code, std::size_t size, std::string shown,
                  std::uint8_t flags = m_flag) {
  return scalar(std::move(name), code, size, std::move(shown), flags);
}

/// Time, as tshark prints an absolute time with TZ=UTC.
avp_spec time_avp(std::string name, std::uint32_t code, std::string shown,
                  std::uint8_t flags = m_flag) {
  return scalar(std::move(name), code, 4, std::move(shown), flags);
}

/// OctetString given as colon-separated hex, the way tshark shows bytes.
avp_spec octets(std::string name, std::uint32_t code, std::string colon_hex,
                std::uint8_t flags = m_flag) {
  const std::size_t size = colon_hex.empty() ? 0 : (colon_hex.size() + 1) / 3;
  std::string plain = colon_hex;
  std::erase(plain, ':');
  return scalar(std::move(name), code, size, std::move(colon_hex), flags, std::move(plain));
}

/// Address: the family and the address in its usual text form (libc's inet_pton, not diampool,
/// gives the raw bytes tshark must show).
avp_spec address(std::string name, std::uint32_t code, bool v6, std::string ip,
                 std::uint8_t flags = m_flag) {
  unsigned char raw[16] = {};
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, ip.c_str(), raw) != 1) {
    throw std::runtime_error("inet_pton rejects " + ip);
  }
  std::string show = v6 ? "00:02" : "00:01";
  char byte[4];
  for (std::size_t i = 0; i < (v6 ? 16U : 4U); ++i) {
    std::snprintf(byte, sizeof byte, ":%02x", raw[i]);
    show += byte;
  }
  avp_spec a = scalar(std::move(name), code, v6 ? 18 : 6, std::move(show), flags, ip);
  a.sub = {{"addr_family", v6 ? "2" : "1"}, {v6 ? "IPv6" : "IPv4", std::move(ip)}};
  return a;
}

avp_spec group(std::string name, std::uint32_t code, std::vector<avp_spec> children,
               std::uint8_t flags = m_flag) {
  avp_spec a;
  a.name = std::move(name);
  a.code = code;
  a.flags = flags;
  a.grouped = true;
  for (const auto& c : children) {
    a.data_size += c.padded_length();
  }
  a.children = std::move(children);
  return a;
}

struct message_spec {
  std::uint32_t command_code = 0;
  std::uint8_t flags = 0;
  std::uint32_t application_id = 0;
  std::uint32_t hop_by_hop = 0;
  std::uint32_t end_to_end = 0;
  std::vector<avp_spec> avps;
  /// Request: the frame tshark should find its answer in; answer: the frame of its request.
  int matched_frame = 0;

  std::size_t length() const {
    std::size_t n = header_size;
    for (const auto& a : avps) {
      n += a.padded_length();
    }
    return n;
  }
};

struct oracle_case {
  std::string label;
  std::vector<std::uint8_t> bytes;  ///< As built by message_builder.
  message_spec spec;
};

// ---------------------------------------------------------------------------------------------
// The messages

message_header header_of(const message_spec& s) {
  message_header h;
  h.flags = s.flags;
  h.command_code = s.command_code;
  h.application_id = s.application_id;
  h.hop_by_hop = s.hop_by_hop;
  h.end_to_end = s.end_to_end;
  return h;
}

template <typename Fill>
oracle_case make_case(std::string label, message_spec spec, Fill fill) {
  oracle_case c{std::move(label), {}, std::move(spec)};
  message_builder b(c.bytes, header_of(c.spec));
  fill(b);
  std::error_code ec;
  const auto out = b.finish(ec);
  if (ec) throw std::runtime_error("building " + c.label + ": " + ec.message());
  if (out.data() != c.bytes.data() || out.size() != c.bytes.size()) {
    throw std::runtime_error("building " + c.label + ": finish() does not span the message");
  }
  return c;
}

constexpr std::uint8_t no_flags = 0;
constexpr std::uint32_t ericsson = 193;

diameter_time utc(year_month_day d, seconds time_of_day) {
  return diameter_time{sys_days{d}.time_since_epoch() + time_of_day};
}

ip_address ip(std::string_view text) {
  auto a = ip_address::parse(text);
  if (!a) throw std::runtime_error("ip_address::parse rejects " + std::string(text));
  return *a;
}

// The reference CER (accepted by freeDiameter 1.2.1 and Erlang/OTP diameter), as built by the
// builder.
oracle_case cer_case() {
  message_spec s{command::capabilities_exchange, cmd_flags::request, 0, 1, 1, {}, 2};
  s.avps = {text("Origin-Host", 264, "client.example.com"),
            text("Origin-Realm", 296, "example.com"),
            address("Host-IP-Address", 257, false, "127.0.0.1"), vendor_id_avp("Vendor-Id", 266, 0),
            text("Product-Name", 269, "lab-pyclient", no_flags),
            // 16777215 is not an assigned application: tshark names it "Unknown".
            named("Auth-Application-Id", 258, 16777215, "Unknown")};
  return make_case("CER", std::move(s), [](message_builder& b) {
    b.add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_address(avp_code::host_ip_address, ip_address::v4({127, 0, 0, 1}))
        .add_unsigned32(avp_code::vendor_id, vendor::ietf)
        .add_string(avp_code::product_name, "lab-pyclient", no_flags)
        .add_unsigned32(avp_code::auth_application_id, 16777215);
  });
}

std::vector<oracle_case> build_cases() {
  std::vector<oracle_case> cases;
  // Frame numbers in comments: the pcap holds the cases in this order, frame 1 first.

  cases.push_back(cer_case());  // 1

  {  // 2: CEA
    message_spec s{command::capabilities_exchange, 0, 0, 1, 1, {}, 1};
    s.avps = {
        named("Result-Code", 268, 2001, "DIAMETER_SUCCESS"),
        text("Origin-Host", 264, "server.example.net"),
        text("Origin-Realm", 296, "example.net"),
        address("Host-IP-Address", 257, true, "2001:db8::1"),
        vendor_id_avp("Vendor-Id", 266, 10415),
        text("Product-Name", 269, "diampool oracle peer", no_flags),
        u32("Firmware-Revision", 267, 0x01020304, no_flags),
        vendor_id_avp("Supported-Vendor-Id", 265, 10415),
        vendor_id_avp("Supported-Vendor-Id", 265, ericsson),
        group("Vendor-Specific-Application-Id", 260,
              {vendor_id_avp("Vendor-Id", 266, 10415),
               named("Auth-Application-Id", 258, 16777251, "3GPP S6a/S6d")}),
        named("Inband-Security-Id", 299, 0, "NO_INBAND_SECURITY"),
    };
    cases.push_back(make_case("CEA", std::move(s), [](message_builder& b) {
      b.add_unsigned32(avp_code::result_code, result_code::success)
          .add_string(avp_code::origin_host, "server.example.net")
          .add_string(avp_code::origin_realm, "example.net")
          .add_address(avp_code::host_ip_address, ip("2001:db8::1"))
          .add_unsigned32(avp_code::vendor_id, vendor::tgpp)
          .add_string(avp_code::product_name, "diampool oracle peer", no_flags)
          .add_unsigned32(avp_code::firmware_revision, 0x01020304, no_flags)
          .add_unsigned32(avp_code::supported_vendor_id, vendor::tgpp)
          .add_unsigned32(avp_code::supported_vendor_id, ericsson);
      const auto g = b.begin_group(avp_code::vendor_specific_application_id);
      b.add_unsigned32(avp_code::vendor_id, vendor::tgpp)
          .add_unsigned32(avp_code::auth_application_id, 16777251)
          .end_group(g);
      b.add_integer32(avp_code::inband_security_id, 0);
    }));
  }

  {  // 3: DWR
    message_spec s{command::device_watchdog, cmd_flags::request, 0, 2, 2, {}, 4};
    s.avps = {text("Origin-Host", 264, "client.example.com"),
              text("Origin-Realm", 296, "example.com"), u32("Origin-State-Id", 278, 1700000000)};
    cases.push_back(make_case("DWR", std::move(s), [](message_builder& b) {
      b.add_string(avp_code::origin_host, "client.example.com")
          .add_string(avp_code::origin_realm, "example.com")
          .add_unsigned32(avp_code::origin_state_id, 1700000000);
    }));
  }

  {  // 4: DWA
    message_spec s{command::device_watchdog, 0, 0, 2, 2, {}, 3};
    s.avps = {named("Result-Code", 268, 2001, "DIAMETER_SUCCESS"),
              text("Origin-Host", 264, "server.example.net"),
              text("Origin-Realm", 296, "example.net")};
    cases.push_back(make_case("DWA", std::move(s), [](message_builder& b) {
      b.add_unsigned32(avp_code::result_code, result_code::success)
          .add_string(avp_code::origin_host, "server.example.net")
          .add_string(avp_code::origin_realm, "example.net");
    }));
  }

  const std::string session = "client.example.com;1700000000;42;acct";
  const auto proxy_info = [] {
    return group("Proxy-Info", 284,
                 {text("Proxy-Host", 280, "relay.example.org"),
                  octets("Proxy-State", 33, "00:01:02:fe:ff")});
  };
  const auto add_proxy_info = [](message_builder& b) {
    const std::uint8_t state[] = {0x00, 0x01, 0x02, 0xfe, 0xff};
    const auto g = b.begin_group(avp_code::proxy_info);
    b.add_string(avp_code::proxy_host, "relay.example.org")
        .add_octets(avp_code::proxy_state, state)
        .end_group(g);
  };

  {  // 5: ACR with a Time after the 2036 NTP wrap
    message_spec s{command::accounting,
                   cmd_flags::request | cmd_flags::proxiable,
                   application::base_accounting,
                   0x01020304,
                   0xA1B2C3D4,
                   {},
                   6};
    s.avps = {
        text("Session-Id", 263, session),
        text("Origin-Host", 264, "client.example.com"),
        text("Origin-Realm", 296, "example.com"),
        text("Destination-Realm", 283, "example.net"),
        named("Accounting-Record-Type", 480, 3, "Interim Record"),
        u32("Accounting-Record-Number", 485, 7),
        named("Acct-Application-Id", 259, 3, "Diameter Base Accounting"),
        u64("Accounting-Sub-Session-Id", 287, 0x10000002AULL),
        u32("Acct-Interim-Interval", 85, 300),
        time_avp("Event-Timestamp", 55, "Feb 29, 2040 12:34:56.000000000 UTC"),
        octets("Class", 25, "00:ff:10:80:7f:41:3b"),
        proxy_info(),
    };
    cases.push_back(make_case("ACR", std::move(s), [&](message_builder& b) {
      const std::uint8_t cls[] = {0x00, 0xff, 0x10, 0x80, 0x7f, 0x41, 0x3b};
      b.add_string(avp_code::session_id, session)
          .add_string(avp_code::origin_host, "client.example.com")
          .add_string(avp_code::origin_realm, "example.com")
          .add_string(avp_code::destination_realm, "example.net")
          .add_integer32(avp_code::accounting_record_type, 3)
          .add_unsigned32(avp_code::accounting_record_number, 7)
          .add_unsigned32(avp_code::acct_application_id, application::base_accounting)
          .add_unsigned64(avp_code::accounting_sub_session_id, 0x10000002AULL)
          .add_unsigned32(avp_code::acct_interim_interval, 300)
          .add_time(avp_code::event_timestamp, utc(2040y / February / 29, 12h + 34min + 56s))
          .add_octets(avp_code::class_, cls);
      add_proxy_info(b);
    }));
  }

  {  // 6: ACA with a Time before the wrap
    message_spec s{command::accounting,
                   cmd_flags::proxiable,
                   application::base_accounting,
                   0x01020304,
                   0xA1B2C3D4,
                   {},
                   5};
    s.avps = {
        text("Session-Id", 263, session),
        named("Result-Code", 268, 2001, "DIAMETER_SUCCESS"),
        text("Origin-Host", 264, "server.example.net"),
        text("Origin-Realm", 296, "example.net"),
        named("Accounting-Record-Type", 480, 3, "Interim Record"),
        u32("Accounting-Record-Number", 485, 7),
        time_avp("Event-Timestamp", 55, "Nov 14, 2023 22:13:20.000000000 UTC"),
        proxy_info(),
    };
    cases.push_back(make_case("ACA", std::move(s), [&](message_builder& b) {
      b.add_string(avp_code::session_id, session)
          .add_unsigned32(avp_code::result_code, result_code::success)
          .add_string(avp_code::origin_host, "server.example.net")
          .add_string(avp_code::origin_realm, "example.net")
          .add_integer32(avp_code::accounting_record_type, 3)
          .add_unsigned32(avp_code::accounting_record_number, 7)
          .add_time(avp_code::event_timestamp, utc(2023y / November / 14, 22h + 13min + 20s));
      add_proxy_info(b);
    }));
  }

  {  // 7: ACR stamped at the first second of NTP era 1 (wire value 0)
    message_spec s{command::accounting,
                   cmd_flags::request | cmd_flags::proxiable,
                   application::base_accounting,
                   0x01020305,
                   0xA1B2C3D5,
                   {},
                   8};
    s.avps = {
        text("Session-Id", 263, session),
        text("Origin-Host", 264, "client.example.com"),
        text("Origin-Realm", 296, "example.com"),
        text("Destination-Realm", 283, "example.net"),
        named("Accounting-Record-Type", 480, 4, "Stop Record"),
        u32("Accounting-Record-Number", 485, 8),
        time_avp("Event-Timestamp", 55, "Feb  7, 2036 06:28:16.000000000 UTC"),
    };
    cases.push_back(make_case("ACR at the wrap", std::move(s), [&](message_builder& b) {
      b.add_string(avp_code::session_id, session)
          .add_string(avp_code::origin_host, "client.example.com")
          .add_string(avp_code::origin_realm, "example.com")
          .add_string(avp_code::destination_realm, "example.net")
          .add_integer32(avp_code::accounting_record_type, 4)
          .add_unsigned32(avp_code::accounting_record_number, 8)
          .add_time(avp_code::event_timestamp, utc(2036y / February / 7, 6h + 28min + 16s));
    }));
  }

  {  // 8: ACA stamped at the last second of NTP era 0 (wire value 0xFFFFFFFF)
    message_spec s{command::accounting,
                   cmd_flags::proxiable,
                   application::base_accounting,
                   0x01020305,
                   0xA1B2C3D5,
                   {},
                   7};
    s.avps = {
        text("Session-Id", 263, session),
        named("Result-Code", 268, 2001, "DIAMETER_SUCCESS"),
        text("Origin-Host", 264, "server.example.net"),
        text("Origin-Realm", 296, "example.net"),
        named("Accounting-Record-Type", 480, 4, "Stop Record"),
        u32("Accounting-Record-Number", 485, 8),
        time_avp("Event-Timestamp", 55, "Feb  7, 2036 06:28:15.000000000 UTC"),
    };
    cases.push_back(make_case("ACA at the wrap", std::move(s), [&](message_builder& b) {
      b.add_string(avp_code::session_id, session)
          .add_unsigned32(avp_code::result_code, result_code::success)
          .add_string(avp_code::origin_host, "server.example.net")
          .add_string(avp_code::origin_realm, "example.net")
          .add_integer32(avp_code::accounting_record_type, 4)
          .add_unsigned32(avp_code::accounting_record_number, 8)
          .add_time(avp_code::event_timestamp, utc(2036y / February / 7, 6h + 28min + 15s));
    }));
  }

  // Integer64, Float32, Float64 and a vendor-specific AVP, in a Credit-Control request that
  // carries the T flag. Cost-Information nests two levels; the error answer's Failed-AVP three.
  const std::string cc_session = "client.example.com;1700000000;43;cc";
  const auto cost_information = [] {
    return group("Cost-Information", 423,
                 {group("Unit-Value", 445,
                        {i64("Value-Digits", 447, -123456789012LL), i32("Exponent", 429, -2)}),
                  u32("Currency-Code", 425, 978)});
  };
  const auto add_cost_information = [](message_builder& b) {
    const auto ci = b.begin_group(423);
    const auto uv = b.begin_group(445);
    b.add_integer64(447, -123456789012LL).add_integer32(429, -2).end_group(uv);
    b.add_unsigned32(425, 978).end_group(ci);
  };

  {  // 9: CCR, R|P|T
    message_spec s{272,
                   cmd_flags::request | cmd_flags::proxiable | cmd_flags::retransmit,
                   application::credit_control,
                   0xFFFFFFFF,
                   0x80000000,
                   {},
                   10};
    s.avps = {
        text("Session-Id", 263, cc_session),
        text("Origin-Host", 264, "client.example.com"),
        text("Origin-Realm", 296, "example.com"),
        text("Destination-Realm", 283, "example.net"),
        named("Auth-Application-Id", 258, 4, "Diameter Credit Control Application"),
        named("CC-Request-Type", 416, 1, "INITIAL_REQUEST"),
        u32("CC-Request-Number", 415, 0),
        cost_information(),
        group("TMOD-1", 495,
              {floating("Token-Rate", 496, 4, "1.5", no_flags),
               floating("Bucket-Depth", 497, 4, "1024.25", no_flags)}),
        floating("Cost", 603, 8, "1234.5625", m_flag).vendor(ericsson, "Ericsson"),
    };
    cases.push_back(make_case("CCR", std::move(s), [&](message_builder& b) {
      b.add_string(avp_code::session_id, cc_session)
          .add_string(avp_code::origin_host, "client.example.com")
          .add_string(avp_code::origin_realm, "example.com")
          .add_string(avp_code::destination_realm, "example.net")
          .add_unsigned32(avp_code::auth_application_id, application::credit_control)
          .add_integer32(416, 1)
          .add_unsigned32(415, 0);
      add_cost_information(b);
      const auto tmod = b.begin_group(495);
      b.add_float32(496, 1.5F, no_flags).add_float32(497, 1024.25F, no_flags).end_group(tmod);
      b.add_float64(603, 1234.5625, avp_flags::mandatory, ericsson);
    }));
  }

  {  // 10: the E-bit answer
    message_spec s{272,
                   cmd_flags::proxiable | cmd_flags::error,
                   application::credit_control,
                   0xFFFFFFFF,
                   0x80000000,
                   {},
                   9};
    s.avps = {
        text("Session-Id", 263, cc_session),
        text("Origin-Host", 264, "server.example.net"),
        text("Origin-Realm", 296, "example.net"),
        named("Result-Code", 268, 3001, "DIAMETER_COMMAND_UNSUPPORTED"),
        text("Error-Message", 281, "Credit-Control is not served here", no_flags),
        group("Failed-AVP", 279, {cost_information()}),
    };
    cases.push_back(make_case("CCA with E bit", std::move(s), [&](message_builder& b) {
      b.add_string(avp_code::session_id, cc_session)
          .add_string(avp_code::origin_host, "server.example.net")
          .add_string(avp_code::origin_realm, "example.net")
          .add_unsigned32(avp_code::result_code, result_code::command_unsupported)
          .add_string(avp_code::error_message, "Credit-Control is not served here", no_flags);
      const auto g = b.begin_group(avp_code::failed_avp);
      add_cost_information(b);
      b.end_group(g);
    }));
  }

  {  // 11: DPR
    message_spec s{command::disconnect_peer, cmd_flags::request, 0, 3, 3, {}, 12};
    s.avps = {text("Origin-Host", 264, "client.example.com"),
              text("Origin-Realm", 296, "example.com"),
              named("Disconnect-Cause", 273, 2, "DO_NOT_WANT_TO_TALK_TO_YOU")};
    cases.push_back(make_case("DPR", std::move(s), [](message_builder& b) {
      b.add_string(avp_code::origin_host, "client.example.com")
          .add_string(avp_code::origin_realm, "example.com")
          .add_integer32(avp_code::disconnect_cause, disconnect_cause::do_not_want_to_talk_to_you);
    }));
  }

  {  // 12: DPA
    message_spec s{command::disconnect_peer, 0, 0, 3, 3, {}, 11};
    s.avps = {named("Result-Code", 268, 2001, "DIAMETER_SUCCESS"),
              text("Origin-Host", 264, "server.example.net"),
              text("Origin-Realm", 296, "example.net")};
    cases.push_back(make_case("DPA", std::move(s), [](message_builder& b) {
      b.add_unsigned32(avp_code::result_code, result_code::success)
          .add_string(avp_code::origin_host, "server.example.net")
          .add_string(avp_code::origin_realm, "example.net");
    }));
  }
  return cases;
}

// Negative controls, appended after the cases: broken on purpose, tshark must object.
std::vector<std::vector<std::uint8_t>> build_corrupted() {
  std::vector<std::vector<std::uint8_t>> out;
  message_header h;
  h.flags = cmd_flags::request;
  h.command_code = command::device_watchdog;
  {
    // The last AVP's length claims 40 bytes where the message holds 12.
    h.hop_by_hop = h.end_to_end = 0x7001;
    std::vector<std::uint8_t> m;
    message_builder b(m, h);
    b.add_string(avp_code::origin_host, "client.example.com")
        .add_unsigned32(avp_code::origin_state_id, 1);
    b.finish();
    m[m.size() - 12 + 7] = 40;
    out.push_back(std::move(m));
  }
  {
    // An AVP length below the 8-byte AVP header.
    h.hop_by_hop = h.end_to_end = 0x7002;
    std::vector<std::uint8_t> m;
    message_builder b(m, h);
    b.add_string(avp_code::origin_host, "client.example.com")
        .add_unsigned32(avp_code::origin_state_id, 1);
    b.finish();
    m[m.size() - 12 + 7] = 4;
    out.push_back(std::move(m));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The tshark run, shared by the tests

// text2pcap input: each packet as offset-prefixed hex lines, packets separated by blank lines.
std::string text2pcap_input(const std::vector<std::vector<std::uint8_t>>& packets) {
  std::string out;
  char line[24];
  for (const auto& p : packets) {
    for (std::size_t off = 0; off < p.size(); off += 16) {
      std::snprintf(line, sizeof line, "%06zx", off);
      out += line;
      for (std::size_t i = off; i < p.size() && i < off + 16; ++i) {
        std::snprintf(line, sizeof line, " %02x", p[i]);
        out += line;
      }
      out += '\n';
    }
    out += '\n';
  }
  return out;
}

struct tshark_run {
  std::string setup_error;  ///< Why the run could not be made; every test fails with it.
  std::vector<oracle_case> cases;
  std::size_t corrupted_count = 0;
  run_result text2pcap;
  run_result tshark;
  pdml_node pdml;
  std::vector<const pdml_node*> packets;
};

class tshark_oracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run_ = new tshark_run;
    auto& r = *run_;
    const auto text2pcap = find_program("text2pcap");
    const auto tshark = find_program("tshark");
    if (!text2pcap || !tshark) {
      r.setup_error =
          "text2pcap and tshark are needed (Debian packages wireshark-common and tshark): "
          "run scripts/bootstrap";
      return;
    }
    std::string dir_template = std::string(DIAMPOOL_BINARY_DIR) + "/tshark_oracle.XXXXXX";
    if (::mkdtemp(dir_template.data()) == nullptr) {
      r.setup_error = "mkdtemp failed under " DIAMPOOL_BINARY_DIR;
      return;
    }
    scratch_ = dir_template;
    fs::create_directory(scratch_ / "home");

    std::vector<std::vector<std::uint8_t>> corrupted;
    try {
      r.cases = build_cases();
      corrupted = build_corrupted();
    } catch (const std::exception& e) {
      r.setup_error = e.what();
      return;
    }
    std::vector<std::vector<std::uint8_t>> packets;
    for (const auto& c : r.cases) {
      packets.push_back(c.bytes);
    }
    r.corrupted_count = corrupted.size();
    for (auto& p : corrupted) {
      packets.push_back(std::move(p));
    }
    std::ofstream(scratch_ / "in.txt") << text2pcap_input(packets);

    r.text2pcap = run(shell_quote(text2pcap->string()) + " -q -T 40000,3868 " +
                          shell_quote((scratch_ / "in.txt").string()) + " " +
                          shell_quote((scratch_ / "out.pcap").string()),
                      scratch_ / "text2pcap.err");
    if (r.text2pcap.exit_status != 0) {
      r.setup_error = "text2pcap failed (exit " + std::to_string(r.text2pcap.exit_status) +
                      "): " + r.text2pcap.err;
      return;
    }
    // A fresh HOME (no user preferences), UTC for time values, no name resolution, and every
    // preference that matters given on the command line.
    r.tshark = run("cd " + shell_quote(scratch_.string()) +
                       " && HOME=" + shell_quote((scratch_ / "home").string()) +
                       " XDG_CONFIG_HOME=" + shell_quote((scratch_ / "home").string()) +
                       " TZ=UTC LC_ALL=C " + shell_quote(tshark->string()) +
                       " -n -2 -r out.pcap -T pdml"
                       " -d tcp.port==3868,diameter"
                       " -o tcp.desegment_tcp_streams:TRUE"
                       " -o tcp.check_checksum:FALSE",
                   scratch_ / "tshark.err");
    if (r.tshark.exit_status != 0) {
      r.setup_error =
          "tshark failed (exit " + std::to_string(r.tshark.exit_status) + "): " + r.tshark.err;
      return;
    }
    std::ofstream(scratch_ / "out.pdml") << r.tshark.out;  // for DIAMPOOL_KEEP_SCRATCH
    std::string error;
    if (!parse_pdml(r.tshark.out, r.pdml, error)) {
      r.setup_error = "cannot read tshark's PDML: " + error;
      return;
    }
    for (const auto& top : r.pdml.children) {
      if (top.tag != "pdml") continue;
      for (const auto& p : top.children) {
        if (p.tag == "packet") r.packets.push_back(&p);
      }
    }
  }

  static void TearDownTestSuite() {
    if (!scratch_.empty() && std::getenv("DIAMPOOL_KEEP_SCRATCH") != nullptr) {
      std::printf("scratch files kept in %s\n", scratch_.c_str());
    } else if (!scratch_.empty()) {
      std::error_code ec;
      fs::remove_all(scratch_, ec);
      scratch_.clear();
    }
    delete run_;
    run_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(run_->setup_error.empty()) << run_->setup_error; }

  static const tshark_run& r() { return *run_; }

  static inline tshark_run* run_ = nullptr;
  static inline fs::path scratch_;
};

// ---------------------------------------------------------------------------------------------
// Checking tshark's view against the description

// The "diameter" protocol of a packet, or null.
const pdml_node* diameter_of(const pdml_node& packet) {
  const pdml_node* found = nullptr;
  for (const auto& p : packet.children) {
    if (p.tag == "proto" && p.name() == "diameter") {
      if (found != nullptr) return nullptr;  // more than one message in the frame
      found = &p;
    }
  }
  return found;
}

// Wireshark's PI_ERROR expert severity (epan/proto.h), as PDML shows it.
constexpr unsigned long pi_error = 0x00800000;

struct expert_item {
  std::string severity;
  std::string message;
};

// tshark's expert items anywhere in the packet, and whether it marked it malformed.
std::vector<expert_item> experts_of(const pdml_node& packet, bool& malformed) {
  std::vector<const pdml_node*> nodes;
  collect(packet, "_ws.expert", nodes);
  std::vector<expert_item> out;
  for (const auto* n : nodes) {
    expert_item e;
    if (const auto* s = n->one("_ws.expert.severity")) e.severity = s->show();
    e.message = n->showname();
    out.push_back(std::move(e));
  }
  std::vector<const pdml_node*> bad;
  collect(packet, "_ws.malformed", bad);
  malformed = !bad.empty();
  return out;
}

std::string flags_text(std::uint8_t f) {
  std::string s;
  s += (f & avp_flags::vendor) != 0 ? 'V' : '-';
  s += (f & avp_flags::mandatory) != 0 ? 'M' : '-';
  s += (f & avp_flags::protect) != 0 ? 'P' : '-';
  return s;
}

std::string hex_byte_text(std::uint8_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", v);
  return buf;
}

std::string hex32_text(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// The summary line tshark gives each AVP.
std::string avp_summary(const avp_spec& s) {
  std::string out = "AVP: " + s.name + "(" + std::to_string(s.code) +
                    ") l=" + std::to_string(s.length()) + " f=" + flags_text(s.flags);
  if (!s.vendor_name.empty()) out += " vnd=" + s.vendor_name;
  if (!s.val.empty()) out += " val=" + s.val;
  return out;
}

void expect_avps(const pdml_node& parent, const std::vector<avp_spec>& specs,
                 const std::string& where);

void expect_avp(const pdml_node& n, const avp_spec& s, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_EQ(n.showname(), avp_summary(s));
  EXPECT_EQ(n.attr("size"), std::to_string(s.padded_length()));
  const std::string value_name = "diameter." + s.name;
  const std::size_t pad = s.padded_length() - s.length();

  // Exactly the fields a well-formed AVP yields, nothing else (no invalid-data, no unknown).
  std::vector<std::string> allowed = {"diameter.avp.code", "diameter.avp.flags", "diameter.avp.len",
                                      value_name};
  if (s.vendor_id != 0) allowed.push_back("diameter.avp.vendorId");
  if (pad != 0) allowed.push_back("diameter.avp.pad");
  for (const auto& [field, shown] : s.extra) {
    allowed.push_back(field);
    const auto* f = n.one(field);
    if (f == nullptr) {
      ADD_FAILURE() << "no " << field;
    } else {
      EXPECT_EQ(f->show(), shown) << f->showname();
    }
  }
  for (const auto& c : n.children) {
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), c.name()), allowed.end())
        << "unexpected field " << c.name() << " (" << c.showname() << ")";
  }

  const auto* code = n.one("diameter.avp.code");
  const auto* flags = n.one("diameter.avp.flags");
  const auto* len = n.one("diameter.avp.len");
  const auto* value = n.one(value_name);
  ASSERT_TRUE(code && flags && len) << "AVP header fields missing";
  EXPECT_EQ(code->show(), std::to_string(s.code));
  EXPECT_EQ(flags->show(), hex_byte_text(s.flags));
  EXPECT_EQ(len->show(), std::to_string(s.length()));
  if (s.vendor_id != 0) {
    const auto* vendor = n.one("diameter.avp.vendorId");
    ASSERT_TRUE(vendor) << "no Vendor-ID field";
    EXPECT_EQ(vendor->show(), std::to_string(s.vendor_id));
  }
  if (pad != 0) {
    const auto* p = n.one("diameter.avp.pad");
    ASSERT_TRUE(p) << "no padding field";
    EXPECT_EQ(p->attr("size"), std::to_string(pad));
    EXPECT_EQ(p->attr("value"), std::string(2 * pad, '0')) << "padding is not zero";
  }
  ASSERT_TRUE(value) << "tshark did not decode the value as " << value_name;
  if (s.grouped) {
    for (const auto& c : value->children) {
      EXPECT_EQ(c.name(), "diameter.avp") << "in the group: " << c.showname();
    }
    expect_avps(*value, s.children, where);
    return;
  }
  EXPECT_EQ(value->attr("size"), std::to_string(s.data_size));
  if (!s.show.empty()) {
    EXPECT_EQ(value->show(), s.show);
  }
  EXPECT_EQ(value->children.size(), s.sub.size()) << value->showname();
  for (const auto& [suffix, shown] : s.sub) {
    const auto* f = value->one(value_name + "." + suffix);
    ASSERT_TRUE(f) << "no " << value_name << "." << suffix;
    EXPECT_EQ(f->show(), shown) << f->showname();
  }
}

void expect_avps(const pdml_node& parent, const std::vector<avp_spec>& specs,
                 const std::string& where) {
  const auto avps = parent.all("diameter.avp");
  ASSERT_EQ(avps.size(), specs.size()) << where << ": AVP count";
  for (std::size_t i = 0; i < specs.size(); ++i) {
    expect_avp(*avps[i], specs[i], where + " / " + specs[i].name + " #" + std::to_string(i));
  }
}

std::string bit(std::uint8_t flags, std::uint8_t mask) {
  return (flags & mask) != 0 ? "1" : "0";
}

void expect_message(const pdml_node& packet, const oracle_case& c, int frame) {
  SCOPED_TRACE(c.label + " (frame " + std::to_string(frame) + ")");
  const message_spec& s = c.spec;
  // The builder's length agrees with the one computed from the description.
  ASSERT_EQ(c.bytes.size(), s.length());

  bool malformed = false;
  for (const auto& e : experts_of(packet, malformed)) {
    ADD_FAILURE() << "tshark expert info: " << e.message << " (severity " << e.severity << ")";
  }
  EXPECT_FALSE(malformed) << "tshark says malformed";

  const pdml_node* d = diameter_of(packet);
  ASSERT_TRUE(d) << "tshark did not see exactly one Diameter message";
  EXPECT_EQ(d->attr("size"), std::to_string(c.bytes.size()));
  auto field = [&](std::string_view name) -> std::string {
    const auto* f = d->one(name);
    return f != nullptr ? f->show() : "<missing " + std::string(name) + ">";
  };
  EXPECT_EQ(field("diameter.version"), "0x01");
  EXPECT_EQ(field("diameter.length"), std::to_string(s.length()));
  EXPECT_EQ(field("diameter.flags"), hex_byte_text(s.flags));
  EXPECT_EQ(field("diameter.cmd.code"), std::to_string(s.command_code));
  EXPECT_EQ(field("diameter.applicationId"), std::to_string(s.application_id));
  EXPECT_EQ(field("diameter.hopbyhopid"), hex32_text(s.hop_by_hop));
  EXPECT_EQ(field("diameter.endtoendid"), hex32_text(s.end_to_end));
  if (const auto* f = d->one("diameter.flags")) {
    auto flag = [&](std::string_view name) -> std::string {
      const auto* b = f->one(name);
      return b != nullptr ? b->show() : "<missing>";
    };
    EXPECT_EQ(flag("diameter.flags.request"), bit(s.flags, cmd_flags::request));
    EXPECT_EQ(flag("diameter.flags.proxyable"), bit(s.flags, cmd_flags::proxiable));
    EXPECT_EQ(flag("diameter.flags.error"), bit(s.flags, cmd_flags::error));
    EXPECT_EQ(flag("diameter.flags.T"), bit(s.flags, cmd_flags::retransmit));
    for (const char* reserved : {"diameter.flags.reserved4", "diameter.flags.reserved5",
                                 "diameter.flags.reserved6", "diameter.flags.reserved7"}) {
      EXPECT_EQ(flag(reserved), "0") << reserved;
    }
  }
  // tshark pairs requests and answers by their ids: each finds its partner's frame.
  const bool request = (s.flags & cmd_flags::request) != 0;
  EXPECT_EQ(field(request ? "diameter.answer_in" : "diameter.answer_to"),
            std::to_string(s.matched_frame));

  // Nothing at message level beyond the header, the AVPs and the request/answer links.
  for (const auto& ch : d->children) {
    const std::string n = ch.name();
    const bool known = n == "diameter.version" || n == "diameter.length" || n == "diameter.flags" ||
                       n == "diameter.cmd.code" || n == "diameter.applicationId" ||
                       n == "diameter.hopbyhopid" || n == "diameter.endtoendid" ||
                       n == "diameter.avp" || n == "diameter.answer_in" ||
                       n == "diameter.answer_to" || n == "diameter.resp_time";
    EXPECT_TRUE(known) << "unexpected field " << n << " (" << ch.showname() << ")";
  }

  // tshark's AVPs cover the body exactly, byte for byte.
  std::string avp_hex;
  for (const auto* a : d->all("diameter.avp")) {
    avp_hex += a->attr("value");
  }
  EXPECT_EQ(avp_hex, to_hex(std::span(c.bytes).subspan(header_size)));

  expect_avps(*d, s.avps, c.label);
}

// ---------------------------------------------------------------------------------------------
// The tests

TEST(tshark_oracle_vector, reference_cer_is_byte_exact) {
  const std::string expected =
      "0100008080000101000000000000000100000001000001084000001a636c69656e742e6578616d706c652e"
      "636f6d000000000128400000136578616d706c652e636f6d00000001014000000e00017f0000010000000001"
      "0a4000000c000000000000010d000000146c61622d7079636c69656e74000001024000000c00ffffff";
  const auto cer = cer_case();
  ASSERT_EQ(cer.bytes.size(), 128U);
  EXPECT_EQ(to_hex(cer.bytes), expected);
  EXPECT_EQ(cer.spec.length(), 128U);
}

TEST_F(tshark_oracle, tools_ran_cleanly) {
  EXPECT_EQ(unexpected_stderr(r().text2pcap.err), "");
  EXPECT_EQ(unexpected_stderr(r().tshark.err), "");
  ASSERT_EQ(r().packets.size(), r().cases.size() + r().corrupted_count)
      << "text2pcap or tshark lost or added packets";
  for (std::size_t i = 0; i < r().packets.size(); ++i) {
    const pdml_node& p = *r().packets[i];
    std::vector<const pdml_node*> num;
    collect(p, "num", num);
    ASSERT_FALSE(num.empty());
    EXPECT_EQ(num.front()->show(), std::to_string(i + 1));
    // Each frame is our TCP segment to port 3868, nothing else (e.g. no reassembly across
    // frames: every message is whole in its own frame).
    std::vector<const pdml_node*> dport;
    collect(p, "tcp.dstport", dport);
    ASSERT_EQ(dport.size(), 1U);
    EXPECT_EQ(dport.front()->show(), "3868");
  }
}

// Checks the messages whose labels start with any of `labels`.
void check_cases(std::initializer_list<std::string_view> labels, const tshark_run& r) {
  ASSERT_GE(r.packets.size(), r.cases.size());
  std::size_t checked = 0;
  for (std::size_t i = 0; i < r.cases.size(); ++i) {
    for (auto l : labels) {
      if (r.cases[i].label == l) {
        expect_message(*r.packets[i], r.cases[i], static_cast<int>(i + 1));
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, labels.size());
}

TEST_F(tshark_oracle, capabilities_exchange) {
  check_cases({"CER", "CEA"}, r());
}

TEST_F(tshark_oracle, device_watchdog) {
  check_cases({"DWR", "DWA"}, r());
}

TEST_F(tshark_oracle, disconnect_peer) {
  check_cases({"DPR", "DPA"}, r());
}

TEST_F(tshark_oracle, accounting_with_time_on_both_sides_of_the_2036_wrap) {
  check_cases({"ACR", "ACA", "ACR at the wrap", "ACA at the wrap"}, r());
}

TEST_F(tshark_oracle, integer64_floats_vendor_avp_and_error_answer) {
  check_cases({"CCR", "CCA with E bit"}, r());
}

// The oracle is only worth something if it can say no: the corrupted packets must be flagged.
TEST_F(tshark_oracle, corrupted_avp_lengths_are_flagged) {
  ASSERT_EQ(r().packets.size(), r().cases.size() + r().corrupted_count);
  for (std::size_t i = r().cases.size(); i < r().packets.size(); ++i) {
    SCOPED_TRACE("corrupted frame " + std::to_string(i + 1));
    bool malformed = false;
    const auto experts = experts_of(*r().packets[i], malformed);
    bool error = false;
    for (const auto& e : experts) {
      error = error || std::strtoul(e.severity.c_str(), nullptr, 0) == pi_error;
    }
    EXPECT_TRUE(malformed) << "tshark did not mark the corrupted message malformed";
    EXPECT_TRUE(error) << "tshark raised no expert error for the corrupted message";
    // The header is still read correctly: the damage is in the AVPs only.
    const pdml_node* d = diameter_of(*r().packets[i]);
    ASSERT_TRUE(d);
    ASSERT_TRUE(d->one("diameter.cmd.code"));
    EXPECT_EQ(d->one("diameter.cmd.code")->show(), "280");
  }
}

}  // namespace
}  // namespace diampool
