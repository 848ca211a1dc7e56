// Enrolls the bench's sensors through POST /v1/enroll, timing each.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "bench/fleet/admin.h"
#include "bench/fleet/engine.h"
#include "bench/fleet/fleet_process.h"
#include "bench/fleet/https_exchange.h"
#include "bench/fleet/sensor.h"
#include "common/result.h"

namespace custos::fleetbench {

// Enrolls `count` sensors: the first `timed` one at a time (their times
// are the figure), the rest `parallel` at once. Each gets a fresh token.
struct EnrollmentRun {
  std::vector<std::unique_ptr<Sensor>> sensors;
  std::vector<double> sequential_ms, parallel_ms;
};

Result<EnrollmentRun> EnrollSensors(Engine& engine, Admin& admin, const Fleet& fleet,
                                    ssl::context& enroll_tls, std::size_t count, std::size_t timed,
                                    std::size_t parallel);

}  // namespace custos::fleetbench
