#include "diampool/spdlog_logger.hpp"

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace diampool {
namespace {

using namespace std::literals;

// Lines handed to a line_sink. The sink serializes its calls, so no lock here (the concurrency
// test relies on that; under TSan an unserialized call would be reported).
struct capture {
  std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();

  std::shared_ptr<logger> make(log_level level = log_level::trace,
                               log_format format = log_format::text,
                               std::string name = "diampool") {
    spdlog_logger_options o;
    o.name = std::move(name);
    o.level = level;
    o.format = format;
    o.line_sink = [l = lines](std::string_view line) { l->emplace_back(line); };
    return make_spdlog_logger(std::move(o));
  }
};

void log_one(logger& lg, log_level level, std::string_view message,
             std::vector<log_field> fields = {}) {
  lg.log(level, message, fields);
}

const std::regex text_ts(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z )");
const std::regex json_ts(R"(^\{"ts":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z",)");

// The text line with its timestamp checked and removed.
std::string after_text_ts(const std::string& line) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(line, m, text_ts)) << line;
  return m.empty() ? line : m.suffix().str();
}

// The JSON line with `{"ts":"...",` checked and removed.
std::string after_json_ts(const std::string& line) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(line, m, json_ts)) << line;
  return m.empty() ? line : m.suffix().str();
}

// ---- a small strict JSON reader: one object whose values are all strings --------------------

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80             ? 1
                    : (b & 0xE0) == 0xC0 ? 2
                    : (b & 0xF0) == 0xE0 ? 3
                    : (b & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && b < 0xC2) || b > 0xF4) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

void put_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct json_reader {
  std::string_view s;
  std::size_t i = 0;

  bool eat(char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  std::optional<std::uint32_t> hex4() {
    if (s.size() - i < 4) return std::nullopt;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
    }
    return v;
  }
  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i < s.size()) {
      const char c = s[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;  // raw control: invalid
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i == s.size()) return std::nullopt;
      switch (s[i++]) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          auto cp = hex4();
          if (!cp) return std::nullopt;
          if (*cp >= 0xD800 && *cp <= 0xDBFF) {
            if (!eat('\\') || !eat('u')) return std::nullopt;
            const auto lo = hex4();
            if (!lo || *lo < 0xDC00 || *lo > 0xDFFF) return std::nullopt;
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*lo - 0xDC00);
          } else if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
            return std::nullopt;
          }
          put_utf8(out, *cp);
          break;
        }
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }
};

using members = std::vector<std::pair<std::string, std::string>>;

// Parses a line holding exactly one JSON object of string values; nullopt if it is not one.
std::optional<members> parse_json_object(std::string_view line) {
  if (!valid_utf8(line)) return std::nullopt;
  json_reader r{line};
  if (!r.eat('{')) return std::nullopt;
  members out;
  if (r.eat('}')) return r.i == line.size() ? std::optional(out) : std::nullopt;
  do {
    auto k = r.string();
    if (!k || !r.eat(':')) return std::nullopt;
    auto v = r.string();
    if (!v) return std::nullopt;
    out.emplace_back(std::move(*k), std::move(*v));
  } while (r.eat(','));
  if (!r.eat('}') || r.i != line.size()) return std::nullopt;
  return out;
}

// Decodes a quoted text-format value: it is a JSON string literal.
std::optional<std::string> unquote(std::string_view quoted) {
  json_reader r{quoted};
  auto v = r.string();
  if (!v || r.i != quoted.size()) return std::nullopt;
  return v;
}

constexpr log_level all_levels[] = {log_level::trace, log_level::debug, log_level::info,
                                    log_level::warn,  log_level::error, log_level::off};

// ---- enabled() -----------------------------------------------------------------------------

TEST(spdlog_logger, enabled_from_the_threshold_up) {
  for (const auto threshold : all_levels) {
    capture c;
    const auto lg = c.make(threshold);
    for (const auto level : all_levels) {
      const bool expected = level != log_level::off && level >= threshold;
      EXPECT_EQ(lg->enabled(level), expected)
          << "threshold " << to_string(threshold) << ", level " << to_string(level);
    }
  }
}

