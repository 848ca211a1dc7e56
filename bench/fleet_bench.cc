// custos_fleet_bench: simulated sensors against a real custos-fleetd.
// It makes a fleet folder with `custos fleet init`, starts custos-fleetd on
// free loopback ports, and then, as the sensors of docs/fleet-protocol.md
// would:
//   - enrolls sensors (key pair and CSR made here, the fleet trusted only
//     once the root it sends hashes to the token's CA hash and the server
//     certificate verifies against that root; POST /v1/enroll);
//   - holds one mutual-TLS WebSocket per sensor to /v1/channel (hello, then
//     event batches, at most 4 unacknowledged) and times every event from
//     the moment it was made until the ack that covers its seq arrives, so a
//     full window or a slow fleet counts against the latency;
//   - floods batches of 500 events for throughput;
//   - checks that the fleet stored exactly the events it acknowledged (the
//     SQLite rows per sensor, and one sensor's events through GET /v1/events).
// Prints the BENCH lines of bench/run on stdout, other figures on stderr.
// One process: a few io_context threads drive every connection; each sensor
// lives on one io_context, so its state needs no lock. fleetd is stopped and
// the folder removed on every exit path, SIGINT and SIGTERM included.
// The pieces live in bench/fleet/; this file holds the options and the run.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "bench/fleet/admin.h"
#include "bench/fleet/channel.h"
#include "bench/fleet/engine.h"
#include "bench/fleet/enrollment.h"
#include "bench/fleet/fleet_process.h"
#include "bench/fleet/https_exchange.h"
#include "bench/fleet/phase.h"
#include "bench/fleet/stored_check.h"
#include "bench/fleet/support.h"
#include "common/log.h"

