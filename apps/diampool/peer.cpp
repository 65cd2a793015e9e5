// `diampool peer`: the embedded Diameter peer as a server process, with its fault knobs as
// options. It prints `listening on HOST:PORT`, then one line per connection event, and on
// SIGINT or SIGTERM a summary of its counters.
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pthread.h>

#include "commands.hpp"
#include "diampool/address.hpp"
#include "diampool/codes.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/embedded_peer.hpp"
#include "metrics.hpp"

namespace diampool::cli {
namespace {

struct peer_options {
  std::string listen;
  std::string origin_host = "peer.example.net";
  std::string origin_realm = "example.net";
  std::string product_name = "diampool-peer";
  std::uint32_t vendor_id = 0;
  std::vector<std::uint32_t> auth_apps;
  std::vector<std::uint32_t> acct_apps;
  unsigned threads = 1;
  std::size_t max_message_size = std::size_t{1024} * 1024;
  // fault knobs (embedded_peer_faults)
  std::uint64_t answer_delay_ms = 0;
  std::uint32_t result_code = result_code::success;
  bool no_cea = false;
  std::uint32_t cea_result_code = result_code::success;
  bool no_dwa = false;
  std::uint32_t drop_every = 0;
  std::uint32_t duplicate_every = 0;
  std::uint64_t close_after = 0;
  bool stop_reading = false;
  std::uint64_t trickle_ms = 0;
  std::vector<std::uint32_t> echo_avps;
  // shutdown
  unsigned dpr_wait_ms = 2000;
};

// Lines to stdout from the I/O threads and the main thread, whole and flushed one by one
// (a reader of a pipe or a file sees each event as it happens).
class line_printer {
 public:
  void print(const std::string& line) {
    std::lock_guard lk(mutex_);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

 private:
  std::mutex mutex_;
};

// "2001 DIAMETER_SUCCESS", or the number alone when the dictionary does not name it.
std::string named_value(std::uint32_t avp_code, std::int64_t v) {
  std::string out = std::to_string(v);
  if (const avp_definition* def = dictionary::base().find_avp(avp_code)) {
    if (auto name = def->value_name(v); !name.empty()) {
      out += ' ';
      out += name;
    }
  }
  return out;
}

std::string describe(const embedded_peer_event& e) {
  std::string out = "connection " + std::to_string(e.connection) + " ";
  const std::string from = e.origin_host.empty() ? e.remote_address : e.origin_host;
  switch (e.kind) {
    case embedded_peer_event_kind::accepted:
      out += "accepted from " + e.remote_address;
      break;
    case embedded_peer_event_kind::capabilities_exchange:
      out += "CER from " + (e.origin_host.empty() ? "(no Origin-Host)" : e.origin_host) + ": ";
      out += e.result_code == 0 ? "not answered (--no-cea)"
                                : "CEA " + named_value(avp_code::result_code, e.result_code);
      break;
    case embedded_peer_event_kind::disconnect_request:
      out += "DPR from " + from + ", Disconnect-Cause ";
      out += e.disconnect_cause ? named_value(avp_code::disconnect_cause, *e.disconnect_cause)
                                : std::string("absent");
      break;
    case embedded_peer_event_kind::closed:
      out += "closed: " + e.reason;
      if (!e.origin_host.empty()) out += " (" + e.origin_host + ")";
      break;
  }
  return out;
}

void print_summary(line_printer& out, const embedded_peer_stats& s) {
  out.print("summary:");
  const std::pair<const char*, std::uint64_t> rows[] = {
      {"connections_accepted", s.connections_accepted},
      {"connections_closed", s.connections_closed},
      {"messages_received", s.messages_received},
      {"cers", s.cers},
      {"ceas_sent", s.ceas_sent},
      {"dwrs", s.dwrs},
      {"dwas_sent", s.dwas_sent},
      {"dwrs_sent", s.dwrs_sent},
      {"dwas_received", s.dwas_received},
      {"dprs", s.dprs},
      {"dpas_sent", s.dpas_sent},
      {"dprs_sent", s.dprs_sent},
      {"dpas_received", s.dpas_received},
      {"requests", s.requests},
      {"answers_sent", s.answers_sent},
      {"answers_dropped", s.answers_dropped},
      {"answers_duplicated", s.answers_duplicated},
      {"answers_received", s.answers_received},
      {"unexpected_before_cea", s.unexpected_before_cea},
      {"closed_after_messages", s.closed_after_messages},
      {"malformed", s.malformed},
      {"bytes_received", s.bytes_received},
      {"bytes_sent", s.bytes_sent},
  };
  for (const auto& [name, value] : rows) {
    out.print("  " + std::string(name) + " " + std::to_string(value));
  }
}

embedded_peer_faults faults_of(const peer_options& o) {
  embedded_peer_faults f;
  f.answer_delay = std::chrono::milliseconds(o.answer_delay_ms);
  f.result_code = o.result_code;
  f.answer_cer = !o.no_cea;
  f.cea_result_code = o.cea_result_code;
  f.answer_dwr = !o.no_dwa;
  f.drop_every_nth_answer = o.drop_every;
  f.duplicate_every_nth_answer = o.duplicate_every;
  f.close_after_messages = o.close_after;
  f.stop_reading = o.stop_reading;
  f.trickle_interval = std::chrono::milliseconds(o.trickle_ms);
  f.echo_avps = o.echo_avps;
  return f;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "a signal";
  }
}

int run_peer(const peer_options& o, const common_options& common) {
  {
    std::string host;
    std::string port;
    if (split_address(o.listen, host, port, /*allow_port_zero=*/true)) {
      std::cerr << "diampool peer: invalid --listen address '" << o.listen
                << "': expected host:port or [IPv6]:port with a port in 0..65535\n";
      return 2;
    }
  }
  if (o.threads == 0) {
    std::cerr << "diampool peer: --threads must be at least 1\n";
    return 2;
  }

  // SIGINT and SIGTERM are taken with sigwait() below: block them before any thread starts,
  // so every thread inherits the mask and none of them is interrupted by the signal.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto out = std::make_shared<line_printer>();
  embedded_peer_options po;
  po.listen = o.listen;
  po.origin_host = o.origin_host;
  po.origin_realm = o.origin_realm;
  po.product_name = o.product_name;
  po.vendor_id = o.vendor_id;
  po.auth_application_ids = o.auth_apps;
  po.acct_application_ids = o.acct_apps;
  po.threads = o.threads;
  po.max_message_size = o.max_message_size;
  po.faults = faults_of(o);
  po.on_event = [out](const embedded_peer_event& e) { out->print(describe(e)); };

  std::unique_ptr<embedded_peer> peer;
  try {
    peer = std::make_unique<embedded_peer>(std::move(po));
  } catch (const std::exception& e) {
    std::cerr << "diampool peer: " << e.what() << "\n";
    return 1;
  }
  out->print("listening on " + peer->address());

  std::unique_ptr<metrics_server> metrics;
  if (!common.metrics_listen.empty()) {
    try {
      metrics = std::make_unique<metrics_server>(common.metrics_listen);
      metrics->add(*peer);
      out->print("metrics on http://" + metrics->address() + "/metrics");
    } catch (const std::exception& e) {
      std::cerr << "diampool peer: --metrics-listen " << common.metrics_listen << ": " << e.what()
                << "\n";
      return 1;
    }
  }

  int sig = 0;
  if (sigwait(&stop_signals, &sig) != 0) sig = 0;
  out->print(std::string("received ") + signal_name(sig) + ", stopping");

  // Refuse new clients, say goodbye to the open ones with DPR (REBOOTING) and give them a
  // bounded time to answer and close; close whatever is left.
  peer->stop_listening();
  const auto none_open = [](const embedded_peer_stats& s) { return s.connections_open == 0; };
  if (!peer->wait_for(none_open, std::chrono::milliseconds(0))) {
    peer->send_dpr(disconnect_cause::rebooting);
    peer->wait_for(none_open, std::chrono::milliseconds(o.dpr_wait_ms));
    peer->close_all();
    peer->wait_for(none_open, std::chrono::milliseconds(1000));
  }
  const embedded_peer_stats stats = peer->stats();
  metrics.reset();
  peer.reset();
  print_summary(*out, stats);
  return 0;
}

}  // namespace

void add_peer(CLI::App& app, const common_options& common, int& exit_code) {
  auto o = std::make_shared<peer_options>();
  CLI::App* cmd = app.add_subcommand(
      "peer",
      "Run a Diameter server (the embedded peer) until SIGINT or SIGTERM. It answers CER, DWR, "
      "DPR and every application request (Result-Code --result-code, Session-Id copied). "
      "Prints `listening on HOST:PORT`, one line per connection event, and a summary of its "
      "counters when it stops (after sending DPR to the clients still connected).");
  cmd->add_option("--listen", o->listen, "host:port or [IPv6]:port to listen on; port 0 picks one")
      ->required();
  cmd->add_option("--origin-host", o->origin_host, "Origin-Host of everything it sends")
      ->capture_default_str();
  cmd->add_option("--origin-realm", o->origin_realm, "Origin-Realm of everything it sends")
      ->capture_default_str();
  cmd->add_option("--product-name", o->product_name, "Product-Name of the CEA")
      ->capture_default_str();
  cmd->add_option("--vendor-id", o->vendor_id, "Vendor-Id of the CEA")->capture_default_str();
  cmd->add_option("--auth-app", o->auth_apps,
                  "Auth-Application-Id advertised in the CEA (repeatable). With no --auth-app "
                  "and no --acct-app the CEA advertises the Relay application")
      ->allow_extra_args(false);
  cmd->add_option("--acct-app", o->acct_apps,
                  "Acct-Application-Id advertised in the CEA (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--threads", o->threads, "I/O threads")->capture_default_str();
  cmd->add_option("--max-message-size", o->max_message_size,
                  "Largest message accepted from a client, in bytes")
      ->capture_default_str();
  // Fault knobs.
  cmd->add_option("--answer-delay-ms", o->answer_delay_ms,
                  "Delay before each application answer (base protocol answers are not delayed)")
      ->capture_default_str();
  cmd->add_option("--result-code", o->result_code,
                  "Result-Code of application answers (3xxx also sets the E bit)")
      ->capture_default_str();
  cmd->add_flag("--no-cea", o->no_cea, "Read CERs and never answer them");
  cmd->add_option("--cea-result-code", o->cea_result_code,
                  "Result-Code of the CEA; anything but 2001 closes the connection after it")
      ->capture_default_str();
  cmd->add_flag("--no-dwa", o->no_dwa, "Read DWRs and never answer them");
  cmd->add_option("--drop-every", o->drop_every,
                  "Leave every Nth application request of a connection unanswered (0: none)")
      ->capture_default_str();
  cmd->add_option("--duplicate-every", o->duplicate_every,
                  "Send the answer to every Nth application request twice (0: none)")
      ->capture_default_str();
  cmd->add_option("--close-after", o->close_after,
                  "Close a connection when its Nth message (CER included) arrives (0: never)")
      ->capture_default_str();
  cmd->add_flag("--stop-reading", o->stop_reading,
                "Do not read from the sockets at all (the clients' writes block)");
  cmd->add_option("--trickle-ms", o->trickle_ms,
                  "Write everything one byte at a time, this many ms apart (a slow peer; 0: off)")
      ->capture_default_str();
  cmd->add_option("--echo-avp", o->echo_avps,
                  "Copy the request's top-level AVPs with this code into its answer (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--dpr-wait-ms", o->dpr_wait_ms,
                  "On SIGINT/SIGTERM, how long the clients get to answer the DPR and close")
      ->capture_default_str();
  cmd->callback([o, &common, &exit_code] { exit_code = run_peer(*o, common); });
}

}  // namespace diampool::cli