TEST(spdlog_logger, off_enables_nothing) {
  capture c;
  const auto lg = c.make(log_level::off);
  for (const auto level : all_levels)
    EXPECT_FALSE(lg->enabled(level));
  log_one(*lg, log_level::error, "dropped");
  EXPECT_TRUE(c.lines->empty());
}

TEST(spdlog_logger, records_below_the_threshold_write_nothing) {
  capture c;
  const auto lg = c.make(log_level::warn);
  log_one(*lg, log_level::trace, "no");
  log_one(*lg, log_level::debug, "no");
  log_one(*lg, log_level::info, "no", {{"k", "v"}});
  log_one(*lg, log_level::off, "no");
  EXPECT_TRUE(c.lines->empty());
  log_one(*lg, log_level::warn, "yes");
  log_one(*lg, log_level::error, "yes");
  EXPECT_EQ(c.lines->size(), 2u);
}

// ---- text format ---------------------------------------------------------------------------

TEST(spdlog_logger_text, timestamp_level_message_fields) {
  capture c;
  const auto lg = c.make();
  log_one(*lg, log_level::info, "connection open",
          {{"address", "10.0.0.1:3868"}, {"peer", "hss.example.org"}, {"hop_by_hop", "42"}});
  ASSERT_EQ(c.lines->size(), 1u);
  EXPECT_EQ(after_text_ts(c.lines->at(0)),
            "info connection open address=10.0.0.1:3868 peer=hss.example.org hop_by_hop=42");
}

TEST(spdlog_logger_text, level_names) {
  capture c;
  const auto lg = c.make();
  for (const auto level : all_levels)
    log_one(*lg, level, "m");
  ASSERT_EQ(c.lines->size(), 5u);
  EXPECT_EQ(after_text_ts(c.lines->at(0)), "trace m");
  EXPECT_EQ(after_text_ts(c.lines->at(1)), "debug m");
  EXPECT_EQ(after_text_ts(c.lines->at(2)), "info m");
  EXPECT_EQ(after_text_ts(c.lines->at(3)), "warn m");
  EXPECT_EQ(after_text_ts(c.lines->at(4)), "error m");
}

TEST(spdlog_logger_text, quotes_and_escapes_hostile_values) {
  capture c;
  const auto lg = c.make();
  log_one(*lg, log_level::warn, "m",
          {{"space", "Connection refused"},
           {"eq", "a=b"},
           {"quote", R"(say "hi")"},
           {"newline", "line1\nline2"},
           {"crlf", "x\r\n"},
           {"tab", "a\tb"},
           {"empty", ""},
           {"nul", "a\0b"s},
           {"esc", "\x1b[31mred"},
           {"del", "a\x7f"},
           {"backslash_bare", R"(C:\dir)"},
           {"backslash_quoted", R"(a b\c)"},
           {"utf8", "h\xc3\xa9llo"},
           {"bad_utf8", "a\xff"},
           {"c1", "a\xc2\x85"}});
  ASSERT_EQ(c.lines->size(), 1u);
  EXPECT_EQ(after_text_ts(c.lines->at(0)),
            R"(warn m space="Connection refused" eq="a=b" quote="say \"hi\"")"
            R"( newline="line1\nline2" crlf="x\r\n" tab="a\tb" empty="" nul="a\u0000b")"
            R"( esc="\u001b[31mred" del="a\u007f" backslash_bare=C:\dir)"
            R"( backslash_quoted="a b\\c" utf8=h)"
            "\xc3\xa9"
            R"(llo bad_utf8="a\ufffd" c1="a\u0085")");
}

