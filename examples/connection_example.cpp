// One Diameter connection: connect (CER/CEA), send a request, read its answer, close (DPR/DPA).
// Without an address argument it starts an embedded peer on loopback and talks to that.
#include <diampool/diampool.hpp>
#include <diampool/embedded_peer.hpp>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <cstdio>
#include <optional>
#include <thread>

int main(int argc, char** argv) {
  using namespace diampool;
  using namespace std::chrono_literals;

  std::optional<embedded_peer> local_peer;
  std::string address;
  if (argc > 1) {
    address = argv[1];
  } else {
    local_peer.emplace();
    address = local_peer->address();
  }

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  connection_config config;
  config.peer.local.origin_host = "client.example.com";
  config.peer.local.origin_realm = "example.com";
  config.peer.local.auth_application_ids = {4};  // Diameter Credit-Control
  auto conn = connection::create(io.get_executor(), config);

  int status = 0;
  if (auto ec = conn->connect(address, std::chrono::steady_clock::now() + 5s)) {
    std::fprintf(stderr, "connect to %s failed: %s\n", address.c_str(), ec.message().c_str());
    status = 1;
  } else {
    std::printf("connected to %s (%s)\n", address.c_str(),
                std::string(to_string(conn->state())).c_str());
    std::vector<std::uint8_t> request;
    message_header h;
    h.flags = cmd_flags::request | cmd_flags::proxiable;
    h.command_code = 272;  // Credit-Control
    h.application_id = 4;
    message_builder b(request, h);
    b.add_string(avp_code::session_id, "client.example.com;1;1")
        .add_string(avp_code::origin_host, "client.example.com")
        .add_string(avp_code::origin_realm, "example.com")
        .add_string(avp_code::destination_realm, "example.net")
        .add_unsigned32(avp_code::auth_application_id, 4);
    b.finish();
    // Any asio completion token works; use_future here.
    auto answer =
        conn->async_send(request, std::chrono::steady_clock::now() + 2s, asio::use_future);
    try {
      const std::vector<std::uint8_t> bytes = answer.get();
      std::error_code ec;
      std::fputs(to_text(message_view::parse(bytes, ec)).c_str(), stdout);
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "request failed: %s\n", e.code().message().c_str());
      status = 1;
    }
    conn->close();  // DPR, wait for the DPA, close the socket
    const connection_stats s = conn->stats();
    std::printf("closed: state %s, %llu messages sent, %llu received\n",
                std::string(to_string(s.state)).c_str(),
                static_cast<unsigned long long>(s.messages_sent),
                static_cast<unsigned long long>(s.messages_received));
  }
  conn.reset();
  work.reset();
  runner.join();
  return status;
}
