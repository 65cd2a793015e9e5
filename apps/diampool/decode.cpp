// `diampool decode`: hex-encoded Diameter messages in, readable AVP trees out.
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/print.hpp"

namespace diampool::cli {
namespace {

struct decode_options {
  std::vector<std::string> hex;
  std::string file;
  std::size_t max_size = default_max_message_size;
};

// Decodes every message in `bytes`; returns 0 if all were well formed, 2 otherwise.
int decode_stream(std::span<const std::uint8_t> bytes, std::size_t max_size) {
  frame_decoder decoder(max_size);
  std::size_t offset = 0;
  int count = 0;
  while (offset < bytes.size()) {
    std::error_code ec;
    const auto r = decoder.put(bytes.subspan(offset), ec);
    if (r.status == decode_status::error) {
      std::cerr << "diampool decode: malformed message at byte " << offset << ": " << ec.message()
                << "\n";
      return 2;
    }
    offset += r.consumed;
    if (r.status == decode_status::need_more) break;
    const message_view& msg = decoder.message();
    std::cout << to_text(msg);
    if (auto bad = check_avps(msg, dictionary::base())) {
      std::cerr << "diampool decode: message " << count << " has malformed AVPs: " << bad.message()
                << "\n";
      return 2;
    }
    ++count;
  }
  if (decoder.bytes_needed() != header_size || count == 0) {
    std::cerr << "diampool decode: input ends inside a message (" << decoder.bytes_needed()
              << " more bytes needed)\n";
    return 2;
  }
  return 0;
}

}  // namespace

void add_decode(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<decode_options>();
  CLI::App* cmd = app.add_subcommand(
      "decode", "Print hex-encoded Diameter messages as AVP trees (from arguments or stdin)");
  cmd->add_option("hex", opts->hex, "Hex bytes of one or more messages (default: read stdin)");
  cmd->add_option("-f,--file", opts->file, "Read hex from this file instead");
  cmd->add_option("--max-size", opts->max_size, "Largest message accepted, in bytes")
      ->capture_default_str();
  cmd->callback([opts, &exit_code] {
    std::string text;
    if (!opts->file.empty()) {
      std::ifstream in(opts->file);
      if (!in) {
        std::cerr << "diampool decode: cannot open " << opts->file << "\n";
        exit_code = 1;
        return;
      }
      text.assign(std::istreambuf_iterator<char>(in), {});
    } else if (!opts->hex.empty()) {
      for (const auto& h : opts->hex)
        text += h;
    } else {
      text.assign(std::istreambuf_iterator<char>(std::cin), {});
    }
    bool ok = false;
    const std::vector<std::uint8_t> bytes = from_hex(text, ok);
    if (!ok) {
      std::cerr << "diampool decode: input is not hex (odd digit count or a non-hex character)\n";
      exit_code = 1;
      return;
    }
    if (bytes.empty()) {
      std::cerr << "diampool decode: no input\n";
      exit_code = 1;
      return;
    }
    exit_code = decode_stream(bytes, opts->max_size);
  });
}

}  // namespace diampool::cli