TEST(spdlog_logger_text, quoted_values_decode_back) {
  const std::vector<std::string> values = {"a b",          "x=y",         R"(q"q)", "l1\nl2",
                                           "\x01\x02\x1f", R"(\ "\" \\)", ""};
  for (const auto& v : values) {
    capture c;
    const auto lg = c.make();
    log_one(*lg, log_level::info, "m", {{"k", v}});
    ASSERT_EQ(c.lines->size(), 1u);
    const std::string rest = after_text_ts(c.lines->at(0));
    const std::string prefix = "info m k=";
    ASSERT_EQ(rest.substr(0, prefix.size()), prefix);
    EXPECT_EQ(unquote(rest.substr(prefix.size())), v) << rest;
  }
}

TEST(spdlog_logger_text, message_and_keys_cannot_break_the_line) {
  capture c;
  const auto lg = c.make();
  log_one(*lg, log_level::error, "two\nlines \\ \"q\"", {{"bad key=\"", "v"}, {"", "w"}});
  ASSERT_EQ(c.lines->size(), 1u);
  EXPECT_EQ(after_text_ts(c.lines->at(0)), R"(error two\nlines \\ "q" bad_key__=v _=w)");
}

TEST(spdlog_logger_text, no_fields) {
  capture c;
  const auto lg = c.make();
  log_one(*lg, log_level::debug, "connecting");
  ASSERT_EQ(c.lines->size(), 1u);
  EXPECT_EQ(after_text_ts(c.lines->at(0)), "debug connecting");
}

// ---- json format ---------------------------------------------------------------------------

TEST(spdlog_logger_json, one_object_per_line) {
  capture c;
  const auto lg = c.make(log_level::trace, log_format::json);
  log_one(*lg, log_level::warn, "connect failed",
          {{"address", "10.0.0.1:3868"}, {"error", "Connection refused"}});
  ASSERT_EQ(c.lines->size(), 1u);
  const std::string& line = c.lines->at(0);
  EXPECT_EQ(after_json_ts(line), R"("level":"warn","logger":"diampool","msg":"connect failed",)"
                                 R"("address":"10.0.0.1:3868","error":"Connection refused"})");
  const auto obj = parse_json_object(line);
  ASSERT_TRUE(obj) << line;
  ASSERT_EQ(obj->size(), 6u);
  EXPECT_EQ(obj->at(0).first, "ts");
  EXPECT_EQ((*obj)[1], (std::pair<std::string, std::string>("level", "warn")));
  EXPECT_EQ((*obj)[2], (std::pair<std::string, std::string>("logger", "diampool")));
  EXPECT_EQ((*obj)[3], (std::pair<std::string, std::string>("msg", "connect failed")));
}

TEST(spdlog_logger_json, level_names_and_logger_name) {
  capture c;
  const auto lg = c.make(log_level::trace, log_format::json, "pool \"A\"");
  for (const auto level : all_levels)
    log_one(*lg, level, "m");
  ASSERT_EQ(c.lines->size(), 5u);
  const char* names[] = {"trace", "debug", "info", "warn", "error"};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(after_json_ts(c.lines->at(i)),
              R"("level":")"s + names[i] + R"(","logger":"pool \"A\"","msg":"m"})");
  }
}

TEST(spdlog_logger_json, escapes_quotes_backslashes_and_control_bytes) {
  capture c;
  const auto lg = c.make(log_level::trace, log_format::json);
  std::string all_controls;
  for (int b = 0; b < 0x20; ++b)
    all_controls += static_cast<char>(b);
  log_one(*lg, log_level::info, "say \"hi\"\n",
          {{"q", R"(a"b)"}, {"bs", R"(a\b)"}, {"ctl", all_controls}, {"del", "\x7f"}});
  ASSERT_EQ(c.lines->size(), 1u);
  EXPECT_EQ(after_json_ts(c.lines->at(0)),
            R"("level":"info","logger":"diampool","msg":"say \"hi\"\n",)"
            R"("q":"a\"b","bs":"a\\b",)"
            R"("ctl":"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r)"
            R"(\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019)"
            R"(\u001a\u001b\u001c\u001d\u001e\u001f","del":"\u007f"})");
}

