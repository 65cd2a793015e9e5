// diampool: command-line front end of the diampool library.
#include <iostream>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"diampool: Diameter (RFC 6733) client toolkit"};
  app.set_version_flag("--version", "diampool 0.1.0");
  app.require_subcommand(1);
  int exit_code = 0;
  diampool::cli::common_options common;
  diampool::cli::add_common_options(app, common);
  diampool::cli::add_decode(app, exit_code);
  diampool::cli::add_peer(app, common, exit_code);
  diampool::cli::add_send(app, common, exit_code);
  diampool::cli::add_bench(app, common, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every bad argument exits 2, whatever CLI11's own code.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    std::cerr << "diampool: " << e.what() << "\n";
    return 1;
  }
  return exit_code;
}
