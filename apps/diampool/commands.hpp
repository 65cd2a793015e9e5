// diampool CLI: one function per subcommand.
#pragma once

#include <CLI/CLI.hpp>

namespace diampool::cli {

/// Registers `decode` on `app`; the callback sets `exit_code`.
void add_decode(CLI::App& app, int& exit_code);

}  // namespace diampool::cli
