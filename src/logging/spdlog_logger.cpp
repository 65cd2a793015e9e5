// diampool: the spdlog back end of the structured logger. The line formats are described in
// include/diampool/spdlog_logger.hpp.
#include "diampool/spdlog_logger.hpp"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "diampool/detail/text.hpp"

namespace diampool {

namespace {

spdlog::level::level_enum to_spdlog(log_level l) noexcept {
  switch (l) {
    case log_level::trace:
      return spdlog::level::trace;
    case log_level::debug:
      return spdlog::level::debug;
    case log_level::info:
      return spdlog::level::info;
    case log_level::warn:
      return spdlog::level::warn;
    case log_level::error:
      return spdlog::level::err;
    case log_level::off:
      return spdlog::level::off;
  }
  return spdlog::level::off;
}

// diampool's names for spdlog's levels ("warn" where spdlog says "warning").
std::string_view level_name(spdlog::level::level_enum l) noexcept {
  switch (l) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
    case spdlog::level::critical:
      return "error";
    default:
      return "off";
  }
}

// ---- escaping -------------------------------------------------------------------------------

using detail::append_json_escaped;
using detail::append_json_string;
using detail::is_control_character;
using detail::utf8_sequence_length;

// Whether a text-format value must be written as a quoted string.
bool needs_quotes(std::string_view v) noexcept {
  if (v.empty()) return true;
  std::size_t i = 0;
  while (i < v.size()) {
    const std::size_t len = utf8_sequence_length(v, i);
    if (len == 0 || is_control_character(v, i, len)) return true;
    const char c = v[i];
    if (c == ' ' || c == '=' || c == '"') return true;
    i += len;
  }
  return false;
}

void append_text_key(std::string& out, std::string_view key) {
  if (key.empty()) {
    out += '_';
    return;
  }
  for (const char c : key) {
    const auto b = static_cast<unsigned char>(c);
    out += (b <= 0x20 || b >= 0x7F || c == '=' || c == '"') ? '_' : c;
  }
}

// "2024-05-01T12:00:00.123456Z": the same form as the text format's spdlog pattern.
void append_utc_timestamp(std::string& out) {
  using namespace std::chrono;
  const auto now = time_point_cast<microseconds>(system_clock::now());
  const auto secs = floor<seconds>(now);
  const auto micros = (now - secs).count();
  const std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                              tm.tm_sec, static_cast<long>(micros));
  if (n > 0 && static_cast<std::size_t>(n) < sizeof buf) out.append(buf, std::size_t(n));
}

// ---- spdlog plumbing ------------------------------------------------------------------------

// The %* pattern flag: diampool's name of the record's level.
class level_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view name = level_name(msg.level);
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<level_flag>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter(log_format format, std::string eol) {
  auto f =
      std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc, std::move(eol));
  if (format == log_format::json) {
    f->set_pattern("%v");  // the whole object is rendered by spdlog_backend::log
  } else {
    f->add_flag<level_flag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %* %v");
  }
  return f;
}

// Hands each formatted record to a callback, one call at a time (base_sink's mutex).
class callback_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit callback_sink(std::function<void(std::string_view)> fn) : fn_(std::move(fn)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    fn_(std::string_view(buf.data(), buf.size()));
  }
  void flush_() override {}

 private:
  std::function<void(std::string_view)> fn_;
};

class spdlog_backend final : public logger {
 public:
  spdlog_backend(std::shared_ptr<spdlog::logger> out, log_level threshold, log_format format,
                 std::string name)
      : out_(std::move(out)), threshold_(threshold), format_(format), name_(std::move(name)) {}

  bool enabled(log_level level) const noexcept override {
    return level != log_level::off && level >= threshold_;
  }

  void log(log_level level, std::string_view message, std::span<const log_field> fields) override {
    if (!enabled(level)) return;
    try {
      std::string line;
      line.reserve(64 + message.size() + fields.size() * 32);
      if (format_ == log_format::json) {
        render_json(line, level, message, fields);
      } else {
        render_text(line, message, fields);
      }
      out_->log(to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
    } catch (...) {
      // Logging never throws into diampool's I/O paths; a record that cannot be rendered
      // (out of memory) is dropped. spdlog reports its own sink errors to stderr.
    }
  }

 private:
  // "<message> key=value ...": the pattern puts the timestamp and level in front.
  static void render_text(std::string& out, std::string_view message,
                          std::span<const log_field> fields) {
    append_json_escaped(out, message, false);
    for (const auto& f : fields) {
      out += ' ';
      append_text_key(out, f.key);
      out += '=';
      if (needs_quotes(f.value)) {
        append_json_string(out, f.value);
      } else {
        out += f.value;
      }
    }
  }

  void render_json(std::string& out, log_level level, std::string_view message,
                   std::span<const log_field> fields) const {
    out += R"({"ts":")";
    append_utc_timestamp(out);
    out += R"(","level":")";
    out += to_string(level);
    out += R"(","logger":)";
    append_json_string(out, name_);
    out += R"(,"msg":)";
    append_json_string(out, message);
    for (const auto& f : fields) {
      out += ',';
      append_json_string(out, f.key);
      out += ':';
      append_json_string(out, f.value);
    }
    out += '}';
  }

  std::shared_ptr<spdlog::logger> out_;
  const log_level threshold_;
  const log_format format_;
  const std::string name_;
};

}  // namespace

std::shared_ptr<logger> make_spdlog_logger(spdlog_logger_options options) {
  if (options.target && options.line_sink) {
    throw std::invalid_argument("spdlog_logger_options: set line_sink or target, not both");
  }
  std::shared_ptr<spdlog::logger> out;
  if (options.target) {
    // Not registered in spdlog's registry, and the caller's logger keeps its own level.
    out = options.target->clone(options.name);
  } else {
    spdlog::sink_ptr sink;
    if (options.line_sink) {
      sink = std::make_shared<callback_sink>(std::move(options.line_sink));
      sink->set_formatter(make_formatter(options.format, ""));
    } else {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
      sink->set_formatter(make_formatter(options.format, "\n"));
    }
    // Constructed directly rather than through spdlog's factories: no global registration,
    // so any number of loggers may share a name.
    out = std::make_shared<spdlog::logger>(options.name, std::move(sink));
  }
  out->set_level(to_spdlog(options.level));
  return std::make_shared<spdlog_backend>(std::move(out), options.level, options.format,
                                          std::move(options.name));
}

std::shared_ptr<logger> default_logger() {
  static const std::shared_ptr<logger> instance = make_spdlog_logger();
  return instance;
}

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
  char lower[8] = {};
  if (text.size() > sizeof lower) return std::nullopt;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view l(lower, text.size());
  if (l == "trace") return log_level::trace;
  if (l == "debug") return log_level::debug;
  if (l == "info") return log_level::info;
  if (l == "warn" || l == "warning") return log_level::warn;
  if (l == "error") return log_level::error;
  if (l == "off") return log_level::off;
  return std::nullopt;
}

}  // namespace diampool
