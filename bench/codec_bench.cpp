// Codec micro-benchmarks: building and decoding whole messages with the sans-I/O codec.
//
// This binary replaces the global operator new/delete with counting versions; every benchmark
// reports "allocs_per_msg", the heap allocations made inside its timed loop divided by the
// messages it handled (buffers are warmed up before the loop, as a connection would be).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <span>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/frame_decoder.hpp"

// ---- allocation counting -----------------------------------------------------------------

namespace {
std::atomic<std::uint64_t> allocations{0};

void* counted_alloc(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}

void* counted_aligned_alloc(std::size_t n, std::align_val_t al) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(al);
  // aligned_alloc wants the size to be a multiple of the alignment.
  return std::aligned_alloc(a, n == 0 ? a : (n + a - 1) / a * a);
}
}  // namespace

// noinline: GCC 12 otherwise inlines one side of a new/delete pair down to malloc or free and
// warns (-Wmismatched-new-delete) about a pairing that is in fact consistent.
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t al) {
  if (void* p = counted_aligned_alloc(n, al)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n, std::align_val_t al) {
  if (void* p = counted_aligned_alloc(n, al)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace {

using namespace diampool;

std::uint64_t allocations_now() {
  return allocations.load(std::memory_order_relaxed);
}

/// Sets the counters of a benchmark: messages/s, bytes/s, allocs_per_msg and bytes_per_msg.
void report(benchmark::State& state, std::uint64_t allocs, std::uint64_t messages,
            std::uint64_t bytes) {
  state.SetItemsProcessed(static_cast<std::int64_t>(messages));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["allocs_per_msg"] =
      messages == 0 ? 0.0 : static_cast<double>(allocs) / static_cast<double>(messages);
  state.counters["bytes_per_msg"] =
      messages == 0 ? 0.0 : static_cast<double>(bytes) / static_cast<double>(messages);
}

// ---- the messages ------------------------------------------------------------------------

// Credit-Control (RFC 4006) and 3GPP (TS 29.061 / 29.212 / 32.299) codes used below.
namespace cc {
inline constexpr std::uint32_t credit_control = 272;
inline constexpr std::uint32_t cc_request_number = 415;
inline constexpr std::uint32_t cc_request_type = 416;
inline constexpr std::uint32_t cc_total_octets = 421;
inline constexpr std::uint32_t rating_group = 432;
inline constexpr std::uint32_t requested_service_unit = 437;
inline constexpr std::uint32_t subscription_id = 443;
inline constexpr std::uint32_t subscription_id_data = 444;
inline constexpr std::uint32_t subscription_id_type = 450;
inline constexpr std::uint32_t multiple_services_credit_control = 456;
inline constexpr std::uint32_t service_context_id = 461;
// vendor 10415
inline constexpr std::uint32_t tgpp_charging_characteristics = 13;
inline constexpr std::uint32_t tgpp_sgsn_mcc_mnc = 18;
inline constexpr std::uint32_t rat_type = 1032;
inline constexpr std::uint32_t sgsn_address = 1228;
}  // namespace cc

const diameter_time event_time{std::chrono::seconds{1700000000}};

/// A full CER (the capabilities exchange every connection starts with).
void build_cer(std::vector<std::uint8_t>& out, std::uint32_t hop_by_hop) {
  message_header h;
  h.flags = cmd_flags::request;
  h.command_code = command::capabilities_exchange;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = 0x5e000000U | hop_by_hop;
  message_builder b(out, h);
  b.add_string(avp_code::origin_host, "pcef1.epc.example.net")
      .add_string(avp_code::origin_realm, "epc.example.net")
      .add_address(avp_code::host_ip_address, ip_address::v4({192, 0, 2, 10}))
      .add_unsigned32(avp_code::vendor_id, vendor::tgpp)
      .add_string(avp_code::product_name, "diampool", 0)
      .add_unsigned32(avp_code::origin_state_id, 1700000000)
      .add_unsigned32(avp_code::supported_vendor_id, vendor::tgpp)
      .add_unsigned32(avp_code::auth_application_id, application::credit_control);
  const auto g = b.begin_group(avp_code::vendor_specific_application_id);
  b.add_unsigned32(avp_code::vendor_id, vendor::tgpp)
      .add_unsigned32(avp_code::auth_application_id, 16777238);  // Gx
  b.end_group(g);
  b.add_unsigned32(avp_code::firmware_revision, 1, 0);
  std::error_code ec;
  b.finish(ec);
  if (ec) throw std::system_error(ec);
}

/// A Gy CCR-Initial: 20 AVPs in all (15 top level, 5 inside groups nested two deep).
void build_request20(std::vector<std::uint8_t>& out, std::uint32_t hop_by_hop) {
  message_header h;
  h.flags = cmd_flags::request | cmd_flags::proxiable;
  h.command_code = cc::credit_control;
  h.application_id = application::credit_control;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = 0x5e000000U | hop_by_hop;
  message_builder b(out, h);
  b.add_string(avp_code::session_id, "pcef1.epc.net;1700000000;42")
      .add_string(avp_code::origin_host, "pcef1.epc.net")
      .add_string(avp_code::origin_realm, "epc.net")
      .add_string(avp_code::destination_realm, "ocs.net")
      .add_string(avp_code::destination_host, "ocs1.ocs.net")
      .add_unsigned32(avp_code::auth_application_id, application::credit_control)
      .add_integer32(cc::cc_request_type, 1)  // INITIAL_REQUEST
      .add_unsigned32(cc::cc_request_number, 0)
      .add_time(avp_code::event_timestamp, event_time);
  const auto sub = b.begin_group(cc::subscription_id);
  b.add_integer32(cc::subscription_id_type, 0)  // END_USER_E164
      .add_string(cc::subscription_id_data, "491701234567");
  b.end_group(sub);
  const auto mscc = b.begin_group(cc::multiple_services_credit_control);
  b.add_unsigned32(cc::rating_group, 100);
  const auto rsu = b.begin_group(cc::requested_service_unit);
  b.add_unsigned64(cc::cc_total_octets, 5'000'000'000ULL);
  b.end_group(rsu);
  b.end_group(mscc);
  b.add_string(cc::tgpp_sgsn_mcc_mnc, "26201", 0, vendor::tgpp)
      .add_integer32(cc::rat_type, 1004, 0, vendor::tgpp)  // EUTRAN
      .add_address(cc::sgsn_address, ip_address::v4({198, 51, 100, 7}), 0, vendor::tgpp)
      .add_string(cc::tgpp_charging_characteristics, "0800", 0, vendor::tgpp);
  std::error_code ec;
  b.finish(ec);
  if (ec) throw std::system_error(ec);
}

std::vector<std::uint8_t> make(void (*build)(std::vector<std::uint8_t>&, std::uint32_t)) {
  std::vector<std::uint8_t> out;
  build(out, 1);
  return out;
}

// ---- walking -----------------------------------------------------------------------------

/// How the application reads each AVP: what a receiver that knows its messages does.
enum class kind : std::uint8_t { octets, utf8, u32, i32, u64, time, address, grouped };

constexpr kind kind_of(std::uint32_t code, std::uint32_t vendor_id) noexcept {
  if (vendor_id == vendor::tgpp) {
    switch (code) {
      case cc::tgpp_sgsn_mcc_mnc:
      case cc::tgpp_charging_characteristics:
        return kind::utf8;
      case cc::rat_type:
        return kind::i32;
      case cc::sgsn_address:
        return kind::address;
      default:
        return kind::octets;
    }
  }
  if (vendor_id != 0) return kind::octets;
  switch (code) {
    case avp_code::session_id:
    case avp_code::product_name:
    case cc::subscription_id_data:
      return kind::utf8;
    case avp_code::vendor_id:
    case avp_code::origin_state_id:
    case avp_code::supported_vendor_id:
    case avp_code::auth_application_id:
    case avp_code::firmware_revision:
    case cc::cc_request_number:
    case cc::rating_group:
      return kind::u32;
    case cc::cc_request_type:
    case cc::subscription_id_type:
      return kind::i32;
    case cc::cc_total_octets:
      return kind::u64;
    case avp_code::event_timestamp:
      return kind::time;
    case avp_code::host_ip_address:
      return kind::address;
    case avp_code::vendor_specific_application_id:
    case cc::subscription_id:
    case cc::multiple_services_credit_control:
    case cc::requested_service_unit:
      return kind::grouped;
    default:  // Origin-Host, Origin-Realm, Destination-*: DiameterIdentity, read as bytes
      return kind::octets;
  }
}

/// Reads every AVP of `range` (descending into grouped ones) with the fitting typed accessor.
/// Returns the number of AVPs read, or 0 on any error.
std::size_t walk(avp_range range) noexcept {
  std::size_t n = 0;
  std::error_code ec;
  for (const avp& a : range) {
    ++n;
    switch (kind_of(a.code(), a.vendor_id())) {
      case kind::octets:
        benchmark::DoNotOptimize(a.as_string());
        break;
      case kind::utf8:
        benchmark::DoNotOptimize(a.as_utf8(ec));
        break;
      case kind::u32:
        benchmark::DoNotOptimize(a.as_unsigned32(ec));
        break;
      case kind::i32:
        benchmark::DoNotOptimize(a.as_integer32(ec));
        break;
      case kind::u64:
        benchmark::DoNotOptimize(a.as_unsigned64(ec));
        break;
      case kind::time:
        benchmark::DoNotOptimize(a.as_time(ec));
        break;
      case kind::address:
        benchmark::DoNotOptimize(a.as_address(ec));
        break;
      case kind::grouped: {
        const std::size_t inner = walk(a.children());
        if (inner == 0) return 0;
        n += inner;
        break;
      }
    }
    if (ec) return 0;
  }
  return range.error() ? 0 : n;
}

/// As walk(), but the type of each AVP comes from a dictionary lookup (a generic receiver,
/// e.g. a printer or a validator).
std::size_t walk_dict(avp_range range, const dictionary& dict) noexcept {
  std::size_t n = 0;
  std::error_code ec;
  for (const avp& a : range) {
    ++n;
    const avp_definition* def = dict.find_avp(a.code(), a.vendor_id());
    const avp_type t = def != nullptr ? def->type : avp_type::octet_string;
    switch (t) {
      case avp_type::grouped: {
        const std::size_t inner = walk_dict(a.children(), dict);
        if (inner == 0) return 0;
        n += inner;
        break;
      }
      case avp_type::integer32:
      case avp_type::enumerated:
        benchmark::DoNotOptimize(a.as_integer32(ec));
        break;
      case avp_type::integer64:
        benchmark::DoNotOptimize(a.as_integer64(ec));
        break;
      case avp_type::unsigned32:
        benchmark::DoNotOptimize(a.as_unsigned32(ec));
        break;
      case avp_type::unsigned64:
        benchmark::DoNotOptimize(a.as_unsigned64(ec));
        break;
      case avp_type::float32:
        benchmark::DoNotOptimize(a.as_float32(ec));
        break;
      case avp_type::float64:
        benchmark::DoNotOptimize(a.as_float64(ec));
        break;
      case avp_type::address:
        benchmark::DoNotOptimize(a.as_address(ec));
        break;
      case avp_type::time:
        benchmark::DoNotOptimize(a.as_time(ec));
        break;
      case avp_type::utf8_string:
        benchmark::DoNotOptimize(a.as_utf8(ec));
        break;
      case avp_type::octet_string:
      case avp_type::diameter_identity:
      case avp_type::diameter_uri:
      case avp_type::ip_filter_rule:
        benchmark::DoNotOptimize(a.as_string());
        break;
    }
    if (ec) return 0;
  }
  return range.error() ? 0 : n;
}

/// The base dictionary plus the Credit-Control and 3GPP AVPs of the request.
const dictionary& cc_dictionary() {
  static const dictionary dict = [] {
    dictionary d = dictionary::base();
    auto add = [&](std::uint32_t code, std::uint32_t vendor_id, const char* name, avp_type t) {
      avp_definition def;
      def.code = code;
      def.vendor_id = vendor_id;
      def.name = name;
      def.type = t;
      d.add(std::move(def));
    };
    add(cc::cc_request_number, 0, "CC-Request-Number", avp_type::unsigned32);
    add(cc::cc_request_type, 0, "CC-Request-Type", avp_type::enumerated);
    add(cc::cc_total_octets, 0, "CC-Total-Octets", avp_type::unsigned64);
    add(cc::rating_group, 0, "Rating-Group", avp_type::unsigned32);
    add(cc::requested_service_unit, 0, "Requested-Service-Unit", avp_type::grouped);
    add(cc::subscription_id, 0, "Subscription-Id", avp_type::grouped);
    add(cc::subscription_id_data, 0, "Subscription-Id-Data", avp_type::utf8_string);
    add(cc::subscription_id_type, 0, "Subscription-Id-Type", avp_type::enumerated);
    add(cc::multiple_services_credit_control, 0, "Multiple-Services-Credit-Control",
        avp_type::grouped);
    add(cc::service_context_id, 0, "Service-Context-Id", avp_type::utf8_string);
    add(cc::tgpp_charging_characteristics, vendor::tgpp, "3GPP-Charging-Characteristics",
        avp_type::utf8_string);
    add(cc::tgpp_sgsn_mcc_mnc, vendor::tgpp, "3GPP-SGSN-MCC-MNC", avp_type::utf8_string);
    add(cc::rat_type, vendor::tgpp, "RAT-Type", avp_type::enumerated);
    add(cc::sgsn_address, vendor::tgpp, "SGSN-Address", avp_type::address);
    return d;
  }();
  return dict;
}

// ---- benchmarks --------------------------------------------------------------------------

void encode(benchmark::State& state, void (*build)(std::vector<std::uint8_t>&, std::uint32_t)) {
  std::vector<std::uint8_t> out;
  build(out, 0);  // warm-up: the vector keeps its capacity from here on
  std::uint32_t hop = 0;
  const std::uint64_t before = allocations_now();
  for (auto _ : state) {
    out.clear();
    build(out, ++hop);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const std::uint64_t allocs = allocations_now() - before;
  const auto n = static_cast<std::uint64_t>(state.iterations());
  report(state, allocs, n, n * out.size());
}

template <typename Walk>
void decode_walk(benchmark::State& state, const std::vector<std::uint8_t>& msg,
                 std::size_t expected_avps, Walk&& walk_message) {
  frame_decoder d;
  std::error_code ec;
  {  // check once, outside the timed loop, that the walk reads everything
    const auto r = d.put(msg, ec);
    if (r.status != decode_status::message || walk_message(d.message()) != expected_avps) {
      state.SkipWithError("message did not decode or walk as expected");
      return;
    }
  }
  std::size_t avps = 0;
  const std::uint64_t before = allocations_now();
  for (auto _ : state) {
    const auto r = d.put(msg, ec);
    benchmark::DoNotOptimize(r);
    avps += walk_message(d.message());
  }
  const std::uint64_t allocs = allocations_now() - before;
  const auto n = static_cast<std::uint64_t>(state.iterations());
  if (avps != n * expected_avps) state.SkipWithError("walk failed in the timed loop");
  report(state, allocs, n, n * msg.size());
}

constexpr std::size_t cer_avps = 12;        // 10 top level + 2 in Vendor-Specific-Application-Id
constexpr std::size_t request20_avps = 20;  // 15 top level + 5 in groups

void BM_encode_cer(benchmark::State& state) {
  encode(state, build_cer);
}
BENCHMARK(BM_encode_cer);

void BM_decode_cer(benchmark::State& state) {
  const auto msg = make(build_cer);
  decode_walk(state, msg, cer_avps, [](const message_view& m) { return walk(m.avps()); });
}
BENCHMARK(BM_decode_cer);

void BM_encode_request20(benchmark::State& state) {
  encode(state, build_request20);
}
BENCHMARK(BM_encode_request20);

void BM_decode_walk_request20(benchmark::State& state) {
  const auto msg = make(build_request20);
  decode_walk(state, msg, request20_avps, [](const message_view& m) { return walk(m.avps()); });
}
BENCHMARK(BM_decode_walk_request20);

// Informational: the same walk, but each AVP's type found in a dictionary (a generic reader).
void BM_decode_walk_request20_dict(benchmark::State& state) {
  const auto msg = make(build_request20);
  const dictionary& dict = cc_dictionary();
  decode_walk(state, msg, request20_avps,
              [&](const message_view& m) { return walk_dict(m.avps(), dict); });
}
BENCHMARK(BM_decode_walk_request20_dict);

// Framing only: a stream of back-to-back messages (requests and CERs, 4:1) read in 1500-byte
// chunks, as from TCP; messages that straddle a chunk are gathered by the decoder.
void BM_decode_stream(benchmark::State& state) {
  std::vector<std::uint8_t> stream;
  std::uint64_t per_pass = 0;
  while (stream.size() < 256 * 1024) {
    const auto hop = static_cast<std::uint32_t>(per_pass);
    if (per_pass % 5 == 4) {
      build_cer(stream, hop);
    } else {
      build_request20(stream, hop);
    }
    ++per_pass;
  }
  constexpr std::size_t chunk = 1500;
  frame_decoder d;
  std::error_code ec;
  auto pass = [&]() -> std::uint64_t {
    std::uint64_t messages = 0;
    for (std::size_t off = 0; off < stream.size(); off += chunk) {
      std::span<const std::uint8_t> in(stream.data() + off, std::min(chunk, stream.size() - off));
      while (!in.empty()) {
        const auto r = d.put(in, ec);
        if (r.status == decode_status::message) {
          ++messages;
          benchmark::DoNotOptimize(d.message().header().hop_by_hop);
        } else if (r.status == decode_status::error) {
          return 0;
        }
        in = in.subspan(r.consumed);
      }
    }
    return messages;
  };
  if (pass() != per_pass) {  // also the warm-up: the gathering buffer is allocated here
    state.SkipWithError("stream did not decode");
    return;
  }
  std::uint64_t messages = 0;
  const std::uint64_t before = allocations_now();
  for (auto _ : state)
    messages += pass();
  const std::uint64_t allocs = allocations_now() - before;
  const auto n = static_cast<std::uint64_t>(state.iterations());
  if (messages != n * per_pass) state.SkipWithError("stream did not decode in the timed loop");
  report(state, allocs, messages, n * stream.size());
  state.counters["msgs_per_pass"] = static_cast<double>(per_pass);
}
BENCHMARK(BM_decode_stream);

}  // namespace
