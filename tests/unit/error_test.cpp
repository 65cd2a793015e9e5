#include "diampool/error.hpp"

#include <gtest/gtest.h>

#include <set>

namespace diampool {
namespace {

constexpr error all_errors[] = {
    error::bad_version,        error::message_too_short,    error::message_too_long,
    error::bad_message_length, error::truncated_avp_header, error::bad_avp_length,
    error::avp_overrun,        error::bad_padding,          error::nesting_too_deep,
    error::bad_value_length,   error::bad_address,          error::time_out_of_range,
    error::invalid_utf8,       error::type_mismatch,        error::unknown_name,
    error::buffer_too_small,   error::value_too_long,       error::unbalanced_group,
};

TEST(error, every_value_has_its_own_message_in_the_diampool_category) {
  std::set<std::string> messages;
  for (error e : all_errors) {
    const std::error_code ec = e;
    EXPECT_TRUE(ec);
    EXPECT_STREQ(ec.category().name(), "diampool");
    EXPECT_NE(ec.message(), "unknown diampool error");
    messages.insert(ec.message());
  }
  EXPECT_EQ(messages.size(), std::size(all_errors));
  EXPECT_EQ(std::error_code(999, error_category()).message(), "unknown diampool error");
}

TEST(error, malformed_input_errors_map_to_the_malformed_condition) {
  const std::set<error> malformed = {
      error::bad_version,        error::message_too_short,    error::message_too_long,
      error::bad_message_length, error::truncated_avp_header, error::bad_avp_length,
      error::avp_overrun,        error::bad_padding,          error::nesting_too_deep,
      error::bad_value_length,   error::bad_address,          error::invalid_utf8};
  for (error e : all_errors) {
    const std::error_code ec = e;
    EXPECT_EQ(ec == condition::malformed_message, malformed.count(e) == 1) << ec.message();
  }
  EXPECT_NE(std::make_error_code(std::errc::timed_out), condition::malformed_message);
  EXPECT_EQ(make_error_condition(condition::malformed_message).message(),
            "malformed Diameter message");
}

TEST(error, timeouts_cancellations_and_connection_failures_have_conditions) {
  EXPECT_EQ(std::error_code(error::timed_out), condition::timeout);
  EXPECT_EQ(std::error_code(error::connection_timeout), condition::timeout);
  EXPECT_EQ(std::make_error_code(std::errc::timed_out), condition::timeout);
  EXPECT_NE(std::error_code(error::cancelled), condition::timeout);
  EXPECT_EQ(std::error_code(error::cancelled), condition::cancelled);
  EXPECT_EQ(std::make_error_code(std::errc::operation_canceled), condition::cancelled);
  EXPECT_EQ(std::error_code(ECONNREFUSED, std::system_category()), condition::connection_failed);
  EXPECT_EQ(std::error_code(ECONNRESET, std::system_category()), condition::connection_failed);
  for (error e : {error::connection_closed, error::handshake_failed, error::watchdog_timeout,
                  error::disconnected_by_peer}) {
    EXPECT_EQ(std::error_code(e), condition::connection_failed) << std::error_code(e).message();
    EXPECT_NE(std::error_code(e), condition::timeout);
  }
  EXPECT_NE(std::error_code(error::invalid_config), condition::connection_failed);
  EXPECT_NE(std::error_code(ENOENT, std::system_category()), condition::connection_failed);
  EXPECT_NE(std::error_code(ETIMEDOUT, std::system_category()), condition::cancelled);
}

}  // namespace
}  // namespace diampool