namespace custos::fleetbench {
namespace {

void OnSignal(int) { interrupted = true; }

// --- the run ---------------------------------------------------------------

struct Options {
  Tools tools;
  int threads = 2;
  std::size_t enroll_timed = 100;
  std::size_t enroll_parallel = 8;
  std::size_t small = 100;
  std::size_t large = 1000;
  std::size_t flood = 100;
  double small_seconds = 15;
  double large_seconds = 20;
  double flood_seconds = 10;
  std::size_t rate = 20;  // events per second per sensor
  std::size_t batch_events = 500;
  std::size_t event_bytes = 200;
};

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void PrintLatency(const char* bench_name, const std::string& label, PhaseResult& phase) {
  double p50 = Percentile(phase.latencies_us, 0.50) / 1000.0;
  double p99 = Percentile(phase.latencies_us, 0.99) / 1000.0;
  double max = phase.latencies_us.empty() ? 0 : phase.latencies_us.back() / 1000.0;
  spdlog::info("{}: {} events acknowledged, latency p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms",
               label, phase.acked, p50, p99, max);
  std::printf("BENCH %s %.1f ms\n", bench_name, p99);
  std::fflush(stdout);
}

int Run(const Options& options) {
  std::size_t most = std::max({options.small, options.large, options.flood});
  if (auto raised = RaiseFileLimit(2 * most + 256); !raised.ok()) {
    spdlog::error("{}", raised.error().message);
    return 1;
  }
  auto fleet = Fleet::Start(options.tools);
  if (!fleet.ok()) {
    spdlog::error("{}", fleet.error().message);
    return 1;
  }
  auto fail = [&](const Error& error) {
    spdlog::error("{}", error.message);
    if (interrupted) return 1;
    std::string tail = (*fleet)->LogTail();
    if (!tail.empty()) spdlog::error("end of the fleetd log:\n{}", tail);
    return 1;
  };
  auto admin_tls = MakeAdminContext((*fleet)->root_pem());
  if (!admin_tls.ok()) return fail(admin_tls.error());
  auto enroll_tls = MakeEnrollContext();
  if (!enroll_tls.ok()) return fail(enroll_tls.error());
  // Declared before the engine and stopped with it (the guard below), so no
  // handler can still run when the sensors and contexts go away.
  EnrollmentRun enrollment;
  Engine engine(options.threads);
  Admin admin(engine, **fleet, *admin_tls);
  struct StopFirst {
    Engine& engine;
    ~StopFirst() { engine.Stop(); }
  } stop_first{engine};

  auto enrolled = EnrollSensors(engine, admin, **fleet, *enroll_tls, most, options.enroll_timed,
                                options.enroll_parallel);
  if (!enrolled.ok()) return fail(enrolled.error());
  enrollment = std::move(*enrolled);
  auto& sensors = enrollment.sensors;
  spdlog::info(
      "enrollment: {} sensors; one at a time: median {:.1f} ms, p99 {:.1f} ms; {} at once: "
      "median {:.1f} ms",
      sensors.size(), Percentile(enrollment.sequential_ms, 0.5),
      Percentile(enrollment.sequential_ms, 0.99), options.enroll_parallel,
      Percentile(enrollment.parallel_ms, 0.5));
  std::printf("BENCH fleet_enroll_ms %.1f ms\n", Percentile(enrollment.sequential_ms, 0.5));
  std::fflush(stdout);

  Plan rate;
  rate.load = Load::kRate;
  rate.tick = std::chrono::milliseconds(100);
  rate.events_per_tick = std::max<std::size_t>(1, options.rate / 10);
  rate.batch_events = options.batch_events;
  rate.event_bytes = options.event_bytes;

  auto small = RunPhase(std::to_string(options.small) + " sensors", engine, sensors, options.small,
                        rate, Seconds(options.small_seconds), (*fleet)->pid());
  if (!small.ok()) return fail(small.error());
  PrintLatency("fleet_p99_ms_100sensors", std::to_string(options.small) + " sensors", *small);

  auto large = RunPhase(std::to_string(options.large) + " sensors", engine, sensors, options.large,
                        rate, Seconds(options.large_seconds), (*fleet)->pid(), true);
  if (!large.ok()) return fail(large.error());
  PrintLatency("fleet_p99_ms_1000sensors", std::to_string(options.large) + " sensors", *large);
  std::printf("BENCH fleetd_rss_mb_1000sensors %.1f MB\n", large->fleetd_rss_mb.value_or(0));
  std::fflush(stdout);

  Plan flood = rate;
  flood.load = Load::kFlood;
  flood.record_latency = false;
  auto throughput = RunPhase("throughput", engine, sensors, options.flood, flood,
                             Seconds(options.flood_seconds), (*fleet)->pid());
  if (!throughput.ok()) return fail(throughput.error());
  double seconds = std::chrono::duration<double>(throughput->elapsed).count();
  double per_second = seconds > 0 ? static_cast<double>(throughput->acked) / seconds : 0;
  spdlog::info("throughput: {} sensors stored {} events in {:.2f} s ({} per batch, {} bytes each)",
               options.flood, throughput->acked, seconds, options.batch_events,
               options.event_bytes);
  std::printf("BENCH fleet_events_per_s %.0f events/s\n", per_second);
  std::fflush(stdout);

  std::uint64_t acked = 0;
  for (const auto& sensor : sensors) acked += sensor->acknowledged();
  std::uint64_t stored = 0;
  if (auto rows = CheckStoredRows((*fleet)->dir() / "fleet.db", sensors, stored); !rows.ok()) {
    return fail(Error{"FAILED: the fleet acknowledged " + std::to_string(acked) +
                      " events but stored " + std::to_string(stored) + ": " +
                      rows.error().message});
  }
  if (auto listed = CheckEventsApi(admin, *sensors.front()); !listed.ok()) {
    return fail(Context("FAILED", listed.error()));
  }
  spdlog::info(
      "checked: the fleet stored exactly the {} events it acknowledged ({} rows), "
      "and lists sensor {}'s {} events in order",
      acked, stored, sensors.front()->id, sensors.front()->acknowledged());
  if (auto stopped = (*fleet)->Stop(); !stopped.ok()) return fail(stopped.error());
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"custos_fleet_bench: simulated sensors against a real custos-fleetd"};
  Options options;
  app.add_option("--cli", options.tools.cli, "the custos binary")->capture_default_str();
  app.add_option("--fleetd", options.tools.fleetd, "the custos-fleetd binary")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "network threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--enroll-timed", options.enroll_timed, "enrollments timed one at a time")
      ->capture_default_str();
  app.add_option("--small", options.small, "sensors in the first latency run")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--large", options.large, "sensors in the second latency run")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--flood", options.flood, "sensors in the throughput run")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--small-seconds", options.small_seconds)->capture_default_str();
  app.add_option("--large-seconds", options.large_seconds)->capture_default_str();
  app.add_option("--flood-seconds", options.flood_seconds)->capture_default_str();
  app.add_option("--rate", options.rate, "events per second per sensor (multiple of 10)")
      ->capture_default_str()
      ->check(CLI::Range(10, 5000));
  app.add_option("--batch-events", options.batch_events, "events per batch in the throughput run")
      ->capture_default_str()
      ->check(CLI::Range(1, 500));
  app.add_option("--event-bytes", options.event_bytes, "bytes per event body")
      ->capture_default_str()
      ->check(CLI::Range(120, 2000));
  CLI11_PARSE(app, argc, argv);
  InitLogging("fleet_bench", false);

  struct sigaction action {};
  action.sa_handler = OnSignal;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return Run(options);
}

}  // namespace
}  // namespace custos::fleetbench

int main(int argc, char** argv) { return custos::fleetbench::Main(argc, argv); }
