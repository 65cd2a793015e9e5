// Options every subcommand shares: configuration file, logging, metrics endpoint.
#include <algorithm>

#include "commands.hpp"
#include "diampool/address.hpp"
#include "diampool/spdlog_logger.hpp"

namespace diampool::cli {

std::shared_ptr<logger> common_options::make_logger() const {
  spdlog_logger_options o;
  o.name = "diampool";
  o.level = parse_log_level(log_level).value_or(log_level::warn);
  o.format = log_format == "json" ? diampool::log_format::json : diampool::log_format::text;
  return make_spdlog_logger(std::move(o));
}

void add_common_options(CLI::App& app, common_options& options) {
  app.set_config("--config", "", "TOML file with any of these options ([subcommand] tables)");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error or off")
      ->check([](const std::string& v) {
        return parse_log_level(v) ? std::string() : "unknown log level '" + v + "'";
      })
      ->capture_default_str();
  app.add_option("--log-format", options.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "serve Prometheus metrics on host:port (e.g. 127.0.0.1:9100)")
      ->check([](const std::string& v) {
        std::string host;
        std::string port;
        return split_address(v, host, port, true) ? "expected host:port, got '" + v + "'"
                                                  : std::string();
      });
  // The options above may also follow the subcommand's name.
  app.fallthrough();
}

}  // namespace diampool::cli
