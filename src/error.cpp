#include "diampool/error.hpp"

namespace diampool {
namespace {

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "diampool"; }

  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::bad_version:
        return "Diameter version is not 1";
      case error::message_too_short:
        return "message length below the 20-byte header";
      case error::message_too_long:
        return "message length exceeds the maximum message size";
      case error::bad_message_length:
        return "message length is not a multiple of 4 or does not match the data";
      case error::truncated_avp_header:
        return "truncated AVP header";
      case error::bad_avp_length:
        return "AVP length smaller than the AVP header";
      case error::avp_overrun:
        return "AVP runs past the end of its parent";
      case error::bad_padding:
        return "AVP padding missing";
      case error::nesting_too_deep:
        return "grouped AVPs nested deeper than the limit";
      case error::bad_value_length:
        return "AVP data has the wrong size for its type";
      case error::bad_address:
        return "malformed Address AVP";
      case error::time_out_of_range:
        return "time outside the Diameter Time range";
      case error::invalid_utf8:
        return "UTF8String AVP is not valid UTF-8";
      case error::type_mismatch:
        return "value type does not match the AVP's dictionary type";
      case error::unknown_name:
        return "name not found in the dictionary";
      case error::buffer_too_small:
        return "output buffer too small";
      case error::value_too_long:
        return "AVP or message too long for its length field";
      case error::unbalanced_group:
        return "grouped AVP not closed, or closed out of order";
    }
    return "unknown diampool error";
  }

  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<error>(ev)) {
      case error::bad_version:
      case error::message_too_short:
      case error::message_too_long:
      case error::bad_message_length:
      case error::truncated_avp_header:
      case error::bad_avp_length:
      case error::avp_overrun:
      case error::bad_padding:
      case error::nesting_too_deep:
      case error::bad_value_length:
      case error::bad_address:
      case error::invalid_utf8:
        return condition::malformed_message;
      default:
        return {ev, *this};
    }
  }
};

class condition_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "diampool.condition"; }

  std::string message(int ev) const override {
    switch (static_cast<condition>(ev)) {
      case condition::malformed_message:
        return "malformed Diameter message";
    }
    return "unknown diampool condition";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const error_category_impl instance;
  return instance;
}

const std::error_category& condition_category() noexcept {
  static const condition_category_impl instance;
  return instance;
}

}  // namespace diampool
