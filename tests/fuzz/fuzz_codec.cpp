// libFuzzer target for the sans-I/O codec: frame_decoder, the AVP reader, the typed accessors,
// check_avps, to_text and a message_builder round trip. Every invariant is checked with a hard
// abort, so a violation is a finding under libFuzzer and a failed test under the replay main.
//
// Input format: the first byte picks how the rest (a Diameter byte stream) is cut into put()
// calls; see chunker below. The seeds in corpus/codec follow it (make_corpus.cpp).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/error.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/message.hpp"
#include "diampool/print.hpp"

#define FUZZ_CHECK(cond)                       \
  do {                                         \
    if (!(cond)) ::fuzz_fail(#cond, __LINE__); \
  } while (0)

[[noreturn]] static void fuzz_fail(const char* what, int line) {
  std::fprintf(stderr, "fuzz_codec.cpp:%d: invariant failed: %s\n", line, what);
  std::fflush(stderr);
  __builtin_trap();
}

namespace {

using namespace diampool;
using bytes_view = std::span<const std::uint8_t>;

constexpr std::size_t large_max = 64 * 1024;
constexpr std::size_t small_max = 256;  // lets short inputs reach the exact size limit

std::uint32_t be24(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
}
std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}
std::uint64_t be64(const std::uint8_t* p) {
  return (std::uint64_t{be32(p)} << 32) | be32(p + 4);
}
std::size_t pad4(std::size_t n) {
  return (4 - (n & 3)) & 3;
}

bool same_bytes(bytes_view a, bytes_view b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// ---- chunk schedules ---------------------------------------------------------------------------

// Schedule byte: bits 0-2 the mode, bits 3-6 a parameter p, bit 7 a 256-byte maximum message
// size (instead of 64 KiB).
//   0: the whole rest at once            1: one byte at a time
//   2: chunks of p+1 bytes               3: chunks of 7*(p+1) bytes
//   4: exactly bytes_needed()            5: bytes_needed() + p
//   6: pseudo-random sizes 0..64         7: the cycle 1, 20, p, 4, 21, 1000
class chunker {
 public:
  explicit chunker(std::uint8_t schedule) noexcept
      : mode_(schedule & 7u), param_((schedule >> 3) & 15u), rng_(0x9E3779B9u ^ schedule) {}

  std::size_t next(const frame_decoder& dec, std::size_t left) noexcept {
    std::size_t n = 0;
    switch (mode_) {
      case 0:
        n = left;
        break;
      case 1:
        n = 1;
        break;
      case 2:
        n = param_ + 1;
        break;
      case 3:
        n = 7 * (param_ + 1);
        break;
      case 4:
        n = dec.bytes_needed();
        break;
      case 5:
        n = dec.bytes_needed() + param_;
        break;
      case 6:
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 17;
        rng_ ^= rng_ << 5;
        n = rng_ % 65;
        break;
      default: {
        static constexpr std::size_t cycle[] = {1, 20, 0, 4, 21, 1000};
        n = cycle[step_ % 6] == 0 ? param_ : cycle[step_ % 6];
        ++step_;
        break;
      }
    }
    // Empty puts are worth trying, but not forever.
    if (n == 0 && ++empty_puts_ > 64) n = 1;
    return n < left ? n : left;
  }

 private:
  unsigned mode_;
  unsigned param_;
  std::uint32_t rng_;
  std::size_t step_ = 0;
  std::size_t empty_puts_ = 0;
};

// What a run of the decoder over the stream produced; must not depend on the chunking.
struct stream_record {
  std::vector<std::size_t> message_ends;  // stream offsets just past each message
  std::error_code error;                  // the framing error, if any
  std::size_t error_at = 0;               // stream offset of the message that failed

  friend bool operator==(const stream_record&, const stream_record&) = default;
};

// ---- the AVP reader oracle ---------------------------------------------------------------------

// What avp_reader must report for the bytes [p, p + rest) at nesting allowance `depth_left`,
// straight from the contract in avp.hpp and error.hpp. Empty code: one AVP is readable.
std::error_code expected_reader_error(const std::uint8_t* p, std::size_t rest,
                                      unsigned depth_left) {
  if (depth_left == 0) return error::nesting_too_deep;
  if (rest < 8) return error::truncated_avp_header;
  const std::size_t hsize = (p[4] & avp_flags::vendor) != 0 ? 12 : 8;
  if (rest < hsize) return error::truncated_avp_header;
  const std::size_t length = be24(p + 5);
  if (length < hsize) return error::bad_avp_length;
  if (length > rest) return error::avp_overrun;
  if (length + pad4(length) > rest) return error::bad_padding;
  return {};
}

// ---- per-AVP checks ----------------------------------------------------------------------------

void check_accessors(const avp& a) {
  const bytes_view d = a.data();
  const std::uint8_t* p = d.data();
  std::error_code ec;

  const std::int32_t i32 = a.as_integer32(ec);
  FUZZ_CHECK(d.size() == 4 ? !ec && static_cast<std::uint32_t>(i32) == be32(p)
                           : ec == error::bad_value_length);
  const std::uint32_t u32 = a.as_unsigned32(ec);
  FUZZ_CHECK(d.size() == 4 ? !ec && u32 == be32(p) : ec == error::bad_value_length);
  const float f32 = a.as_float32(ec);
  FUZZ_CHECK(d.size() == 4 ? !ec : ec == error::bad_value_length);
  if (!ec) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &f32, 4);
    FUZZ_CHECK(bits == be32(p));
  }
  const std::int64_t i64 = a.as_integer64(ec);
  FUZZ_CHECK(d.size() == 8 ? !ec && static_cast<std::uint64_t>(i64) == be64(p)
                           : ec == error::bad_value_length);
  const std::uint64_t u64 = a.as_unsigned64(ec);
  FUZZ_CHECK(d.size() == 8 ? !ec && u64 == be64(p) : ec == error::bad_value_length);
  const double f64 = a.as_float64(ec);
  FUZZ_CHECK(d.size() == 8 ? !ec : ec == error::bad_value_length);
  if (!ec) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &f64, 8);
    FUZZ_CHECK(bits == be64(p));
  }

  const diameter_time t = a.as_time(ec);
  FUZZ_CHECK(d.size() == 4 ? !ec : ec == error::bad_value_length);
  if (!ec) {
    std::error_code ec2;
    const std::uint32_t ntp = to_ntp_seconds(t, ec2);  // every wire value is in range
    FUZZ_CHECK(!ec2 && ntp == be32(p));
  }

  const std::string_view s = a.as_utf8(ec);
  FUZZ_CHECK(is_valid_utf8(a.as_string()) ? !ec : ec == error::invalid_utf8);
  if (!ec) FUZZ_CHECK(s.data() == a.as_string().data() && s.size() == d.size());

  const address_view addr = a.as_address(ec);
  if (d.size() < 2) {
    FUZZ_CHECK(ec == error::bad_address);
  } else {
    const unsigned family = (unsigned{p[0]} << 8) | p[1];
    const bool wrong = (family == address_family::ipv4 && d.size() != 6) ||
                       (family == address_family::ipv6 && d.size() != 18);
    FUZZ_CHECK(wrong ? ec == error::bad_address : !ec);
    if (!ec) {
      FUZZ_CHECK(addr.family == family);
      FUZZ_CHECK(addr.address.data() == p + 2 && addr.address.size() == d.size() - 2);
      const auto ip = addr.ip();
      FUZZ_CHECK(ip.has_value() ==
                 (family == address_family::ipv4 || family == address_family::ipv6));
      if (ip) {
        FUZZ_CHECK(ip->family() == family && same_bytes(ip->bytes(), addr.address));
        const auto reparsed = ip_address::parse(ip->to_string());
        FUZZ_CHECK(reparsed && *reparsed == *ip);
      }
    }
  }
}

