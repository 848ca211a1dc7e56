// The bench's end check: the fleet stored exactly the events it
// acknowledged, in its database and through GET /v1/events.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "bench/fleet/admin.h"
#include "bench/fleet/sensor.h"
#include "bench/fleet/support.h"
#include "common/result.h"

namespace custos::fleetbench {

// Per sensor, the stored rows must be exactly seqs 1..acked: none lost,
// none twice, none the fleet did not acknowledge.
Status CheckStoredRows(const fs::path& database,
                       const std::vector<std::unique_ptr<Sensor>>& sensors,
                       std::uint64_t& stored_total);

// Pages through GET /v1/events?sensor=ID: seqs 1..acked in order, each once,
// and each body the one sent for that seq.
Status CheckEventsApi(Admin& admin, const Sensor& sensor);

}  // namespace custos::fleetbench
