// A phase of the bench: many sensors' channels at once, with the latency,
// throughput and memory figures it yields.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/fleet/channel.h"
#include "bench/fleet/engine.h"
#include "bench/fleet/sensor.h"
#include "bench/fleet/support.h"
#include "common/result.h"

namespace custos::fleetbench {

struct PhaseResult {
  std::vector<std::uint32_t> latencies_us;
  std::uint64_t acked = 0;
  std::uint64_t batches = 0;
  Clock::duration elapsed{};  // from the start to the last ack
  std::optional<double> fleetd_rss_mb;
};

// Connects `count` sensors (at most 64 handshakes at once), runs `plan` for
// `duration`, and waits until every event is acknowledged and every
// channel closed. With `measure_rss`, reads fleetd's VmRSS just before the end.
Result<PhaseResult> RunPhase(const std::string& name, Engine& engine,
                             std::vector<std::unique_ptr<Sensor>>& sensors, std::size_t count,
                             const Plan& plan, Clock::duration duration, pid_t fleetd,
                             bool measure_rss = false);

}  // namespace custos::fleetbench