TEST(spdlog_logger_json, hostile_values_round_trip) {
  std::string every_byte;
  for (int b = 0; b < 0x80; ++b)
    every_byte += static_cast<char>(b);
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"every_ascii_byte", every_byte},
      {"utf8", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80"},
      {"key \"with\" quotes\n", "v"},
      {"empty", ""},
  };
  capture c;
  const auto lg = c.make(log_level::trace, log_format::json);
  std::vector<log_field> lf;
  for (const auto& [k, v] : fields)
    lf.push_back({k, v});
  lg->log(log_level::error, "m\\\"\t", lf);
  ASSERT_EQ(c.lines->size(), 1u);
  const auto obj = parse_json_object(c.lines->at(0));
  ASSERT_TRUE(obj) << c.lines->at(0);
  ASSERT_EQ(obj->size(), 4u + fields.size());
  EXPECT_EQ((*obj)[3].second, "m\\\"\t");
  for (std::size_t i = 0; i < fields.size(); ++i)
    EXPECT_EQ((*obj)[4 + i], fields[i]);
}

TEST(spdlog_logger_json, invalid_utf8_becomes_replacement_character) {
  capture c;
  const auto lg = c.make(log_level::trace, log_format::json);
  // A stray continuation byte, a truncated sequence, an overlong '/', a surrogate, 0xFF.
  log_one(*lg, log_level::info, "m",
          {{"bad", "a\x80 b\xe2\x9c c\xc0\xaf d\xed\xa0\x80 e\xff"}, {"k\xfe", "v"}});
  ASSERT_EQ(c.lines->size(), 1u);
  const std::string& line = c.lines->at(0);
  EXPECT_EQ(after_json_ts(line),
            R"("level":"info","logger":"diampool","msg":"m",)"
            R"("bad":"a\ufffd b\ufffd\ufffd c\ufffd\ufffd d\ufffd\ufffd\ufffd e\ufffd",)"
            R"("k\ufffd":"v"})");
  EXPECT_TRUE(parse_json_object(line)) << line;
}

// ---- destinations --------------------------------------------------------------------------

TEST(spdlog_logger, target_is_written_through_and_left_unchanged) {
  std::ostringstream os;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(os);
  sink->set_pattern("[%n] [%l] %v");
  auto target = std::make_shared<spdlog::logger>("app", sink);
  target->set_level(spdlog::level::err);

  spdlog_logger_options o;
  o.level = log_level::debug;
  o.target = target;
  const auto lg = make_spdlog_logger(o);
  EXPECT_TRUE(lg->enabled(log_level::debug));
  EXPECT_FALSE(lg->enabled(log_level::trace));
  log_one(*lg, log_level::debug, "connecting", {{"address", "a b"}});
  log_one(*lg, log_level::trace, "dropped");
  EXPECT_EQ(os.str(), "[diampool] [debug] connecting address=\"a b\"\n");
  EXPECT_EQ(target->level(), spdlog::level::err);
  EXPECT_EQ(target->name(), "app");

  os.str("");
  o.format = log_format::json;
  o.name = "dp";
  sink->set_pattern("%v");
  const auto js = make_spdlog_logger(o);
  log_one(*js, log_level::info, "m", {{"k", "v"}});
  const std::string line = os.str();
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(after_json_ts(line),
            "\"level\":\"info\",\"logger\":\"dp\",\"msg\":\"m\",\"k\":\"v\"}\n");
}

TEST(spdlog_logger, line_sink_and_target_together_are_rejected) {
  spdlog_logger_options o;
  o.line_sink = [](std::string_view) {};
  o.target = std::make_shared<spdlog::logger>("app");
  EXPECT_THROW(make_spdlog_logger(o), std::invalid_argument);
}

TEST(spdlog_logger, loggers_may_share_a_name) {
  capture a, b;
  const auto la = a.make(log_level::info, log_format::text, "same");
  const auto lb = b.make(log_level::info, log_format::text, "same");
  log_one(*la, log_level::info, "a");
  log_one(*lb, log_level::info, "b");
  ASSERT_EQ(a.lines->size(), 1u);
  ASSERT_EQ(b.lines->size(), 1u);
  EXPECT_EQ(after_text_ts(a.lines->at(0)), "info a");
  EXPECT_EQ(after_text_ts(b.lines->at(0)), "info b");
}

