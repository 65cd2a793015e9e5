// Allocation behaviour of the decoder: hostile lengths cost nothing, and decoding a whole
// message in place allocates nothing. This binary replaces the global operator new to count.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <variant>

#include "diampool/dictionary.hpp"
#include "diampool/error.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/peer_machine.hpp"
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

// The peer machine's request table (by Hop-by-Hop id, by request) and deadline heap are
// arrays that keep their size: a batch that ends entirely before the next one starts (the
// usual shape when the completions of a batch of answers send the next batch) allocates
// nothing for them until the driver calls trim() with nothing pending.
class machine_batches : public ::testing::Test {
 protected:
  static constexpr std::size_t n = 16;

  void SetUp() override {
    peer_config c;
    c.local.origin_host = "client.example.com";
    c.local.origin_realm = "example.com";
    c.local.auth_application_ids = {4};
    m_.emplace(std::move(c), 7, 1'700'000'000);
    const ip_address local = ip_address::v4({127, 0, 0, 1});
    m_->start_connecting(now_);
    m_->connected(now_, {&local, 1});
    std::vector<std::vector<std::uint8_t>> cer = written();
    ASSERT_EQ(cer.size(), 1U);
    std::vector<std::uint8_t> cea = answer_to(cer[0], [](message_builder& b) {
      b.add_address(avp_code::host_ip_address, ip_address::v4({127, 0, 0, 2}))
          .add_unsigned32(avp_code::vendor_id, 0)
          .add_string(avp_code::product_name, "peer")
          .add_unsigned32(avp_code::auth_application_id, 4);
    });
    m_->receive(now_, cea);
    while (m_->has_events())
      m_->next_event();
    ASSERT_TRUE(m_->ready());
    message_header h;
    h.flags = cmd_flags::request;
    h.command_code = 272;
    h.application_id = 4;
    request_.clear();
    message_builder b(request_, h);
    b.add_string(avp_code::session_id, "client;1");
    b.finish();
    output_.reserve(64 * 1024);
  }

  template <typename More>
  static std::vector<std::uint8_t> answer_to(const std::vector<std::uint8_t>& request, More more) {
    std::error_code ec;
    message_header h = message_view::parse(request, ec).header();
    h.flags = 0;
    std::vector<std::uint8_t> out;
    message_builder b(out, h);
    b.add_unsigned32(avp_code::result_code, 2001)
        .add_string(avp_code::origin_host, "peer.example.net")
        .add_string(avp_code::origin_realm, "example.net");
    more(b);
    b.finish();
    return out;
  }

  std::vector<std::vector<std::uint8_t>> written() {
    output_.clear();
    m_->take_output(output_);
    std::vector<std::vector<std::uint8_t>> out;
    frame_decoder d;
    std::span<const std::uint8_t> rest(output_);
    while (!rest.empty()) {
      std::error_code ec;
      const decode_result r = d.put(rest, ec);
      if (r.status != decode_status::message) break;
      out.emplace_back(d.message().bytes().begin(), d.message().bytes().end());
      rest = rest.subspan(r.consumed);
    }
    return out;
  }

  // Sends `count` requests and answers them all; returns the allocations made by the
  // machine's calls (the answers' bytes handed over in the events are `count` of them).
  // `recycle`: each request's buffer is given to the machine once sent, as a connection does.
  std::size_t batch(bool recycle = false, std::size_t count = n) {
    // Each with room for an answer (one too small would simply be grown).
    std::vector<std::vector<std::uint8_t>> buffers(recycle ? count : 0, request_);
    for (auto& b : buffers)
      b.reserve(256);
    std::size_t counted = 0;
    {
      counter c;
      for (std::size_t i = 0; i < count; ++i) {
        EXPECT_FALSE(m_->send(now_, next_id_++, request_, now_ + std::chrono::seconds(5)));
        if (recycle) m_->recycle(std::move(buffers[i]));
      }
      counting = false;
      counted += allocations.load();
    }
    std::vector<std::uint8_t> answers;
    for (const auto& r : written()) {
      const auto a = answer_to(r, [](message_builder&) {});
      answers.insert(answers.end(), a.begin(), a.end());
    }
    {
      counter c;
      m_->receive(now_, answers);
      std::size_t events = 0;
      while (m_->has_events()) {
        if (std::holds_alternative<answer_received>(m_->next_event())) ++events;
      }
      counting = false;
      counted += allocations.load();
      EXPECT_EQ(events, count);
    }
    EXPECT_EQ(m_->pending_requests(), 0U);
    return counted;
  }

  std::optional<peer_machine> m_;
  steady_time now_{std::chrono::hours(1)};
  std::vector<std::uint8_t> request_;
  std::vector<std::uint8_t> output_;
  std::uint64_t next_id_ = 1;
};

TEST_F(machine_batches, a_batch_after_a_finished_one_allocates_only_the_answers) {
  batch();  // the first batch makes the nodes (and grows the event queue)
  EXPECT_EQ(batch(), n);
  EXPECT_EQ(batch(), n);
}

// Answers are copied into the buffers of the requests sent before them: once the machine has
// grown its arrays and its list of spare buffers, a batch allocates nothing at all.
TEST_F(machine_batches, answers_reuse_the_buffers_of_sent_requests) {
  batch(true);
  EXPECT_EQ(batch(true), 0U);
  EXPECT_EQ(batch(true), 0U);
  EXPECT_EQ(batch(), n);  // nothing recycled: the answers need their own
}

// More requests pending than max_spare_buffers: a spare is kept for each answer to come, so
// a window of any size is answered without allocating.
TEST_F(machine_batches, a_spare_is_kept_for_each_pending_answer) {
  constexpr std::size_t window = 4 * peer_machine::max_spare_buffers;
  batch(true, window);  // the arrays grow to the window
  EXPECT_EQ(batch(true, window), 0U);
  EXPECT_EQ(batch(true, window), 0U);
  // And no more than one per pending answer: with `window` pending, the rest stay with
  // their owner.
  for (std::size_t i = 0; i < window; ++i)
    ASSERT_FALSE(m_->send(now_, next_id_++, request_, now_ + std::chrono::seconds(5)));
  std::vector<std::vector<std::uint8_t>> buffers(window + 3, request_);
  for (auto& b : buffers)
    m_->recycle(std::move(b));
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    // NOLINTNEXTLINE(bugprone-use-after-move)
    EXPECT_EQ(buffers[i].capacity() != 0, i >= window) << i;
  }
}