struct walk_state {
  const dictionary& dict;
  std::error_code first_dict_error;  // what check_avps must return
};

// Walks every AVP of `range` and returns its error, which reads `parent` with nesting allowance
// `depth_left`: the AVPs must tile `parent` from its start, match the raw bytes and the reader
// oracle, and the children of each are walked too (of every AVP, not only the grouped ones).
// `dict_path` says whether check_avps descends this far (every ancestor is Grouped in the
// dictionary).
std::error_code walk(avp_range range, bytes_view parent, unsigned depth_left, bool dict_path,
                     walk_state& st) {
  const std::uint8_t* cursor = parent.data();
  const std::uint8_t* const end = parent.data() + parent.size();
  for (const avp& a : range) {
    const avp_header& h = a.header();
    const std::size_t hsize = h.size();
    const std::uint8_t* start = cursor;
    FUZZ_CHECK(static_cast<std::size_t>(end - start) >= hsize);
    FUZZ_CHECK(!expected_reader_error(start, static_cast<std::size_t>(end - start), depth_left));
    FUZZ_CHECK(a.data().data() == start + hsize);
    const std::uint8_t* data_end = a.data().data() + a.data().size();
    FUZZ_CHECK(data_end <= end && data_end + pad4(h.length) <= end);
    FUZZ_CHECK(h.code == be32(start) && h.flags == start[4] && h.length == be24(start + 5));
    FUZZ_CHECK(h.length == hsize + a.data().size());
    FUZZ_CHECK(h.vendor_id == (hsize == 12 ? be32(start + 8) : 0u));
    FUZZ_CHECK(a.code() == h.code && a.flags() == h.flags && a.vendor_id() == h.vendor_id);
    FUZZ_CHECK(a.is_vendor_specific() == (hsize == 12));
    FUZZ_CHECK(a.depth_left() == depth_left - 1);
    cursor = data_end + pad4(h.length);

    check_accessors(a);

    const avp_definition* def = st.dict.find_avp(a.code(), a.vendor_id());
    const bool grouped = def != nullptr && def->type == avp_type::grouped;
    const std::error_code child_ec =
        walk(a.children(), a.data(), a.depth_left(), dict_path && grouped, st);
    if (a.depth_left() == 0 && !a.data().empty()) {
      FUZZ_CHECK(child_ec == error::nesting_too_deep);
    }
  }
  const std::error_code ec = range.error();
  if (ec) {
    FUZZ_CHECK(cursor < end);
    FUZZ_CHECK(ec ==
               expected_reader_error(cursor, static_cast<std::size_t>(end - cursor), depth_left));
    if (dict_path && !st.first_dict_error) st.first_dict_error = ec;
  } else {
    FUZZ_CHECK(cursor == end);
  }
  return ec;
}