// ---- concurrency ---------------------------------------------------------------------------

void run_concurrently(log_format format) {
  constexpr int threads = 8;
  constexpr int per_thread = 1000;
  capture c;
  const auto lg = c.make(log_level::info, format);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&lg, t] {
      for (int i = 0; i < per_thread; ++i) {
        const std::vector<log_field> fields = {
            {"thread", std::to_string(t)},
            {"seq", std::to_string(i)},
            {"pad", std::string(static_cast<std::size_t>(40 + i % 50), 'x') + " y"}};
        lg->log(log_level::info, "concurrent record", fields);
      }
    });
  }
  for (auto& th : pool)
    th.join();

  ASSERT_EQ(c.lines->size(), static_cast<std::size_t>(threads * per_thread));
  std::set<std::pair<int, int>> seen;
  const std::regex text_line(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z )"
                             R"(info concurrent record thread=(\d+) seq=(\d+) pad="x+ y"$)");
  for (const auto& line : *c.lines) {
    ASSERT_EQ(line.find('\n'), std::string::npos);
    if (format == log_format::text) {
      std::smatch m;
      ASSERT_TRUE(std::regex_match(line, m, text_line)) << line;
      seen.emplace(std::stoi(m[1].str()), std::stoi(m[2].str()));
    } else {
      const auto obj = parse_json_object(line);
      ASSERT_TRUE(obj) << line;
      ASSERT_EQ(obj->size(), 7u) << line;
      seen.emplace(std::stoi(obj->at(4).second), std::stoi(obj->at(5).second));
    }
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(threads * per_thread));
}

TEST(spdlog_logger, concurrent_text_records_are_whole_lines) {
  run_concurrently(log_format::text);
}

TEST(spdlog_logger, concurrent_json_records_are_whole_lines) {
  run_concurrently(log_format::json);
}

// ---- default_logger, parse_log_level -------------------------------------------------------

TEST(spdlog_logger, default_logger_is_one_instance_at_info) {
  const auto a = default_logger();
  const auto b = default_logger();
  ASSERT_TRUE(a);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_TRUE(a->enabled(log_level::info));
  EXPECT_TRUE(a->enabled(log_level::error));
  EXPECT_FALSE(a->enabled(log_level::debug));
}

TEST(spdlog_parse_log_level, accepts_the_names_in_any_case) {
  EXPECT_EQ(parse_log_level("trace"), log_level::trace);
  EXPECT_EQ(parse_log_level("debug"), log_level::debug);
  EXPECT_EQ(parse_log_level("info"), log_level::info);
  EXPECT_EQ(parse_log_level("warn"), log_level::warn);
  EXPECT_EQ(parse_log_level("warning"), log_level::warn);
  EXPECT_EQ(parse_log_level("error"), log_level::error);
  EXPECT_EQ(parse_log_level("off"), log_level::off);
  EXPECT_EQ(parse_log_level("TRACE"), log_level::trace);
  EXPECT_EQ(parse_log_level("Info"), log_level::info);
  EXPECT_EQ(parse_log_level("WARNING"), log_level::warn);
  EXPECT_EQ(parse_log_level("eRRoR"), log_level::error);
  EXPECT_EQ(parse_log_level("OFF"), log_level::off);
}

TEST(spdlog_parse_log_level, rejects_anything_else) {
  for (const std::string_view s : std::initializer_list<std::string_view>{
           "", "inf", "infos", " info", "info ", "warnings", "err", "critical", "fatal", "verbose",
           "information", "off\0"sv, "0", "debug,info"}) {
    EXPECT_EQ(parse_log_level(s), std::nullopt) << '"' << s << '"';
  }
}

TEST(spdlog_parse_log_level, round_trips_to_string) {
  for (const auto level : all_levels)
    EXPECT_EQ(parse_log_level(to_string(level)), level);
}

}  // namespace
}  // namespace diampool
