// diampool: the spdlog back end of the structured logger (logger.hpp).
//
// Records are rendered in one of two machine-parseable line formats:
//
//   text (logfmt style):
//     2024-05-01T12:00:00.123456Z warn connect failed address=10.0.0.1:3868 error="timed out"
//
//     <timestamp> <level> <message> key=value key=value ...
//     - timestamp: ISO-8601, UTC, microseconds, "Z" suffix;
//     - level: trace, debug, info, warn or error (the names of to_string(log_level));
//     - message: verbatim, except that backslashes, control characters and invalid UTF-8 are
//       escaped as in a JSON string (\\, \n, \t, \u001b, \ufffd, ...), so a record is always
//       exactly one line;
//     - a value is written bare unless it is empty or holds a space, '=', '"', a control
//       character (C0, DEL or C1) or invalid UTF-8; then it is written as a JSON string literal
//       (double-quoted, with \" \\ \n \r \t \b \f \u00XX escapes and U+FFFD for invalid UTF-8);
//     - a key byte outside printable ASCII, and '=' or '"', becomes '_' (an empty key is "_").
//
//   json (one object per line):
//     {"ts":"2024-05-01T12:00:00.123456Z","level":"warn","logger":"diampool",
//      "msg":"connect failed","address":"10.0.0.1:3868","error":"timed out"}  (as one line)
//
//     Keys ts, level, logger and msg first, then the fields in order, every value a string.
//     Strings are escaped per RFC 8259 (\" \\ \b \f \n \r \t, other control characters as
//     \u00XX; DEL and C1 controls are escaped too) and invalid UTF-8 becomes \ufffd, so every
//     line is valid JSON whatever bytes a peer sent.
//
// spdlog is a private dependency of diampool: this header does not include it. The returned
// loggers are thread-safe (spdlog's mutex-protected sinks), as diampool logs from several I/O
// threads at once; a record is written as one whole line, never interleaved with another.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "diampool/logger.hpp"

namespace spdlog {
class logger;
}  // namespace spdlog

namespace diampool {

enum class log_format { text, json };

struct spdlog_logger_options {
  /// The spdlog logger's name, and the "logger" key of the json format.
  std::string name = "diampool";
  /// Records below this level are dropped; enabled() is a comparison against it.
  log_level level = log_level::info;
  log_format format = log_format::text;

  // Where records go: stderr (unbuffered, no colours) unless one of the two below is set.
  // Setting both is an error (make_spdlog_logger throws std::invalid_argument).

  /// Receives every record as one complete line, without the end-of-line. Calls are
  /// serialized (made under a mutex, one at a time) even when diampool logs from several
  /// threads, so the callback needs no locking of its own; it must not log to the same logger.
  /// Meant for tests and for handing lines to another log pipeline.
  std::function<void(std::string_view line)> line_sink;

  /// An existing spdlog logger to write through. It is not modified: diampool writes through
  /// a clone of it named `name` (spdlog::logger::clone) that shares its sinks, so their
  /// pattern and destinations apply, while the clone's level is `level`. The records handed
  /// to those sinks are, in text format, "<message> key=value ..." (the sinks' pattern adds
  /// the timestamp and level) and, in json format, the complete JSON object (give the sinks
  /// the pattern "%v" for plain JSON lines). Its sinks must be thread-safe (the _mt kinds).
  std::shared_ptr<spdlog::logger> target;
};

/// A logger that renders records as described above. Throws std::invalid_argument if both
/// line_sink and target are set.
std::shared_ptr<logger> make_spdlog_logger(spdlog_logger_options options = {});

/// The logger of an address_client constructed without one: make_spdlog_logger() with the
/// defaults (text format, to stderr, at info). Created on first use; every call returns the
/// same instance.
std::shared_ptr<logger> default_logger();

/// Parses "trace", "debug", "info", "warn" (or "warning"), "error" and "off", in any letter
/// case; std::nullopt for anything else.
std::optional<log_level> parse_log_level(std::string_view text) noexcept;

}  // namespace diampool
