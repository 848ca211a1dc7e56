// custos-fleetd's server: loads the fleet folder (CA, store, master key,
// admin token hash), listens on the API port (HTTPS, server certificate
// only) and the channel port (mutual TLS, WebSocket), and runs both on a
// small pool of network threads; store work runs on a separate blocking
// pool so an fsync never stalls the network. It re-signs the CRL at start
// and before it runs out. Thread-safety: Start/Stop from one thread; the
// accessors are safe from any thread once started.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "fleet/api_routes.h"
#include "fleet/fleet_core.h"
#include "fleet/listener.h"

namespace custos::fleet {

struct FleetServerOptions {
  std::filesystem::path dir;
  std::string api_address = "0.0.0.0:8443";
  std::string channel_address = "0.0.0.0:8444";
  // HOST:PORT enrolling sensors are told to dial for the channel; empty:
  // the host they reached the API under, with the channel port.
  std::string channel_advertise;
  int network_threads = 2;
  int blocking_threads = 2;
  int heartbeat_seconds = 5;
  std::chrono::seconds certificate_validity = std::chrono::days(365);
  std::chrono::seconds crl_validity = std::chrono::days(7);
  // How often to check whether the CRL needs re-signing.
  std::chrono::seconds crl_check_interval = std::chrono::minutes(10);
};

class FleetServer {
 public:
  static Result<std::unique_ptr<FleetServer>> Open(const FleetServerOptions& options);
  ~FleetServer();
  FleetServer(const FleetServer&) = delete;
  FleetServer& operator=(const FleetServer&) = delete;

  // Publishes the CRL, binds both ports and starts the threads.
  Status Start();
  // Closes the ports and every channel (sensors will reconnect to the next
  // fleetd), waits briefly for them, then stops the threads.
  void Stop();

  std::uint16_t api_port() const { return api_->local_endpoint().port(); }
  std::uint16_t channel_port() const { return channel_->local_endpoint().port(); }
  FleetCore& core() { return core_; }

 private:
  explicit FleetServer(FleetServerOptions options) : options_(std::move(options)) {}
  Status Load();
  void ScheduleCrlCheck();

  FleetServerOptions options_;
  // Declared in dependency order: destroyed in reverse.
  std::unique_ptr<FleetStore> store_;
  std::optional<crypto::IssuingAuthority> authority_;
  std::shared_ptr<crypto::RevocationList> revocations_;
  std::optional<DataKeyService> keys_;
  std::optional<Enroller> enroller_;
  std::optional<CrlPublisher> crl_;
  std::optional<EventWriter> event_writer_;
  ChannelRegistry registry_;
  FleetCore core_;
  std::optional<ApiRoutes> routes_;
  std::optional<boost::asio::ssl::context> api_tls_;
  std::optional<boost::asio::ssl::context> channel_tls_;
  boost::asio::io_context io_;
  std::optional<boost::asio::thread_pool> blocking_;
  std::shared_ptr<Listener> api_;
  std::shared_ptr<Listener> channel_;
  std::optional<boost::asio::steady_timer> crl_timer_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace custos::fleet
