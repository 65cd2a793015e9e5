// Prometheus text exposition of the counters of an address_client and an embedded_peer.
#include "metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <limits>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "diampool/address.hpp"
#include "diampool/address_client.hpp"
#include "diampool/embedded_peer.hpp"

namespace diampool::cli {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add_value(MetricFamily& f, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  f.metric.push_back(std::move(m));
}

void counter(std::vector<MetricFamily>& out, std::string name, std::string help, double v) {
  auto f = family(std::move(name), std::move(help), MetricType::Counter);
  add_value(f, v);
  out.push_back(std::move(f));
}

void gauge(std::vector<MetricFamily>& out, std::string name, std::string help, double v) {
  auto f = family(std::move(name), std::move(help), MetricType::Gauge);
  add_value(f, v);
  out.push_back(std::move(f));
}

// Request latency buckets, in seconds. The histogram behind them knows each value within
// 12.5 %, so a count near a bound may sit in the neighbouring bucket.
constexpr double latency_bounds[] = {50e-6,  100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3,
                                     5e-3,   10e-3,  25e-3,  50e-3,  100e-3, 250e-3,
                                     500e-3, 1.0,    2.5,    5.0,    10.0};

ClientMetric latency_metric(const histogram_snapshot& h, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = static_cast<double>(h.sum) / 1e6;  // microseconds -> seconds
  std::size_t i = 0;
  std::uint64_t cumulative = 0;
  for (const double bound : latency_bounds) {
    // Buckets (in microseconds) whose values all lie at or below the bound.
    while (i < h.buckets.size() && static_cast<double>(h.bucket_upper(i)) <= bound * 1e6) {
      cumulative += h.buckets[i++];
    }
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  return m;
}

class client_collector final : public prometheus::Collectable {
 public:
  explicit client_collector(const address_client& c) : client_(c) {}

  std::vector<MetricFamily> Collect() const override {
    const client_stats s = client_.stats();
    const pool_stats& p = s.pool;
    std::vector<MetricFamily> out;
    counter(out, "diampool_requests_total", "Requests sent (send calls).", s.total_requests);
    counter(out, "diampool_responses_total", "Answers delivered.", s.total_responses);
    counter(out, "diampool_errors_total", "Requests that ended with an error.", s.total_errors);
    counter(out, "diampool_timeouts_total", "Requests whose deadline or dial timed out.",
            s.total_timeouts);
    counter(out, "diampool_cancelled_total", "Requests cancelled by their caller.",
            s.total_cancelled);
    gauge(out, "diampool_requests_in_flight", "Requests without an outcome yet.", s.in_flight);
    gauge(out, "diampool_active_connections", "Connections OPEN or DWR_SENT.",
          p.active_connections);
    gauge(out, "diampool_addresses", "Addresses the pool holds.", p.addresses);
    counter(out, "diampool_connections_created_total", "Establishments that succeeded.",
            p.connections_created);
    counter(out, "diampool_establishments_failed_total", "Establishments that failed.",
            p.failed_establishments);
    counter(out, "diampool_reconnect_attempts_total", "Establishments after the first.",
            p.reconnect_attempts);
    counter(out, "diampool_connections_closed_total", "Connections lost or closed.",
            p.connections_closed);
    counter(out, "diampool_idle_closures_total", "Connections closed for idleness.",
            p.idle_closures);
    counter(out, "diampool_lifetime_expirations_total",
            "Connections replaced at their maximum lifetime.", p.lifetime_expirations);
    counter(out, "diampool_health_checks_total", "Runs of the health check.", p.health_checks);
    counter(out, "diampool_unmatched_answers_total", "Answers no request was waiting for.",
            p.unmatched_answers);
    counter(out, "diampool_messages_sent_total", "Diameter messages written.", p.messages_sent);
    counter(out, "diampool_messages_received_total", "Diameter messages read.",
            p.messages_received);
    counter(out, "diampool_bytes_sent_total", "Bytes written.", p.bytes_sent);
    counter(out, "diampool_bytes_received_total", "Bytes read.", p.bytes_received);

    auto up = family("diampool_connection_up",
                     "1 when the address's connection is OPEN or "
                     "DWR_SENT.",
                     MetricType::Gauge);
    auto state = family("diampool_connection_state",
                        "The state of each address's connection (value 1, state as label).",
                        MetricType::Gauge);
    auto reconnects =
        family("diampool_connection_reconnects_total",
               "Reconnections of the address's current connection.", MetricType::Counter);
    auto sent =
        family("diampool_connection_messages_sent_total",
               "Messages written on the address's current connection.", MetricType::Counter);
    auto received =
        family("diampool_connection_messages_received_total",
               "Messages read on the address's current connection.", MetricType::Counter);
    auto reads = family("diampool_connection_socket_reads_total",
                        "Socket reads that returned bytes on the address's current connection.",
                        MetricType::Counter);
    auto writes = family("diampool_connection_socket_writes_total",
                         "Socket writes on the address's current connection (each carries every "
                         "message queued since the last).",
                         MetricType::Counter);
    auto pending = family("diampool_connection_pending_requests",
                          "Requests waiting for their answers on the address's connection.",
                          MetricType::Gauge);
    auto latency = family("diampool_request_duration_seconds",
                          "Request-to-answer latency of answered requests.", MetricType::Histogram);
    for (const connection_info& c : client_.connections()) {
      const std::vector<ClientMetric::Label> a{{"address", c.address}};
      add_value(up, is_active(c.state) ? 1 : 0, a);
      add_value(state, 1, {{"address", c.address}, {"state", std::string(to_string(c.state))}});
      add_value(reconnects, static_cast<double>(c.stats.reconnects), a);
      add_value(sent, static_cast<double>(c.stats.messages_sent), a);
      add_value(received, static_cast<double>(c.stats.messages_received), a);
      add_value(reads, static_cast<double>(c.stats.socket_reads), a);
      add_value(writes, static_cast<double>(c.stats.socket_writes), a);
      add_value(pending, static_cast<double>(c.stats.pending), a);
      latency.metric.push_back(latency_metric(c.latency, a));
    }
    latency.metric.push_back(latency_metric(s.latency, {{"address", "all"}}));
    for (auto* f :
         {&up, &state, &reconnects, &sent, &received, &reads, &writes, &pending, &latency}) {
      out.push_back(std::move(*f));
    }
    return out;
  }

 private:
  const address_client& client_;
};

class peer_collector final : public prometheus::Collectable {
 public:
  explicit peer_collector(const embedded_peer& p) : peer_(p) {}

  std::vector<MetricFamily> Collect() const override {
    const embedded_peer_stats s = peer_.stats();
    std::vector<MetricFamily> out;
    auto c = [&](const char* name, const char* help, std::uint64_t v) {
      counter(out, std::string("diampool_peer_") + name + "_total", help, static_cast<double>(v));
    };
    c("connections_accepted", "TCP connections accepted.", s.connections_accepted);
    c("connections_closed", "Connections closed.", s.connections_closed);
    c("messages_received", "Well-framed messages received.", s.messages_received);
    c("cers", "CERs received.", s.cers);
    c("dwrs", "DWRs received.", s.dwrs);
    c("dprs", "DPRs received.", s.dprs);
    c("requests", "Application requests received.", s.requests);
    c("answers_sent", "Application answers sent.", s.answers_sent);
    c("answers_dropped", "Application requests left unanswered (fault).", s.answers_dropped);
    c("malformed", "Malformed frames received.", s.malformed);
    c("bytes_received", "Bytes read.", s.bytes_received);
    c("bytes_sent", "Bytes written.", s.bytes_sent);
    gauge(out, "diampool_peer_connections_open", "Connections open now.",
          static_cast<double>(s.connections_open));
    return out;
  }

 private:
  const embedded_peer& peer_;
};

}  // namespace

struct metrics_server::impl {
  std::string host;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectors;
};

metrics_server::metrics_server(const std::string& listen) : impl_(std::make_unique<impl>()) {
  std::string host;
  std::string port;
  if (split_address(listen, host, port, /*allow_port_zero=*/true)) {
    throw std::runtime_error("--metrics-listen: expected host:port, got '" + listen + "'");
  }
  impl_->host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(impl_->host + ":" + port, 1);
  } catch (const std::exception& e) {
    throw std::runtime_error("--metrics-listen " + listen + ": " + e.what());
  }
}

metrics_server::~metrics_server() {
  for (const auto& c : impl_->collectors)
    impl_->exposer->RemoveCollectable(c);
}

void metrics_server::add(const address_client& client) {
  auto c = std::make_shared<client_collector>(client);
  impl_->exposer->RegisterCollectable(c);
  impl_->collectors.push_back(std::move(c));
}

void metrics_server::add(const embedded_peer& peer) {
  auto c = std::make_shared<peer_collector>(peer);
  impl_->exposer->RegisterCollectable(c);
  impl_->collectors.push_back(std::move(c));
}

std::string metrics_server::address() const {
  const auto ports = impl_->exposer->GetListeningPorts();
  return impl_->host + ":" + (ports.empty() ? std::string("?") : std::to_string(ports.front()));
}

}  // namespace diampool::cli
