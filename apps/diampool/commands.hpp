// diampool CLI: one function per subcommand, and the options they share.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "diampool/logger.hpp"

namespace diampool::cli {

/// Options of the main command, valid before or after the subcommand, and in the --config
/// file (TOML: top-level keys, or a [subcommand] table for a subcommand's own options).
struct common_options {
  std::string log_level = "warn";   ///< trace, debug, info, warn, error, off
  std::string log_format = "text";  ///< text or json
  std::string metrics_listen;       ///< host:port for Prometheus scrapes; empty: none

  /// The logger these options ask for (spdlog to stderr).
  std::shared_ptr<logger> make_logger() const;
};

/// Registers --config, --log-level, --log-format, --metrics-listen on `app`.
void add_common_options(CLI::App& app, common_options& options);

/// Each registers its subcommand on `app`; the callback sets `exit_code`.
void add_decode(CLI::App& app, int& exit_code);
void add_peer(CLI::App& app, const common_options& common, int& exit_code);
void add_send(CLI::App& app, const common_options& common, int& exit_code);
void add_bench(CLI::App& app, const common_options& common, int& exit_code);

}  // namespace diampool::cli
