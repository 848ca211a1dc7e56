// custos-fleetd: the Fleet server. Serves the fleet folder made by
// `custos fleet init` until SIGTERM or SIGINT.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/log.h"
#include "fleet/fleet_server.h"

namespace custos::fleet {
namespace {

int Main(int argc, char** argv) {
  CLI::App app{"custos-fleetd: the Custos Fleet server"};
  FleetServerOptions options;
  std::string dir;
  bool verbose = false;
  app.add_option("--dir", dir, "fleet folder made by `custos fleet init`")->required();
  app.add_option("--api", options.api_address, "API listen address (HTTPS)")->capture_default_str();
  app.add_option("--channel", options.channel_address, "channel listen address (mutual TLS)")
      ->capture_default_str();
  app.add_option("--advertise-channel", options.channel_advertise,
                 "HOST:PORT enrolling sensors dial for the channel (default: the host they "
                 "reached the API under, with the channel port)");
  app.add_option("--threads", options.network_threads, "network threads")->capture_default_str();
  app.add_option("--heartbeat", options.heartbeat_seconds, "seconds between sensor heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_flag("-v,--verbose", verbose, "debug logging");
  CLI11_PARSE(app, argc, argv);
  options.dir = dir;
  InitLogging("custos-fleetd", verbose);

  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait below sees these signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client that vanishes mid-write must not kill the server.
  ::signal(SIGPIPE, SIG_IGN);

  auto server = FleetServer::Open(options);
  if (!server.ok()) {
    spdlog::error("{}", server.error().message);
    return 1;
  }
  if (auto started = (*server)->Start(); !started.ok()) {
    spdlog::error("{}", started.error().message);
    return 1;
  }
  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("received {}", received == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Stop();
  return 0;
}

}  // namespace
}  // namespace custos::fleet

int main(int argc, char** argv) { return custos::fleet::Main(argc, argv); }
