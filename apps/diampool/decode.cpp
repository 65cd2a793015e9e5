// `diampool decode`: Diameter messages in, readable AVP trees out. The input is hex
// (arguments, a file or stdin) or a packet capture (pcap or pcapng) whose TCP streams are
// reassembled and cut into messages.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "commands.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/print.hpp"

namespace diampool::cli {
namespace {

using bytes_view = std::span<const std::uint8_t>;

struct decode_options {
  std::vector<std::string> hex;
  std::string file;
  std::string pcap;
  std::size_t max_size = default_max_message_size;
};

// Decodes every message in `bytes`; returns 0 if all were well formed, 2 otherwise.
int decode_stream(std::span<const std::uint8_t> bytes, std::size_t max_size) {
  frame_decoder decoder(max_size);
  std::size_t offset = 0;
  int count = 0;
  while (offset < bytes.size()) {
    std::error_code ec;
    const auto r = decoder.put(bytes.subspan(offset), ec);
    if (r.status == decode_status::error) {
      std::cerr << "diampool decode: malformed message at byte " << offset << ": " << ec.message()
                << "\n";
      return 2;
    }
    offset += r.consumed;
    if (r.status == decode_status::need_more) break;
    const message_view& msg = decoder.message();
    std::cout << to_text(msg);
    if (auto bad = check_avps(msg, dictionary::base())) {
      std::cerr << "diampool decode: message " << count << " has malformed AVPs: " << bad.message()
                << "\n";
      return 2;
    }
    ++count;
  }
  if (decoder.bytes_needed() != header_size || count == 0) {
    std::cerr << "diampool decode: input ends inside a message (" << decoder.bytes_needed()
              << " more bytes needed)\n";
    return 2;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Packet captures.
//
// Every length read from a capture is checked against these limits before it is used: a
// hostile file costs at most one record buffer, one partial message per TCP direction (bounded
// by --max-size) and a bounded total of partial messages, whatever its lengths claim.

constexpr std::size_t max_record = std::size_t{256} * 1024;  // captured bytes of one packet
constexpr std::size_t max_block = max_record + std::size_t{64} * 1024;  // a pcapng block read
constexpr std::size_t max_interfaces = 65536;  // pcapng interfaces in one section
constexpr std::size_t max_directions = 65536;  // TCP directions followed
constexpr std::size_t max_buffered = std::size_t{64} * 1024 * 1024;  // partial messages, in all
constexpr int max_notes = 200;  // stderr lines about the capture, then a summary only

// Capture file and link-layer numbers (https://www.tcpdump.org/linktypes.html).
constexpr std::uint32_t magic_usec = 0xA1B2C3D4;        // pcap, microsecond timestamps
constexpr std::uint32_t magic_nsec = 0xA1B23C4D;        // pcap, nanosecond timestamps
constexpr std::uint32_t magic_modified = 0xA1B2CD34;    // pcap with 24-byte record headers
constexpr std::uint32_t byte_order_magic = 0x1A2B3C4D;  // in a pcapng section header
constexpr std::uint32_t link_null = 0;  // BSD loopback: address family, host byte order
constexpr std::uint32_t link_ethernet = 1;
constexpr std::uint32_t link_raw = 101;   // raw IPv4 or IPv6
constexpr std::uint32_t link_loop = 108;  // OpenBSD loopback: address family, big-endian
constexpr std::uint32_t link_sll = 113;   // Linux cooked capture
constexpr std::uint32_t link_ipv4 = 228;
constexpr std::uint32_t link_ipv6 = 229;
constexpr std::uint32_t link_sll2 = 276;         // Linux cooked capture v2
constexpr std::uint32_t block_shb = 0x0A0D0D0A;  // pcapng section header
constexpr std::uint32_t block_idb = 1;           // interface description
constexpr std::uint32_t block_pb = 2;            // packet (obsolete)
constexpr std::uint32_t block_spb = 3;           // simple packet
constexpr std::uint32_t block_epb = 6;           // enhanced packet

bool supported_link(std::uint32_t link) {
  switch (link) {
    case link_null:
    case link_ethernet:
    case link_raw:
    case link_loop:
    case link_sll:
    case link_ipv4:
    case link_ipv6:
    case link_sll2:
      return true;
    default:
      return false;
  }
}

constexpr const char* supported_links =
    "0 NULL, 1 Ethernet, 101 raw IP, 108 LOOP, 113 Linux SLL, 228 IPv4, 229 IPv6, 276 Linux SLL2";

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t{p[3]} << 24 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 | p[0];
}
// Reads in the capture's byte order.
std::uint16_t rd16(const std::uint8_t* p, bool big) {
  return big ? be16(p) : static_cast<std::uint16_t>(p[1] << 8 | p[0]);
}
std::uint32_t rd32(const std::uint8_t* p, bool big) {
  return big ? be32(p) : le32(p);
}
std::uint64_t rd64(const std::uint8_t* p, bool big) {
  const std::uint64_t a = rd32(p, big), b = rd32(p + 4, big);
  return big ? (a << 32 | b) : (b << 32 | a);
}

/// When a packet was captured. `digits` is the resolution worth printing (6 for microseconds).
struct timestamp {
  bool known = false;
  std::int64_t sec = 0;
  std::uint32_t ns = 0;
  int digits = 6;
};

std::string to_string(const timestamp& t) {
  if (!t.known) return "?";
  std::string s = std::to_string(t.sec);
  if (t.digits > 0) {
    std::uint32_t frac = t.ns;
    for (int i = t.digits; i < 9; ++i)
      frac /= 10;
    char text[16];
    std::snprintf(text, sizeof text, ".%0*u", t.digits, static_cast<unsigned>(frac));
    s += text;
  }
  return s;
}

/// One captured frame, viewed in the reader's buffer until the next call to next().
struct packet {
  std::uint64_t number = 0;  // 1-based, as Wireshark numbers frames
  std::uint32_t link_type = 0;
  timestamp time;
  bytes_view data;
};

/// What the first bytes of a file say it is.
enum class capture_format { none, pcap, pcapng };

capture_format sniff(const std::uint8_t* p, std::size_t n) {
  if (n >= 4) {
    const std::uint32_t m = be32(p);
    for (std::uint32_t magic : {magic_usec, magic_nsec, magic_modified}) {
      if (m == magic || le32(p) == magic) return capture_format::pcap;
    }
  }
  // pcapng: the section header's type, then (after the length) its byte-order magic.
  if (n >= 12 && be32(p) == block_shb &&
      (be32(p + 8) == byte_order_magic || le32(p + 8) == byte_order_magic))
    return capture_format::pcapng;
  return capture_format::none;
}

/// Reads classic pcap (micro- and nanosecond, either byte order, and the "modified" variant)
/// and pcapng, one frame at a time, from a file or a pipe.
class capture_reader {
 public:
  /// `prefix`: bytes of the file already read from `in` (to tell a capture from hex).
  capture_reader(std::istream& in, std::string name, std::string prefix = {})
      : in_(in), name_(std::move(name)), prefix_(std::move(prefix)) {}

  /// Reads the file header; false with error() set if this is not a capture it can read.
  bool open() {
    std::uint8_t head[24];
    const std::size_t got = read_some(head, 4);
    if (got < 4)
      return fail("too short to be a pcap or pcapng capture (" + std::to_string(got) + " bytes)");
    const std::uint32_t magic = be32(head);
    if (magic == block_shb) {
      pcapng_ = true;
      pending_type_ = true;
      return true;
    }
    bool known = false;
    for (std::uint32_t m : {magic_usec, magic_nsec, magic_modified}) {
      if (magic == m || le32(head) == m) {
        known = true;
        big_ = magic == m;
        nanosecond_ = m == magic_nsec;
        record_header_ = m == magic_modified ? 24 : 16;
      }
    }
    if (!known) {
      char text[64];
      std::snprintf(text, sizeof text, "not a pcap or pcapng capture (starts %02x %02x %02x %02x)",
                    head[0], head[1], head[2], head[3]);
      return fail(text);
    }
    if (!read_exact(head + 4, 20, "the 24-byte file header")) return false;
    const std::uint16_t major = rd16(head + 4, big_), minor = rd16(head + 6, big_);
    if (major != 2) {
      return fail("pcap version " + std::to_string(major) + "." + std::to_string(minor) +
                  " is not supported (only 2.x)");
    }
    snaplen_ = rd32(head + 16, big_);
    link_type_ = rd32(head + 20, big_) & 0x03FFFFFF;  // the upper bits describe an FCS
    if (!supported_link(link_type_)) {
      return fail("link type " + std::to_string(link_type_) +
                  " is not supported (supported: " + supported_links + ")");
    }
    return true;
  }

  /// The next frame; false at the end of the file, or with error() set if it is damaged.
  bool next(packet& p) { return pcapng_ ? next_pcapng(p) : next_pcap(p); }

  const std::string& error() const noexcept { return error_; }

 private:
  struct interface {
    std::uint32_t link_type = 0;
    std::uint32_t snaplen = 0;
    std::uint64_t units = 1'000'000;  // timestamp units per second
    int digits = 6;
    std::int64_t offset = 0;  // seconds added to every timestamp
  };

  bool fail(std::string why) {
    error_ = name_ + ": " + std::move(why);
    return false;
  }

  bool truncated(const std::string& what, std::uint64_t at, std::uint64_t want, std::uint64_t got) {
    return fail("truncated: " + what + " at byte " + std::to_string(at) + " needs " +
                std::to_string(want) + " bytes, the file ends after " + std::to_string(got));
  }

  std::size_t read_some(std::uint8_t* dst, std::size_t n) {
    if (n == 0) return 0;
    std::size_t got = std::min(n, prefix_.size() - prefix_used_);
    if (got > 0) std::memcpy(dst, prefix_.data() + prefix_used_, got);
    prefix_used_ += got;
    if (got < n) {
      in_.read(reinterpret_cast<char*>(dst + got), static_cast<std::streamsize>(n - got));
      got += static_cast<std::size_t>(in_.gcount());
    }
    offset_ += got;
    return got;
  }

  bool read_exact(std::uint8_t* dst, std::size_t n, const std::string& what) {
    const std::uint64_t at = offset_;
    const std::size_t got = read_some(dst, n);
    return got == n || truncated(what, at, n, got);
  }

  // Reads past `n` bytes without keeping them (no allocation, works on a pipe).
  bool skip(std::uint64_t n, const std::string& what) {
    const std::uint64_t at = offset_;
    std::uint8_t scratch[16384];
    std::uint64_t left = n;
    while (left > 0) {
      const std::size_t chunk =
          static_cast<std::size_t>(std::min<std::uint64_t>(left, sizeof scratch));
      const std::size_t got = read_some(scratch, chunk);
      left -= got;
      if (got < chunk) return truncated(what, at, n, n - left);
    }
    return true;
  }

  std::string frame_name() const { return "frame " + std::to_string(frames_ + 1); }

  bool next_pcap(packet& p) {
    std::uint8_t h[24];
    const std::uint64_t at = offset_;
    const std::size_t got = read_some(h, record_header_);
    if (got == 0) return false;
    if (got < record_header_)
      return truncated("the record header of " + frame_name(), at, record_header_, got);
    const std::uint32_t sec = rd32(h, big_), frac = rd32(h + 4, big_);
    const std::uint32_t incl = rd32(h + 8, big_);
    if (incl > max_record) {
      return fail(frame_name() + " at byte " + std::to_string(at) + " claims " +
                  std::to_string(incl) + " captured bytes, more than the " +
                  std::to_string(max_record) + "-byte limit (corrupt capture)");
    }
    // Like libpcap, keep no more than the snapshot length and pass over the rest.
    const std::size_t keep = snaplen_ != 0 && incl > snaplen_ ? snaplen_ : incl;
    buffer_.resize(keep);
    if (!read_exact(buffer_.data(), keep, frame_name())) return false;
    if (!skip(incl - keep, frame_name())) return false;
    ++frames_;
    p.number = frames_;
    p.link_type = link_type_;
    p.data = bytes_view(buffer_.data(), keep);
    const std::uint64_t ns = nanosecond_ ? frac : std::uint64_t{frac} * 1000;
    p.time = {true, static_cast<std::int64_t>(sec + ns / 1'000'000'000),
              static_cast<std::uint32_t>(ns % 1'000'000'000), nanosecond_ ? 9 : 6};
    return true;
  }

  bool next_pcapng(packet& p) {
    for (;;) {
      std::uint8_t h[12];
      const std::uint64_t at = pending_type_ ? 0 : offset_;
      std::size_t have = 4;
      if (pending_type_) {
        std::memcpy(h, "\x0A\x0D\x0D\x0A", 4);
        pending_type_ = false;
      } else {
        const std::size_t got = read_some(h, 4);
        if (got == 0) return false;
        if (got < 4) return truncated("a block header", at, 8, got);
      }
      const bool shb = be32(h) == block_shb;
      if (shb) {
        if (!read_exact(h + 4, 8, "the section header block")) return false;
        have = 12;
        if (be32(h + 8) == byte_order_magic) {
          big_ = true;
        } else if (le32(h + 8) == byte_order_magic) {
          big_ = false;
        } else {
          return fail("section header at byte " + std::to_string(at) +
                      " has no valid byte-order magic (corrupt capture)");
        }
        interfaces_.clear();
        in_section_ = true;
      } else {
        if (!read_exact(h + 4, 4, "the block header at byte " + std::to_string(at))) return false;
        have = 8;
      }
      const std::uint32_t type = rd32(h, big_), length = rd32(h + 4, big_);
      const std::string block = "block at byte " + std::to_string(at);
      if (!in_section_) return fail("no section header block before the " + block);
      if (length < 12 || length % 4 != 0 || (shb && length < 28)) {
        return fail(block + " has an invalid length " + std::to_string(length) +
                    " (corrupt capture)");
      }
      const bool wanted =
          shb || type == block_idb || type == block_epb || type == block_spb || type == block_pb;
      const std::uint64_t rest = length - have;  // body after what was read, and trailing length
      if (!wanted) {
        std::uint8_t tail[4];
        if (!skip(rest - 4, block) || !read_exact(tail, 4, block)) return false;
        if (rd32(tail, big_) != length) return fail(block + " has mismatched lengths");
        continue;
      }
      if (length > max_block) {
        return fail(block + " (type " + std::to_string(type) + ") claims " +
                    std::to_string(length) + " bytes, more than the " + std::to_string(max_block) +
                    "-byte limit (corrupt capture)");
      }
      buffer_.resize(static_cast<std::size_t>(rest));
      if (!read_exact(buffer_.data(), buffer_.size(), block)) return false;
      if (rd32(buffer_.data() + buffer_.size() - 4, big_) != length)
        return fail(block + " has mismatched leading and trailing lengths (corrupt capture)");
      const bytes_view body(buffer_.data(), buffer_.size() - 4);
      const std::uint8_t* b = body.data();

      if (shb) {
        const std::uint16_t major = rd16(b, big_), minor = rd16(b + 2, big_);
        if (major != 1) {
          return fail("pcapng version " + std::to_string(major) + "." + std::to_string(minor) +
                      " is not supported (only 1.x)");
        }
        continue;
      }
      if (type == block_idb) {
        if (!read_interface(body, block)) return false;
        continue;
      }

      std::uint32_t id = 0, caplen = 0;
      std::uint64_t raw_time = 0;
      std::size_t data_at = 0;
      bool has_time = true;
      if (type == block_epb || type == block_pb) {
        if (body.size() < 20) return fail(block + " is too short for a packet block");
        id = type == block_epb ? rd32(b, big_) : rd16(b, big_);
        raw_time = std::uint64_t{rd32(b + 4, big_)} << 32 | rd32(b + 8, big_);
        caplen = rd32(b + 12, big_);
        data_at = 20;
        if (caplen > body.size() - data_at)
          return fail(block + " claims more packet data than it holds (corrupt capture)");
      } else {  // simple packet block: interface 0, no timestamp
        if (body.size() < 4) return fail(block + " is too short for a packet block");
        data_at = 4;
        caplen =
            static_cast<std::uint32_t>(std::min<std::uint64_t>(rd32(b, big_), body.size() - 4));
        has_time = false;
      }
      if (id >= interfaces_.size()) {
        return fail(block + " refers to interface " + std::to_string(id) + ", the section has " +
                    std::to_string(interfaces_.size()));
      }
      const interface& i = interfaces_[id];
      if (i.snaplen != 0 && caplen > i.snaplen) caplen = i.snaplen;
      ++frames_;
      p.number = frames_;
      p.link_type = i.link_type;
      p.data = body.subspan(data_at, caplen);
      p.time = has_time ? make_time(raw_time, i) : timestamp{};
      return true;
    }
  }

  bool read_interface(bytes_view body, const std::string& block) {
    if (body.size() < 8) return fail(block + " is too short for an interface description");
    if (interfaces_.size() >= max_interfaces)
      return fail("more than " + std::to_string(max_interfaces) + " interfaces in one section");
    interface i;
    i.link_type = rd16(body.data(), big_);
    i.snaplen = rd32(body.data() + 4, big_);
    bytes_view opts = body.subspan(8);
    while (opts.size() >= 4) {
      const std::uint16_t code = rd16(opts.data(), big_), len = rd16(opts.data() + 2, big_);
      if (code == 0) break;  // opt_endofopt
      const std::size_t padded = (std::size_t{len} + 3) & ~std::size_t{3};
      if (padded > opts.size() - 4) return fail(block + " has an option running past its end");
      const std::uint8_t* v = opts.data() + 4;
      if (code == 9 && len >= 1) {  // if_tsresol
        const unsigned exp = v[0] & 0x7F;
        if ((v[0] & 0x80) != 0) {
          if (exp > 63) return fail(block + " has an unusable timestamp resolution");
          i.units = std::uint64_t{1} << exp;
          i.digits = 9;
        } else {
          if (exp > 19) return fail(block + " has an unusable timestamp resolution");
          i.units = 1;
          for (unsigned k = 0; k < exp; ++k)
            i.units *= 10;
          i.digits = static_cast<int>(std::min(exp, 9u));
        }
      } else if (code == 14 && len >= 8) {  // if_tsoffset
        i.offset = static_cast<std::int64_t>(rd64(v, big_));
      }
      opts = opts.subspan(4 + padded);
    }
    interfaces_.push_back(i);
    return true;
  }

  static timestamp make_time(std::uint64_t raw, const interface& i) {
    timestamp t;
    t.known = true;
    t.digits = i.digits;
    const std::uint64_t rem = raw % i.units;
    // Unsigned arithmetic: a hostile offset wraps instead of overflowing.
    t.sec = static_cast<std::int64_t>(raw / i.units + static_cast<std::uint64_t>(i.offset));
    constexpr std::uint64_t billion = 1'000'000'000;
    if (i.units <= billion && billion % i.units == 0) {
      t.ns = static_cast<std::uint32_t>(rem * (billion / i.units));
    } else if (i.units > billion && i.units % billion == 0) {
      t.ns = static_cast<std::uint32_t>(rem / (i.units / billion));
    } else {
      t.ns = static_cast<std::uint32_t>(static_cast<long double>(rem) * billion / i.units);
    }
    return t;
  }

  std::istream& in_;
  std::string name_;
  std::string prefix_;
  std::size_t prefix_used_ = 0;
  std::string error_;
  std::uint64_t offset_ = 0;  // bytes read from the file so far
  std::uint64_t frames_ = 0;
  bool pcapng_ = false;
  bool big_ = false;
  // Classic pcap.
  bool nanosecond_ = false;
  std::size_t record_header_ = 16;
  std::uint32_t link_type_ = 0;
  std::uint32_t snaplen_ = 0;
  // pcapng: the interfaces of the current section.
  bool pending_type_ = false;  // open() has read the first block's type
  bool in_section_ = false;
  std::vector<interface> interfaces_;
  std::vector<std::uint8_t> buffer_;
};

// ---------------------------------------------------------------------------------------------
// Link layer, IP and TCP.

struct endpoint {
  std::uint8_t family = 0;  // 4 or 6
  std::array<std::uint8_t, 16> address{};
  std::uint16_t port = 0;
  auto operator<=>(const endpoint&) const = default;
};

std::string to_string(const endpoint& e) {
  char text[INET6_ADDRSTRLEN] = {};
  if (e.family == 4) {
    inet_ntop(AF_INET, e.address.data(), text, sizeof text);
    return std::string(text) + ":" + std::to_string(e.port);
  }
  inet_ntop(AF_INET6, e.address.data(), text, sizeof text);
  return "[" + std::string(text) + "]:" + std::to_string(e.port);
}

/// One direction of a TCP connection.
struct flow {
  endpoint from, to;
  auto operator<=>(const flow&) const = default;
};

std::string to_string(const flow& f) {
  return to_string(f.from) + " -> " + to_string(f.to);
}

namespace tcp_flags {
constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04;
}

struct tcp_segment {
  flow f;
  std::uint32_t seq = 0;
  std::uint8_t flags = 0;
  bytes_view payload;
  bool clipped = false;  // the capture kept less than the IP packet
};

enum class frame_kind { tcp, not_ip, not_tcp, fragment, malformed };

struct frame_result {
  frame_kind kind;
  const char* why = "";  // for malformed and fragment
};

frame_result parse_tcp(bytes_view t, tcp_segment& seg) {
  if (t.size() < 20) return {frame_kind::malformed, "TCP header cut short"};
  const std::size_t data_offset = static_cast<std::size_t>(t[12] >> 4) * 4;
  if (data_offset < 20 || data_offset > t.size())
    return {frame_kind::malformed, "TCP header length out of range"};
  seg.f.from.port = be16(t.data());
  seg.f.to.port = be16(t.data() + 2);
  seg.seq = be32(t.data() + 4);
  seg.flags = t[13];
  seg.payload = t.subspan(data_offset);
  return {frame_kind::tcp};
}

frame_result parse_ipv4(bytes_view ip, tcp_segment& seg) {
  if (ip.size() < 20) return {frame_kind::malformed, "IPv4 header cut short"};
  const std::size_t header = std::size_t{ip[0] & 0x0Fu} * 4;
  std::size_t total = be16(ip.data() + 2);
  if (total == 0) total = ip.size();  // segmentation offload: the length is not filled in
  if (header < 20 || header > ip.size() || total < header)
    return {frame_kind::malformed, "IPv4 header length out of range"};
  if ((be16(ip.data() + 6) & 0x3FFF) != 0)  // more fragments, or a fragment offset
    return {frame_kind::fragment, "IPv4 fragment"};
  if (ip[9] != 6) return {frame_kind::not_tcp};
  seg.f.from.family = seg.f.to.family = 4;
  std::memcpy(seg.f.from.address.data(), ip.data() + 12, 4);
  std::memcpy(seg.f.to.address.data(), ip.data() + 16, 4);
  // Shorter than `total` when the capture cut the packet; trailing link padding dropped.
  seg.clipped = total > ip.size();
  return parse_tcp(ip.subspan(header, std::min(total, ip.size()) - header), seg);
}

frame_result parse_ipv6(bytes_view ip, tcp_segment& seg) {
  if (ip.size() < 40) return {frame_kind::malformed, "IPv6 header cut short"};
  std::size_t end = 40 + std::size_t{be16(ip.data() + 4)};
  seg.clipped = end > ip.size();
  if (end == 40 || end > ip.size()) end = ip.size();  // jumbogram or offload; or cut short
  std::uint8_t next = ip[6];
  std::size_t at = 40;
  for (;;) {  // each extension header is at least 8 bytes, so this ends
    if (next == 6) break;
    if (next != 0 && next != 43 && next != 60 && next != 44 && next != 51)
      return {frame_kind::not_tcp};
    if (at + 8 > end) return {frame_kind::malformed, "IPv6 extension header cut short"};
    const std::uint8_t* h = ip.data() + at;
    std::size_t len = 0;
    if (next == 44) {  // fragment header
      if ((be16(h + 2) & 0xFFF9) != 0) return {frame_kind::fragment, "IPv6 fragment"};
      len = 8;  // an atomic fragment: the whole packet
    } else if (next == 51) {
      len = (std::size_t{h[1]} + 2) * 4;
    } else {
      len = (std::size_t{h[1]} + 1) * 8;
    }
    next = h[0];
    at += len;
    if (at > end) return {frame_kind::malformed, "IPv6 extension header cut short"};
  }
  seg.f.from.family = seg.f.to.family = 6;
  std::memcpy(seg.f.from.address.data(), ip.data() + 8, 16);
  std::memcpy(seg.f.to.address.data(), ip.data() + 24, 16);
  return parse_tcp(ip.subspan(at, end - at), seg);
}

frame_result parse_frame(std::uint32_t link, bytes_view f, tcp_segment& seg) {
  int version = 0;  // the IP version the link header announces; 0: read it from the packet
  std::size_t skip = 0;
  const auto from_ethertype = [&](std::uint16_t type) {
    version = type == 0x0800 ? 4 : type == 0x86DD ? 6 : -1;
  };
  switch (link) {
    case link_null:
    case link_loop: {
      if (f.size() < 4) return {frame_kind::malformed, "loopback header cut short"};
      std::uint32_t family = link == link_loop ? be32(f.data()) : le32(f.data());
      if (family > 0xFFFF) family = be32(f.data());  // written by a big-endian host
      version = family == 2                                                      ? 4
                : (family == 10 || family == 24 || family == 28 || family == 30) ? 6
                                                                                 : -1;
      skip = 4;
      break;
    }
    case link_ethernet: {
      if (f.size() < 14) return {frame_kind::malformed, "Ethernet header cut short"};
      std::uint16_t type = be16(f.data() + 12);
      skip = 14;
      while (type == 0x8100 || type == 0x88A8 || type == 0x9100) {  // VLAN tags
        if (f.size() < skip + 4) return {frame_kind::malformed, "VLAN tag cut short"};
        type = be16(f.data() + skip + 2);
        skip += 4;
      }
      from_ethertype(type);
      break;
    }
    case link_raw:
      break;
    case link_ipv4:
      version = 4;
      break;
    case link_ipv6:
      version = 6;
      break;
    case link_sll:
      if (f.size() < 16) return {frame_kind::malformed, "Linux cooked header cut short"};
      from_ethertype(be16(f.data() + 14));
      skip = 16;
      break;
    case link_sll2:
      if (f.size() < 20) return {frame_kind::malformed, "Linux cooked v2 header cut short"};
      from_ethertype(be16(f.data()));
      skip = 20;
      break;
    default:
      return {frame_kind::not_ip};
  }
  if (version < 0) return {frame_kind::not_ip};
  const bytes_view ip = f.subspan(skip);
  if (ip.empty()) return {frame_kind::malformed, "IP header missing"};
  const int actual = ip[0] >> 4;
  if (version != 0 && actual != version)
    return {frame_kind::malformed, "IP version differs from the link header's"};
  if (actual == 4) return parse_ipv4(ip, seg);
  if (actual == 6) return parse_ipv6(ip, seg);
  return version == 0 ? frame_result{frame_kind::not_ip}
                      : frame_result{frame_kind::malformed, "bad IP version"};
}

// ---------------------------------------------------------------------------------------------
// TCP reassembly and Diameter framing.

/// Follows every TCP direction of a capture and prints the Diameter messages in them.
///
/// Each direction's bytes go, in sequence order, to a frame_decoder. Bytes already seen
/// (retransmissions, overlaps) are dropped. Segments are not reordered: a segment beyond the
/// next expected byte is a gap; the partial message is dropped and the direction resumes at
/// the first later segment that starts with a plausible Diameter header. A direction whose
/// start was not captured (no SYN) is picked up the same way.
class capture_decoder {
 public:
  capture_decoder(std::size_t max_size, bool flush)
      : max_size_(max_size), budget_(std::max(max_buffered, max_size)), flush_(flush) {}

  void on_packet(const packet& p) {
    ++stats_.frames;
    if (!supported_link(p.link_type)) {  // pcapng: each interface has its own
      ++stats_.unsupported;
      if (unsupported_links_.insert(p.link_type).second) {
        note("frame " + std::to_string(p.number) + ": link type " + std::to_string(p.link_type) +
             " is not supported (supported: " + supported_links + "); its frames are skipped");
      }
      return;
    }
    tcp_segment seg;
    const frame_result r = parse_frame(p.link_type, p.data, seg);
    switch (r.kind) {
      case frame_kind::not_ip:
      case frame_kind::not_tcp:
        ++stats_.not_tcp;
        return;
      case frame_kind::fragment:
        ++stats_.fragments;
        note("frame " + std::to_string(p.number) + ": " + r.why +
             " skipped (IP reassembly is not supported)");
        return;
      case frame_kind::malformed:
        ++stats_.bad_frames;
        note("frame " + std::to_string(p.number) + ": " + r.why + "; skipped");
        return;
      case frame_kind::tcp:
        break;
    }
    auto it = directions_.find(seg.f);
    if (it == directions_.end()) {
      if (directions_.size() >= max_directions) {
        if (stats_.untracked++ == 0) {
          note("more than " + std::to_string(max_directions) +
               " TCP directions; segments of later ones are skipped");
        }
        return;
      }
      it = directions_.try_emplace(seg.f, max_size_).first;
    }
    if (seg.clipped && stats_.clipped++ == 0) {
      note("frame " + std::to_string(p.number) +
           ": cut short by the capture (snapshot length); the bytes not captured are gaps");
    }
    on_segment(it->first, it->second, seg, p);
  }

  /// Reports what the end of the capture leaves unfinished; returns the exit status.
  int finish() {
    for (auto& [f, d] : directions_) {
      if (d.fed > 0) {
        note(to_string(f) + ": the capture ends inside a message (" +
             std::to_string(d.decoder.bytes_needed()) + " more bytes needed)");
        ++stats_.dropped;
      } else if (!d.synced && d.skipped > 0 && !d.ever_synced) {
        note(to_string(f) + ": " + std::to_string(d.skipped) +
             " bytes without a Diameter header; skipped");
      }
    }
    const auto count = [](std::uint64_t n, const char* one, const char* many) {
      return std::to_string(n) + " " + (n == 1 ? one : many);
    };
    std::string s = "diampool decode: " + count(stats_.frames, "frame", "frames") + ", " +
                    count(stats_.messages, "Diameter message", "Diameter messages");
    const auto add = [&](std::uint64_t n, const char* one, const char* many) {
      if (n > 0) s += ", " + count(n, one, many);
    };
    add(stats_.malformed, "malformed", "malformed");
    add(stats_.dropped, "incomplete (capture gap or end)", "incomplete (capture gaps or end)");
    add(stats_.gaps, "gap in a TCP stream", "gaps in TCP streams");
    add(stats_.clipped, "frame cut short", "frames cut short");
    add(stats_.retransmitted, "retransmitted segment skipped", "retransmitted segments skipped");
    add(stats_.fragments, "IP fragment skipped", "IP fragments skipped");
    add(stats_.bad_frames, "unparsable frame skipped", "unparsable frames skipped");
    add(stats_.not_tcp, "non-TCP frame skipped", "non-TCP frames skipped");
    add(stats_.unsupported, "frame of an unsupported link type skipped",
        "frames of unsupported link types skipped");
    add(stats_.ignored, "non-Diameter TCP stream ignored", "non-Diameter TCP streams ignored");
    add(stats_.untracked, "segment of untracked streams skipped",
        "segments of untracked streams skipped");
    if (stats_.messages == 0) s += " (no Diameter messages found)";
    std::cerr << s << "\n";
    return stats_.malformed > 0 ? 2 : 0;
  }

 private:
  struct direction {
    explicit direction(std::size_t max_size) : decoder(max_size) {}
    frame_decoder decoder;
    bool saw_syn = false;
    std::uint32_t isn = 0;  // initial sequence number, if saw_syn
    bool have_seq = false;  // next_seq is known
    std::uint32_t next_seq = 0;
    bool synced = false;        // the decoder is at a message boundary of the stream, or in one
    bool ever_synced = false;   // some of its bytes reached the decoder
    bool first_data = false;    // a SYN was seen and no data yet
    bool ignored = false;       // not Diameter
    std::uint64_t skipped = 0;  // bytes passed over while looking for a message start
    std::size_t fed = 0;        // bytes of the current partial message in the decoder
    std::size_t charged = 0;    // what this direction counts against the buffering budget
  };

  // A Diameter header could start here: version 1, a length within limits, 4-byte aligned.
  bool plausible(bytes_view b) const {
    if (b.size() < 4 || b[0] != 1) return false;
    const std::size_t length = std::size_t{b[1]} << 16 | std::size_t{b[2]} << 8 | b[3];
    return length >= header_size && length <= max_size_ && length % 4 == 0;
  }

  void on_segment(const flow& f, direction& d, const tcp_segment& seg, const packet& p) {
    std::uint32_t seq = seg.seq;
    if ((seg.flags & tcp_flags::syn) != 0) {
      const std::uint32_t start = seg.seq + 1;
      if (!d.saw_syn || seg.seq != d.isn) {  // else a retransmitted SYN
        if (d.have_seq) {                    // the 4-tuple is reused by a new connection
          drop_partial(f, d, "a new connection (SYN) at frame " + std::to_string(p.number));
        }
        d.saw_syn = true;
        d.isn = seg.seq;
        d.have_seq = true;
        d.next_seq = start;
        d.synced = true;
        d.first_data = true;
        d.ignored = false;
        d.skipped = 0;
      }
      seq = start;
    }
    if (!seg.payload.empty()) on_data(f, d, seq, seg.payload, p);
    if ((seg.flags & (tcp_flags::fin | tcp_flags::rst)) != 0 && d.have_seq) {
      const std::uint32_t end = seq + static_cast<std::uint32_t>(seg.payload.size());
      if (end == d.next_seq) {
        if (d.fed > 0) {
          const bool fin = (seg.flags & tcp_flags::fin) != 0;
          error(p, f,
                std::string(fin ? "the connection closes (FIN)" : "the connection is reset (RST)") +
                    " inside a message (" + std::to_string(d.decoder.bytes_needed()) +
                    " more bytes needed)");
          reset(d);
        }
        if ((seg.flags & tcp_flags::fin) != 0) d.next_seq = end + 1;
      }
    }
  }

  void on_data(const flow& f, direction& d, std::uint32_t seq, bytes_view data, const packet& p) {
    if (d.ignored) return;
    bool at_segment_start = true;
    const std::uint32_t end = seq + static_cast<std::uint32_t>(data.size());
    if (!d.have_seq) {  // the capture starts after the SYN: look for a message start
      d.have_seq = true;
      d.next_seq = seq;
      d.synced = false;
    }
    const auto ahead = static_cast<std::int32_t>(seq - d.next_seq);
    if (ahead < 0) {
      const std::uint64_t seen = static_cast<std::uint64_t>(-static_cast<std::int64_t>(ahead));
      if (seen >= data.size()) {
        ++stats_.retransmitted;
        return;
      }
      data = data.subspan(static_cast<std::size_t>(seen));
      at_segment_start = false;
    } else if (ahead > 0) {
      ++stats_.gaps;
      note("frame " + std::to_string(p.number) + ", " + to_string(f) + ": " +
           std::to_string(ahead) + " bytes missing from the capture before this segment");
      drop_partial(f, d, "the gap");
      d.synced = false;
      d.first_data = false;
    }
    d.next_seq = end;
    if (d.first_data) {
      d.first_data = false;
      if (data[0] != 1) {
        d.ignored = true;
        ++stats_.ignored;
        note(to_string(f) + ": not Diameter (first byte 0x" + to_hex(data.first(1)) +
             " is not version 1); stream ignored");
        return;
      }
    }
    if (!d.synced) {
      if (!at_segment_start || !plausible(data)) {
        d.skipped += data.size();
        return;
      }
      if (d.skipped > 0) {
        note("frame " + std::to_string(p.number) + ", " + to_string(f) +
             ": resynchronised on a Diameter header after skipping " + std::to_string(d.skipped) +
             " bytes");
      }
      d.synced = true;
      d.skipped = 0;
    }
    d.ever_synced = true;
    feed(f, d, data, p);
  }

  void feed(const flow& f, direction& d, bytes_view data, const packet& p) {
    while (!data.empty()) {
      std::error_code ec;
      const decode_result r = d.decoder.put(data, ec);
      if (r.status == decode_status::error) {
        error(p, f, "malformed message: " + ec.message());
        reset(d);
        d.synced = false;  // look for the next message start
        d.skipped += data.size();
        return;
      }
      data = data.subspan(r.consumed);
      if (r.status == decode_status::need_more) {
        d.fed += r.consumed;
        charge(f, d);
        return;
      }
      const bool gathered = d.fed > 0;  // the message spans segments: the decoder copied it
      d.fed = 0;
      charge(f, d);
      print(f, d.decoder.message(), p);
      // An idle direction holds no buffer: thousands of connections cost little.
      if (gathered) d.decoder = frame_decoder(max_size_);
    }
  }

  // Counts the direction's partial message (what the decoder has reserved for it) against the
  // budget for all directions; drops it if that runs out.
  void charge(const flow& f, direction& d) {
    const std::size_t want =
        d.fed >= header_size ? d.fed + d.decoder.bytes_needed() : d.fed;  // length once known
    buffered_ = buffered_ - d.charged + want;
    d.charged = want;
    if (buffered_ > budget_) {
      note(to_string(f) + ": more than " + std::to_string(budget_) +
           " bytes of partial messages in all streams; dropping this one");
      ++stats_.dropped;
      reset(d);
      d.synced = false;
    }
  }

  void reset(direction& d) {
    d.decoder = frame_decoder(max_size_);  // forgets the partial message and frees its buffer
    d.fed = 0;
    buffered_ -= d.charged;
    d.charged = 0;
  }

  void drop_partial(const flow& f, direction& d, const std::string& cause) {
    if (d.fed > 0) {
      note(to_string(f) + ": partial message (" + std::to_string(d.fed) + " bytes) dropped at " +
           cause);
      ++stats_.dropped;
    }
    reset(d);
  }

  void print(const flow& f, const message_view& msg, const packet& p) {
    ++stats_.messages;
    std::cout << '#' << stats_.messages << ' ' << to_string(f) << " t=" << to_string(p.time)
              << " frame=" << p.number << '\n'
              << to_text(msg);
    if (flush_) std::cout.flush();
    if (auto bad = check_avps(msg, dictionary::base()))
      error(
          p, f,
          "message #" + std::to_string(stats_.messages) + " has malformed AVPs: " + bad.message());
  }

  void error(const packet& p, const flow& f, const std::string& what) {
    ++stats_.malformed;
    note("frame " + std::to_string(p.number) + ", " + to_string(f) + ": " + what);
  }

  void note(const std::string& text) {
    if (notes_ < max_notes) {
      std::cerr << "diampool decode: " << text << "\n";
    } else if (notes_ == max_notes) {
      std::cerr << "diampool decode: further notes suppressed; see the summary\n";
    }
    ++notes_;
  }

  struct statistics {
    std::uint64_t frames = 0, messages = 0, malformed = 0, dropped = 0, gaps = 0, retransmitted = 0,
                  fragments = 0, bad_frames = 0, not_tcp = 0, ignored = 0, untracked = 0,
                  unsupported = 0, clipped = 0;
  };

  std::size_t max_size_;
  std::size_t budget_;
  bool flush_;
  std::size_t buffered_ = 0;
  int notes_ = 0;
  statistics stats_;
  std::map<flow, direction> directions_;
  std::set<std::uint32_t> unsupported_links_;
};

// Decodes the capture in `in`: 0 all messages well formed, 2 some malformed, 1 unusable input.
int decode_capture(std::istream& in, const std::string& name, std::size_t max_size, bool flush,
                   std::string prefix = {}) {
  capture_reader reader(in, name, std::move(prefix));
  if (!reader.open()) {
    std::cerr << "diampool decode: " << reader.error() << "\n";
    return 1;
  }
  capture_decoder decoder(max_size, flush);
  packet p;
  while (reader.next(p))
    decoder.on_packet(p);
  const int status = decoder.finish();
  if (!reader.error().empty()) {
    std::cerr << "diampool decode: " << reader.error() << "\n";
    return 1;
  }
  return status;
}

}  // namespace

void add_decode(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<decode_options>();
  CLI::App* cmd = app.add_subcommand(
      "decode",
      "Print Diameter messages as AVP trees: hex from arguments, a file or stdin, or the TCP "
      "streams of a packet capture");
  cmd->footer(
      "Captures (--pcap, or -f on a file that starts with a pcap or pcapng magic number):\n"
      "  classic pcap (micro- or nanosecond, either byte order) and pcapng; link types\n"
      "  Ethernet (VLAN tags too), raw IPv4/IPv6, Linux SLL and SLL2, BSD loopback.\n"
      "  Each direction of each TCP connection is reassembled by sequence number (bytes seen\n"
      "  before are skipped; segments are not reordered). After a gap, or when the capture\n"
      "  starts mid-connection, decoding resumes at the next segment that starts with a\n"
      "  plausible Diameter header. IP fragments and non-TCP frames are skipped.\n"
      "  Each message is printed in capture order after a line\n"
      "    #N SRC -> DST t=SECONDS frame=F\n"
      "  where F is the frame that completed it. Notes and a summary go to stderr.\n"
      "Exit status: 0 every message well formed; 2 a malformed message, or a connection\n"
      "closed (FIN/RST) inside one; 1 unusable input (not hex, not a capture, a truncated\n"
      "or corrupt capture). Messages lost to capture gaps are reported but do not change it.");
  cmd->add_option("hex", opts->hex, "Hex bytes of one or more messages (default: read stdin)");
  auto* file = cmd->add_option("-f,--file", opts->file,
                               "Read hex from this file instead (or a capture, by its magic)");
  cmd->add_option("--pcap", opts->pcap, "Read a pcap or pcapng capture ('-': stdin)")
      ->excludes(file);
  cmd->add_option("--max-size", opts->max_size, "Largest message accepted, in bytes")
      ->capture_default_str();
  cmd->callback([opts, &exit_code] {
    if (!opts->pcap.empty()) {
      if (!opts->hex.empty()) {
        std::cerr << "diampool decode: --pcap takes no hex arguments\n";
        exit_code = 1;
        return;
      }
      if (opts->pcap == "-") {
        exit_code = decode_capture(std::cin, "stdin", opts->max_size, true);
        return;
      }
      std::ifstream in(opts->pcap, std::ios::binary);
      if (!in) {
        std::cerr << "diampool decode: cannot open " << opts->pcap << "\n";
        exit_code = 1;
        return;
      }
      exit_code = decode_capture(in, opts->pcap, opts->max_size, false);
      return;
    }
    std::string text;
    if (!opts->file.empty()) {
      std::ifstream in(opts->file, std::ios::binary);
      if (!in) {
        std::cerr << "diampool decode: cannot open " << opts->file << "\n";
        exit_code = 1;
        return;
      }
      // The first bytes tell a capture from hex; they are read once, so a pipe works too.
      char magic[12] = {};
      in.read(magic, sizeof magic);
      const std::string head(magic, static_cast<std::size_t>(in.gcount()));
      in.clear();
      if (sniff(reinterpret_cast<const std::uint8_t*>(head.data()), head.size()) !=
          capture_format::none) {
        exit_code = decode_capture(in, opts->file, opts->max_size, false, head);
        return;
      }
      text = head;
      text.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    } else if (!opts->hex.empty()) {
      for (const auto& h : opts->hex)
        text += h;
    } else {
      text.assign(std::istreambuf_iterator<char>(std::cin), {});
    }
    bool ok = false;
    const std::vector<std::uint8_t> bytes = from_hex(text, ok);
    if (!ok) {
      std::cerr << "diampool decode: input is not hex (odd digit count or a non-hex character)\n";
      exit_code = 1;
      return;
    }
    if (bytes.empty()) {
      std::cerr << "diampool decode: no input\n";
      exit_code = 1;
      return;
    }
    exit_code = decode_stream(bytes, opts->max_size);
  });
}

}  // namespace diampool::cli