// The spares are bounded: a buffer over max_spare_buffer_size, or one more than
// max_spare_buffers with nothing pending (or one per pending request, if more), stays with
// its owner (who frees it), and trim() lets the kept ones go.
TEST_F(machine_batches, spare_buffers_are_bounded_in_size_and_number) {
  batch();
  m_->trim();
  const std::size_t after_trim = batch();  // the answers and the request table, made again
  batch();

  std::vector<std::uint8_t> big;
  big.reserve(peer_machine::max_spare_buffer_size + 1);
  m_->recycle(std::move(big));
  EXPECT_GT(big.capacity(),
            peer_machine::max_spare_buffer_size);  // NOLINT(bugprone-use-after-move)

  std::vector<std::vector<std::uint8_t>> small(peer_machine::max_spare_buffers + 3, request_);
  for (auto& b : small)
    m_->recycle(std::move(b));
  for (std::size_t i = 0; i < small.size(); ++i) {
    // NOLINTNEXTLINE(bugprone-use-after-move)
    EXPECT_EQ(small[i].capacity() != 0, i >= peer_machine::max_spare_buffers) << i;
  }
  m_->trim();  // nothing pending: the spares go, and the next answers allocate their own
  EXPECT_EQ(batch(), after_trim);
}

TEST_F(machine_batches, trim_with_nothing_pending_lets_the_arrays_go) {
  batch();
  m_->trim();
  // The request table's arrays and the deadline heap's are made again.
  EXPECT_GT(batch(), n);
  EXPECT_EQ(batch(), n);
}

}  // namespace
}  // namespace diampool
