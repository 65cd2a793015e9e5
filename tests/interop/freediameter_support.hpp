// What the interop tests of diampool's connection and address_client against freeDiameter
// share: where the harness (tests/interop/freediameter/run.sh) says freeDiameter is, the
// request of an application freeDiameter does not serve, the check of its 3002 answer, and
// small helpers for bounded waits and for the facts the cases print.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/message.hpp"

namespace diampool::interop {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
using clock = std::chrono::steady_clock;

// Upper bound for anything that must happen promptly (reached only when a case fails).
inline constexpr auto must_happen = 5s;

// An application no freeDiameter extension loaded by run.sh serves (test_app's ids): its
// requests get Result-Code 3002 DIAMETER_UNABLE_TO_DELIVER with the E bit.
inline constexpr std::uint32_t unserved_application = 16777215;
inline constexpr std::uint32_t unserved_command = 16777214;

// A measured fact, printed as a [   FACT   ] line in the test's output.
inline void note(const std::string& fact) {
  std::printf("[   FACT   ] %s\n", fact.c_str());
  std::fflush(stdout);
}

inline long long ms_since(clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start).count();
}

// Polls `done` every 5 ms until it holds or `timeout` passes: for conditions nothing
// completes on (counters, another process's state).
template <typename Pred>
bool eventually(Pred done, std::chrono::nanoseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

// ---- where freeDiameter is ---------------------------------------------------------------------

struct fd_env {
  std::string address;
  std::string host;
  std::string realm;
  pid_t pid = 0;
};

// The harness's variables; `missing` names the first one absent.
inline std::optional<fd_env> read_env(std::string& missing) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
      if (missing.empty()) missing = name;
      return std::nullopt;
    }
    return std::string(v);
  };
  const auto address = get("DIAMPOOL_FD_ADDRESS");
  const auto host = get("DIAMPOOL_FD_HOST");
  const auto realm = get("DIAMPOOL_FD_REALM");
  const auto pid = get("DIAMPOOL_FD_PID");
  if (!address || !host || !realm || !pid) return std::nullopt;
  fd_env e{*address, *host, *realm, static_cast<pid_t>(std::atoi(pid->c_str()))};
  if (e.pid <= 1) {
    missing = "DIAMPOOL_FD_PID (not a PID: " + *pid + ")";
    return std::nullopt;
  }
  return e;
}

// ---- messages ----------------------------------------------------------------------------------

// A request of the unserved application: Session-Id first, Origin-Host/Realm,
// Destination-Realm, Auth-Application-Id; flags R and P; the caller's own ids.
inline bytes make_request(std::string_view origin_host, std::string_view destination_realm,
                          std::uint32_t hop_by_hop, std::uint32_t end_to_end,
                          std::string_view session_id) {
  message_header h;
  h.flags = static_cast<std::uint8_t>(cmd_flags::request | cmd_flags::proxiable);
  h.command_code = unserved_command;
  h.application_id = unserved_application;
  h.hop_by_hop = hop_by_hop;
  h.end_to_end = end_to_end;
  bytes out;
  message_builder b(out, h);
  b.add_string(avp_code::session_id, session_id)
      .add_string(avp_code::origin_host, origin_host)
      .add_string(avp_code::origin_realm, "example.com")
      .add_string(avp_code::destination_realm, destination_realm)
      .add_unsigned32(avp_code::auth_application_id, unserved_application);
  b.finish();
  return out;
}

// `answer` is freeDiameter's 3002 answer to the request made with these ids and Session-Id.
inline ::testing::AssertionResult is_3002_answer_to(const bytes& answer, std::uint32_t hop_by_hop,
                                                    std::uint32_t end_to_end,
                                                    std::string_view session_id) {
  std::error_code ec;
  const message_view v = message_view::parse(answer, ec);
  if (ec) return ::testing::AssertionFailure() << "unparsable answer: " << ec.message();
  const message_header& h = v.header();
  if (h.is_request()) return ::testing::AssertionFailure() << "R bit set in the answer";
  if (!h.is_error()) return ::testing::AssertionFailure() << "E bit clear in the answer";
  if (h.command_code != unserved_command || h.application_id != unserved_application) {
    return ::testing::AssertionFailure()
           << "command " << h.command_code << " application " << h.application_id;
  }
  if (h.hop_by_hop != hop_by_hop) {
    return ::testing::AssertionFailure()
           << "Hop-by-Hop " << h.hop_by_hop << ", expected the caller's " << hop_by_hop;
  }
  if (h.end_to_end != end_to_end) {
    return ::testing::AssertionFailure()
           << "End-to-End " << h.end_to_end << ", expected " << end_to_end;
  }
  const auto sid = v.find(avp_code::session_id);
  if (!sid) return ::testing::AssertionFailure() << "no Session-Id";
  if (sid->as_string() != session_id) {
    return ::testing::AssertionFailure()
           << "Session-Id '" << sid->as_string() << "', expected '" << session_id << "'";
  }
  const auto rc = v.find(avp_code::result_code);
  if (!rc) return ::testing::AssertionFailure() << "no Result-Code";
  const std::uint32_t code = rc->as_unsigned32(ec);
  if (ec || code != result_code::unable_to_deliver) {
    return ::testing::AssertionFailure() << "Result-Code " << code;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace diampool::interop
