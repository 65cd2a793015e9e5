// diampool: the structured logger interface the library logs through.
//
// A log record is a level, a message and key=value fields (address, state, hop_by_hop,
// result_code, error, ...). diampool calls enabled() first, so a disabled level costs one
// virtual call and no formatting. null_logger() discards everything; spdlog_logger.hpp has the
// spdlog back end (text or JSON lines), which an address_client uses when given no logger.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace diampool {

enum class log_level { trace, debug, info, warn, error, off };

std::string_view to_string(log_level l) noexcept;

/// One key=value field of a record.
struct log_field {
  std::string_view key;
  std::string value;
};

/// Implementations must be thread-safe: diampool logs from its I/O threads concurrently.
class logger {
 public:
  virtual ~logger() = default;
  virtual bool enabled(log_level level) const noexcept = 0;
  virtual void log(log_level level, std::string_view message,
                   std::span<const log_field> fields) = 0;
};

/// A logger that discards everything (enabled() is always false).
std::shared_ptr<logger> null_logger();

}  // namespace diampool
