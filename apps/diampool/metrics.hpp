// diampool CLI: Prometheus metrics endpoint (prometheus-cpp) for --metrics-listen.
#pragma once

#include <memory>
#include <string>

namespace diampool {
class address_client;
class embedded_peer;
}  // namespace diampool

namespace diampool::cli {

/// Serves GET /metrics in the Prometheus text format on `listen` ("host:port"; port 0 picks
/// one). Every scrape reads the current counters of what was added: an address_client's
/// client, pool and per-address counters and latency histograms, an embedded_peer's counters.
/// What is added must outlive the server.
class metrics_server {
 public:
  /// Throws std::runtime_error when `listen` cannot be bound.
  explicit metrics_server(const std::string& listen);
  ~metrics_server();
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  void add(const address_client& client);
  void add(const embedded_peer& peer);

  /// "host:port" actually listened on (the port chosen when 0 was asked).
  std::string address() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace diampool::cli
