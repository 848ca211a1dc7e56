// Runs a phase: connects the channels a few at a time, starts them all at
// once, and gathers what they measured.
#include "bench/fleet/phase.h"

#include <algorithm>
#include <atomic>

#include "common/log.h"

namespace custos::fleetbench {
namespace {

// What a phase's callbacks share; they may outlive a wait that timed out.
struct PhaseState {
  PhaseState(Engine& engine_in, std::size_t count, std::size_t connecting)
      : engine(engine_in), connected(connecting), finished(count) {}
  Engine& engine;
  std::vector<std::shared_ptr<Channel>> channels;
  std::atomic<std::size_t> next{0};
  Countdown connected, finished;
};

// Connects the next channel, or counts this connecting slot done.
void ConnectNext(const std::shared_ptr<PhaseState>& state) {
  std::size_t index = state->next++;
  if (index >= state->channels.size()) return state->connected.Done();
  asio::post(state->engine.at(index), [state, channel = state->channels[index]] {
    channel->Connect([state] { ConnectNext(state); });
  });
}

}  // namespace

Result<PhaseResult> RunPhase(const std::string& name, Engine& engine,
                             std::vector<std::unique_ptr<Sensor>>& sensors, std::size_t count,
                             const Plan& plan, Clock::duration duration, pid_t fleetd,
                             bool measure_rss) {
  constexpr std::size_t kConnecting = 64;
  auto state = std::make_shared<PhaseState>(engine, count, std::min(kConnecting, count));
  auto writer = std::make_shared<const BatchWriter>(plan.event_bytes);
  for (std::size_t i = 0; i < count; ++i) {
    state->channels.push_back(std::make_shared<Channel>(engine.at(i), *sensors[i], plan, writer));
  }
  // Read only once every channel has reported through a Countdown.
  auto first_error = [&]() -> std::optional<Error> {
    std::size_t failed = 0;
    std::string first;
    for (auto& channel : state->channels) {
      if (channel->error().empty()) continue;
      if (failed++ == 0) first = channel->error();
    }
    if (failed == 0) return std::nullopt;
    return Error{name + ": " + std::to_string(failed) + " of " + std::to_string(count) +
                 " channels failed; first: " + first};
  };

  auto connect_start = Clock::now();
  for (std::size_t i = 0; i < std::min(kConnecting, count); ++i) ConnectNext(state);
  if (!state->connected.WaitUntil(Clock::now() + std::chrono::seconds(60))) {
    return Error{interrupted ? "interrupted" : name + ": connecting took more than 60 s"};
  }
  auto connect_wall = Clock::now() - connect_start;
  if (auto error = first_error()) return *error;
  std::vector<double> connect_ms;
  for (auto& channel : state->channels) connect_ms.push_back(Milliseconds(channel->connect_time()));
  spdlog::info("{}: {} sensors connected in {:.1f} s (TCP connect to welcome: median {:.1f} ms)",
               name, count, std::chrono::duration<double>(connect_wall).count(),
               Percentile(connect_ms, 0.5));

  auto start = Clock::now() + std::chrono::milliseconds(200);
  auto end = start + duration;
  double fleetd_cpu = CpuSeconds(fleetd), bench_cpu = CpuSeconds(-1);
  for (std::size_t i = 0; i < count; ++i) {
    asio::post(engine.at(i), [state, start, end, channel = state->channels[i]] {
      channel->Run(start, end, [state] { state->finished.Done(); });
    });
  }
  PhaseResult result;
  if (measure_rss) {
    state->finished.WaitUntil(end - std::chrono::milliseconds(500));
    if (interrupted) return Error{"interrupted"};
    auto rss = ResidentMegabytes(fleetd);
    if (!rss.ok()) return rss.error();
    result.fleetd_rss_mb = *rss;
  }
  if (!state->finished.WaitUntil(end + kDrainTimeout + std::chrono::seconds(5))) {
    return Error{interrupted ? "interrupted" : name + ": the channels did not finish"};
  }
  if (auto error = first_error()) return *error;
  Clock::time_point last = start;
  for (auto& channel : state->channels) {
    result.acked += channel->acked_in_run();
    result.batches += channel->batches_acked();
    last = std::max(last, channel->last_ack());
    auto& latencies = channel->latencies_us();
    result.latencies_us.insert(result.latencies_us.end(), latencies.begin(), latencies.end());
  }
  result.elapsed = last - start;
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  spdlog::info(
      "{}: {} batches acknowledged ({:.0f}/s); CPU in {:.1f} s: fleetd {:.1f} s, "
      "simulator {:.1f} s",
      name, result.batches, static_cast<double>(result.batches) / seconds, seconds,
      CpuSeconds(fleetd) - fleetd_cpu, CpuSeconds(-1) - bench_cpu);
  return result;
}

}  // namespace custos::fleetbench
