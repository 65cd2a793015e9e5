#include "diampool/logger.hpp"

namespace diampool {

std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
    case log_level::off:
      return "off";
  }
  return "?";
}

namespace {
class discard final : public logger {
 public:
  bool enabled(log_level) const noexcept override { return false; }
  void log(log_level, std::string_view, std::span<const log_field>) override {}
};
}  // namespace

std::shared_ptr<logger> null_logger() {
  static const auto instance = std::make_shared<discard>();
  return instance;
}

}  // namespace diampool
