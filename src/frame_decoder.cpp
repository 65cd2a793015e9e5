#include "diampool/frame_decoder.hpp"

#include <algorithm>

#include "diampool/error.hpp"

namespace diampool {

namespace {
// A gathering buffer larger than this is released after its message, so one big message does
// not pin its size for the life of the connection.
constexpr std::size_t keep_capacity = std::size_t{64} * 1024;
}  // namespace

decode_result frame_decoder::put(std::span<const std::uint8_t> bytes, std::error_code& ec) {
  if (error_) {
    ec = error_;
    return {decode_status::error, 0};
  }
  ec.clear();
  if (ready_) {
    // The previous message has been handed out; start the next one.
    ready_ = false;
    expected_ = 0;
    message_ = {};
    if (buffer_.capacity() > keep_capacity) {
      std::vector<std::uint8_t>().swap(buffer_);
    } else {
      buffer_.clear();
    }
  }

  auto fail = [&](std::error_code e, std::size_t consumed) {
    error_ = e;
    ec = e;
    return decode_result{decode_status::error, consumed};
  };

  // Fast path: nothing gathered and the input holds the whole header.
  if (buffer_.empty() && bytes.size() >= header_size) {
    const std::size_t length = check_header(bytes.data(), max_size_, ec);
    if (ec) return fail(ec, 0);
    if (bytes.size() >= length) {
      message_.assign_frame(bytes.first(length));
      ready_ = true;
      return {decode_status::message, length};
    }
    expected_ = length;
    buffer_.reserve(length);
    buffer_.assign(bytes.begin(), bytes.end());
    return {decode_status::need_more, bytes.size()};
  }

  std::size_t consumed = 0;
  if (expected_ == 0) {
    const std::size_t take = std::min(header_size - buffer_.size(), bytes.size());
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    consumed = take;
    if (buffer_.size() < header_size) return {decode_status::need_more, consumed};
    const std::size_t length = check_header(buffer_.data(), max_size_, ec);
    if (ec) return fail(ec, consumed);
    expected_ = length;
    buffer_.reserve(length);
  }
  const std::size_t take = std::min(expected_ - buffer_.size(), bytes.size() - consumed);
  const auto from = bytes.begin() + static_cast<std::ptrdiff_t>(consumed);
  buffer_.insert(buffer_.end(), from, from + static_cast<std::ptrdiff_t>(take));
  consumed += take;
  if (buffer_.size() < expected_) return {decode_status::need_more, consumed};
  message_.assign_frame(buffer_);
  ready_ = true;
  return {decode_status::message, consumed};
}

std::size_t frame_decoder::bytes_needed() const noexcept {
  if (ready_) return header_size;
  if (expected_ == 0) return header_size - buffer_.size();
  return expected_ - buffer_.size();
}

void frame_decoder::reset() noexcept {
  buffer_.clear();
  expected_ = 0;
  ready_ = false;
  error_.clear();
  message_ = {};
}

}  // namespace diampool
