// How the REST API shows fleet records as JSON (docs/api.md): sensors with
// their live state, enrollment tokens (never their secrets) and stored
// events. Times are RFC 3339 UTC with microseconds. Pure functions,
// thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "fleet/channel_registry.h"
#include "fleet/fleet_store.h"

namespace custos::fleet {

// "2026-11-23T17:55:23.123456Z".
std::string FormatApiTime(TimePoint time);

// `live` is the sensor's channel if it is connected now; its heartbeat is
// newer than the stored one, which fleetd writes to the store less often.
nlohmann::json SensorJson(const SensorRecord& sensor, const std::optional<LiveSensor>& live,
                          const DesiredState* desired_state, bool with_health);

nlohmann::json TokenJson(const EnrollmentTokenInfo& token, TimePoint now);

nlohmann::json EventJson(const StoredEvent& event);

}  // namespace custos::fleet