// ---- the builder round trip --------------------------------------------------------------------

// True if the builder writes `range` back byte for byte: it reads cleanly, every padding byte
// is zero and no AVP sets V without a Vendor-ID (the builder ties V to a non-zero vendor).
bool canonical(avp_range range) {
  for (const avp& a : range) {
    if (a.is_vendor_specific() && a.vendor_id() == 0) return false;
    const std::uint8_t* pad = a.data().data() + a.data().size();
    for (std::size_t i = 0; i < pad4(a.header().length); ++i) {
      if (pad[i] != 0) return false;
    }
  }
  return !range.error();
}

// Adds the AVPs of a clean `range`: as a group (recursively) those whose children are
// canonical and that are Grouped in the dictionary or have data, the others as octets.
void rebuild(message_builder& b, avp_range range, const dictionary& dict) {
  for (const avp& a : range) {
    const avp_definition* def = dict.find_avp(a.code(), a.vendor_id());
    const bool grouped = def != nullptr && def->type == avp_type::grouped;
    if ((grouped || !a.data().empty()) && canonical(a.children())) {
      const auto g = b.begin_group(a.code(), a.flags(), a.vendor_id());
      rebuild(b, a.children(), dict);
      b.end_group(g);
    } else {
      b.add_octets(a.code(), a.data(), a.flags(), a.vendor_id());
    }
  }
}

