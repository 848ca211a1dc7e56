#include "fleet/fleet_core.h"

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace custos::fleet {

Result<RevokeOutcome> RevokeSensor(FleetCore& core, std::string_view sensor_id) {
  auto sensor = core.store->GetSensor(sensor_id);
  if (!sensor.ok()) return sensor.error();
  if (!sensor->has_value()) return RevokeOutcome::kUnknownSensor;
  bool already = (*sensor)->revoked_at.has_value();
  if (!already) CUSTOS_TRY(core.store->RevokeSensor(sensor_id));
  // Published again even when already revoked: repairs a CRL that a crash
  // left behind the store.
  CUSTOS_TRY(core.crl->Publish());
  bool was_connected = core.registry->Disconnect(sensor_id, "sensor certificate revoked");
  spdlog::info("revoked sensor {} (serial {}){}", sensor_id, (*sensor)->certificate_serial,
               was_connected ? ", live channel closed" : "");
  return already ? RevokeOutcome::kAlreadyRevoked : RevokeOutcome::kRevoked;
}

Result<DesiredStateChange> SetDesiredState(FleetCore& core, std::string_view sensor_id,
                                           const std::string& config) {
  DesiredStateChange change;
  auto sensor = core.store->GetSensor(sensor_id);
  if (!sensor.ok()) return sensor.error();
  if (!sensor->has_value()) {
    change.outcome = DesiredStateOutcome::kUnknownSensor;
    return change;
  }
  if ((*sensor)->revoked_at) {
    change.outcome = DesiredStateOutcome::kRevokedSensor;
    return change;
  }
  nlohmann::json document = {{"config", config}};
  auto version = core.store->SetDesiredState(sensor_id, document.dump());
  if (!version.ok()) return version.error();
  change.version = *version;
  if (auto link = core.registry->Find(sensor_id)) {
    link->OfferDesiredState(*version, config);
    change.pushed = true;
  }
  spdlog::info("desired state of sensor {} is now version {}{}", sensor_id, *version,
               change.pushed ? ", sent to its live channel" : "");
  return change;
}

std::string DesiredConfigOf(const DesiredState& state) {
  auto document = nlohmann::json::parse(state.document, nullptr, false);
  if (!document.is_object()) return "";
  auto config = document.find("config");
  if (config == document.end() || !config->is_string()) return "";
  return config->get<std::string>();
}

}  // namespace custos::fleet
