// Allocation behaviour of the decoder: hostile lengths cost nothing, and decoding a whole
// message in place allocates nothing. This binary replaces the global operator new to count.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "diampool/dictionary.hpp"
#include "diampool/error.hpp"
#include "diampool/frame_decoder.hpp"
#include "samples.hpp"

namespace {
std::atomic<std::size_t> allocations{0};
std::atomic<std::size_t> largest{0};
std::atomic<bool> counting{false};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    std::size_t prev = largest.load(std::memory_order_relaxed);
    while (n > prev && !largest.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace diampool {
namespace {

struct counter {
  counter() {
    allocations = 0;
    largest = 0;
    counting = true;
  }
  ~counter() { counting = false; }
};

void walk(avp_range range, const dictionary& dict, std::size_t& n) {
  for (const avp& a : range) {
    ++n;
    const avp_definition* def = dict.find_avp(a.code(), a.vendor_id());
    if (def != nullptr && def->type == avp_type::grouped) walk(a.children(), dict, n);
  }
}

TEST(allocation, decoding_and_walking_a_whole_message_allocates_nothing) {
  const auto messages = test::base_messages();
  const dictionary& dict = dictionary::base();
  frame_decoder d;
  std::size_t avps = 0;
  {
    counter c;
    for (const auto& msg : messages) {
      std::error_code ec;
      const auto r = d.put(msg, ec);
      ASSERT_EQ(r.status, decode_status::message);
      walk(d.message().avps(), dict, avps);
      ASSERT_FALSE(check_avps(d.message(), dict));
    }
    EXPECT_EQ(allocations.load(), 0U);
  }
  EXPECT_GT(avps, 50U);
}

std::vector<std::uint8_t> hostile_header(std::uint32_t length) {
  std::vector<std::uint8_t> b(20, 0);
  b[0] = 1;
  b[1] = static_cast<std::uint8_t>(length >> 16);
  b[2] = static_cast<std::uint8_t>(length >> 8);
  b[3] = static_cast<std::uint8_t>(length);
  return b;
}

TEST(allocation, a_16_mib_claimed_length_allocates_nothing) {
  const auto hdr = hostile_header(0xFFFFFC);
  counter c;
  frame_decoder d;
  std::error_code ec;
  for (const std::uint8_t byte : hdr) {
    if (d.put({&byte, 1}, ec).status == decode_status::error) break;
  }
  EXPECT_EQ(ec, error::message_too_long);
  EXPECT_LE(largest.load(), 64U);  // at most the 20-byte header gathering
}

TEST(allocation, a_partial_message_buffers_at_most_its_checked_length) {
  const auto msg = test::hex(test::reference_cer_hex);
  counter c;
  frame_decoder d(1024);
  std::error_code ec;
  d.put(std::span(msg).first(30), ec);
  d.put(std::span(msg).subspan(30), ec);
  EXPECT_EQ(d.message().bytes().size(), msg.size());
  EXPECT_LE(largest.load(), msg.size());
  EXPECT_GE(allocations.load(), 1U);
}

TEST(allocation, reusing_the_decoder_buffer_does_not_allocate_again) {
  const auto msg = test::hex(test::reference_cer_hex);
  frame_decoder d;
  std::error_code ec;
  d.put(std::span(msg).first(30), ec);
  d.put(std::span(msg).subspan(30), ec);
  counter c;
  for (int i = 0; i < 100; ++i) {
    d.put(std::span(msg).first(30), ec);
    ASSERT_EQ(d.put(std::span(msg).subspan(30), ec).status, decode_status::message);
  }
  EXPECT_EQ(allocations.load(), 0U);
}

TEST(allocation, building_into_a_reused_vector_does_not_allocate) {
  std::vector<std::uint8_t> out;
  out.reserve(4096);
  counter c;
  for (int i = 0; i < 100; ++i) {
    out.clear();
    message_header h;
    h.command_code = 280;
    h.flags = cmd_flags::request;
    message_builder b(out, h);
    b.add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_unsigned32(avp_code::origin_state_id, 1);
    ASSERT_FALSE(b.error());
    b.finish();
  }
  EXPECT_EQ(allocations.load(), 0U);
}

}  // namespace
}  // namespace diampool