void check_round_trip(const message_view& m, const dictionary& dict) {
  avp_range top = m.avps();
  for (const avp& a : top) {
    (void)a;
  }
  if (top.error()) return;
  const bool comparable = canonical(m.avps());

  static std::vector<std::uint8_t> out;
  out.clear();
  message_builder b(out, m.header());
  rebuild(b, m.avps(), dict);
  std::error_code ec;
  const bytes_view built = b.finish(ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(built.size() == b.size() && built.data() == out.data() && out.size() == b.size());
  const message_view again = message_view::parse(built, ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(again.header().command_code == m.header().command_code &&
             again.header().flags == m.header().flags &&
             again.header().application_id == m.header().application_id &&
             again.header().hop_by_hop == m.header().hop_by_hop &&
             again.header().end_to_end == m.header().end_to_end);
  // Whatever the original, the builder writes canonical AVPs.
  FUZZ_CHECK(canonical(again.avps()));
  if (!comparable) return;
  FUZZ_CHECK(same_bytes(built, m.bytes()));

  // The same into a fixed buffer: exactly big enough, then 4 bytes short.
  static std::vector<std::uint8_t> fixed;
  fixed.assign(m.bytes().size(), 0xEE);
  {
    message_builder fb(std::span<std::uint8_t>(fixed), m.header());
    rebuild(fb, m.avps(), dict);
    const bytes_view fbuilt = fb.finish(ec);
    FUZZ_CHECK(!ec && same_bytes(fbuilt, m.bytes()));
  }
  {
    message_builder fb(std::span<std::uint8_t>(fixed.data(), fixed.size() - 4), m.header());
    rebuild(fb, m.avps(), dict);
    const bytes_view fbuilt = fb.finish(ec);
    FUZZ_CHECK(ec == error::buffer_too_small && fbuilt.empty());
  }
}

// ---- one message -------------------------------------------------------------------------------

void check_message(const message_view& m, bytes_view original, std::size_t max_size) {
  const dictionary& dict = dictionary::base();
  const bytes_view bytes = m.bytes();
  const message_header& h = m.header();

  FUZZ_CHECK(bytes.size() == h.length);
  FUZZ_CHECK(bytes.size() >= header_size && bytes.size() <= max_size && bytes.size() % 4 == 0);
  FUZZ_CHECK(h.version == 1);
  FUZZ_CHECK(same_bytes(bytes, original));
  FUZZ_CHECK(m.body().data() == bytes.data() + header_size &&
             m.body().size() == bytes.size() - header_size);
  FUZZ_CHECK(h == message_header::read(original.data()));
  std::uint8_t header_bytes[header_size];
  h.write(header_bytes);
  FUZZ_CHECK(std::memcmp(header_bytes, original.data(), header_size) == 0);

  std::error_code ec;
  const message_view parsed = message_view::parse(bytes, ec, max_size);
  FUZZ_CHECK(!ec && parsed.header() == h && parsed.bytes().data() == bytes.data());

  // The full walk, which also works out what check_avps must say.
  walk_state st{dict, {}};
  walk(m.avps(), m.body(), default_max_avp_depth, true, st);
  FUZZ_CHECK(check_avps(m, dict) == st.first_dict_error);

  // A shallow limit: depth 1 rejects any Grouped AVP with content.
  (void)check_avps(m, dict, 1);

  // find() returns the first top-level AVP with that code and vendor, if the AVPs before it
  // are well formed.
  for (const std::uint32_t code : {263u, 264u, 268u}) {
    if (const auto found = m.find(code)) {
      FUZZ_CHECK(found->code() == code && found->vendor_id() == 0);
      FUZZ_CHECK(found->data().data() >= m.body().data() &&
                 found->data().data() + found->data().size() <= bytes.data() + bytes.size());
    }
  }

  const std::string text = to_text(m, dict);
  FUZZ_CHECK(!text.empty());
  avp_range top = m.avps();
  for (const avp& a : top) {
    FUZZ_CHECK(!to_text(a, dict, 2).empty());
  }

  check_round_trip(m, dict);
}

// ---- the stream --------------------------------------------------------------------------------

// Feeds data[0, size) to `dec` in chunks from `schedule`; with `deep`, checks every message.
stream_record run(frame_decoder& dec, const std::uint8_t* data, std::size_t size,
                  std::uint8_t schedule, bool deep) {
  stream_record rec;
  chunker chunks(schedule);
  std::size_t pos = 0;        // stream offset of the next byte not consumed
  std::size_t msg_begin = 0;  // stream offset of the message being decoded
  bool first = true;
  while (pos < size || first) {
    first = false;
    bytes_view chunk(data + pos, chunks.next(dec, size - pos));
    for (;;) {
      std::error_code ec;
      const decode_result r = dec.put(chunk, ec);
      FUZZ_CHECK(r.consumed <= chunk.size());
      pos += r.consumed;
      chunk = chunk.subspan(r.consumed);
      FUZZ_CHECK(pos <= size);
      if (r.status == decode_status::error) {
        FUZZ_CHECK(ec);
        // The header at msg_begin is what failed; the decoder saw all of it and no more.
        FUZZ_CHECK(size - msg_begin >= header_size && pos - msg_begin <= header_size);
        std::error_code expected;
        FUZZ_CHECK(check_header(data + msg_begin, dec.max_message_size(), expected) == 0);
        FUZZ_CHECK(expected == ec);
        // Sticky: every later put fails the same way and consumes nothing.
        const bytes_view later[] = {
            chunk, {}, bytes_view(data + pos, size - pos), bytes_view(data, size)};
        for (const bytes_view& bytes : later) {
          std::error_code ec2;
          const decode_result r2 = dec.put(bytes, ec2);
          FUZZ_CHECK(r2.status == decode_status::error && r2.consumed == 0 && ec2 == ec);
        }
        rec.error = ec;
        rec.error_at = msg_begin;
        return rec;
      }
      FUZZ_CHECK(!ec);
      if (r.status == decode_status::need_more) {
        FUZZ_CHECK(chunk.empty());  // need_more consumes everything given
        const std::size_t have = pos - msg_begin;
        const std::size_t needed =
            have < header_size ? header_size - have : be24(data + msg_begin + 1) - have;
        FUZZ_CHECK(dec.bytes_needed() == needed && needed > 0);
        break;
      }
      FUZZ_CHECK(r.status == decode_status::message);
      const message_view& m = dec.message();
      const std::size_t length = m.bytes().size();
      FUZZ_CHECK(length >= header_size && msg_begin + length == pos);
      std::error_code hec;
      FUZZ_CHECK(check_header(data + msg_begin, dec.max_message_size(), hec) == length && !hec);
      if (deep) {
        check_message(m, bytes_view(data + msg_begin, length), dec.max_message_size());
      } else {
        FUZZ_CHECK(same_bytes(m.bytes(), bytes_view(data + msg_begin, length)));
      }
      FUZZ_CHECK(dec.bytes_needed() == header_size);
      rec.message_ends.push_back(pos);
      msg_begin = pos;
      if (chunk.empty()) break;
    }
  }
  return rec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t schedule = data[0];
  const std::size_t max_size = (schedule & 0x80) != 0 ? small_max : large_max;
  ++data;
  --size;

  frame_decoder dec(max_size);
  FUZZ_CHECK(dec.max_message_size() == max_size && dec.bytes_needed() == header_size);
  const stream_record chunked = run(dec, data, size, schedule, true);

  // The same stream again after reset(), cut differently, must frame identically.
  dec.reset();
  FUZZ_CHECK(dec.bytes_needed() == header_size);
  const std::uint8_t other = (schedule & 7) == 0 ? 1 : 0;
  const stream_record whole = run(dec, data, size, other, false);
  FUZZ_CHECK(chunked == whole);
  return 0;
}
