// Runs a libFuzzer target over saved inputs without libFuzzer, so the target builds with any
// compiler and its corpus runs as an ordinary test:
//   fuzz_codec_replay FILE-OR-DIRECTORY...
// Directories are searched recursively; inputs run in sorted order. Exits non-zero if nothing
// ran or an input could not be read; an invariant failure in the target aborts the process
// (after naming the input on stderr).
#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

// The input being run, for the crash handler (a fixed buffer: nothing to allocate there).
char current_input[4096];

extern "C" void on_crash(int sig) {
  static const char prefix[] = "fuzz replay: crashed on input ";
  [[maybe_unused]] auto r1 = ::write(2, prefix, sizeof prefix - 1);
  [[maybe_unused]] auto r2 = ::write(2, current_input, std::strlen(current_input));
  [[maybe_unused]] auto r3 = ::write(2, "\n", 1);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

bool read_file(const fs::path& path, std::vector<std::uint8_t>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  for (const int sig : {SIGABRT, SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP}) {
    std::signal(sig, on_crash);
  }

  std::vector<fs::path> inputs;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      for (auto it = fs::recursive_directory_iterator(arg, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec)) inputs.push_back(it->path());
      }
    } else if (fs::is_regular_file(arg, ec)) {
      inputs.push_back(arg);
    } else {
      ec = std::make_error_code(std::errc::no_such_file_or_directory);
    }
    if (ec) {
      std::fprintf(stderr, "fuzz replay: %s: %s\n", argv[i], ec.message().c_str());
      ok = false;
    }
  }
  std::sort(inputs.begin(), inputs.end());

  std::size_t ran = 0;
  std::vector<std::uint8_t> data;
  for (const fs::path& path : inputs) {
    if (!read_file(path, data)) {
      std::fprintf(stderr, "fuzz replay: cannot read %s\n", path.c_str());
      ok = false;
      continue;
    }
    std::snprintf(current_input, sizeof current_input, "%s", path.c_str());
    // A copy of exactly the input's size, so a sanitizer sees any read past its end.
    const std::vector<std::uint8_t> input(data);
    LLVMFuzzerTestOneInput(input.data(), input.size());
    ++ran;
  }

  std::printf("fuzz replay: ran %zu input%s\n", ran, ran == 1 ? "" : "s");
  if (ran == 0) {
    std::fprintf(stderr, "fuzz replay: no inputs ran\n");
    return 1;
  }
  return ok ? 0 : 1;
}
