// What fleetd's API routes and channel sessions share (owned by FleetServer),
// and the two operations that touch several of its parts at once:
// revoking a sensor and setting its desired state. Thread-safe: every part
// is thread-safe and the strings are fixed after start.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/authority.h"
#include "crypto/revocation.h"
#include "fleet/channel_registry.h"
#include "fleet/crl_publisher.h"
#include "fleet/data_keys.h"
#include "fleet/enrollment.h"
#include "fleet/event_writer.h"
#include "fleet/fleet_store.h"

namespace custos::fleet {

struct FleetCore {
  FleetStore* store = nullptr;
  const crypto::IssuingAuthority* authority = nullptr;
  std::shared_ptr<crypto::RevocationList> revocations;
  const DataKeyService* keys = nullptr;
  const Enroller* enroller = nullptr;
  CrlPublisher* crl = nullptr;
  ChannelRegistry* registry = nullptr;
  EventWriter* events = nullptr;  // group commit of event batches
  std::string admin_token_hash;   // hex SHA-256 of the admin bearer token
  std::string channel_advertise;  // HOST:PORT told to enrolling sensors; "" derives it
  std::uint16_t channel_port = 0;
  int heartbeat_seconds = 5;
};

enum class RevokeOutcome { kRevoked, kAlreadyRevoked, kUnknownSensor };

// Marks the sensor revoked in the store, publishes the new CRL to the
// running channel context, then cuts its live channel (if any). The order
// matters: a channel that registers after the cut re-checks the CRL.
Result<RevokeOutcome> RevokeSensor(FleetCore& core, std::string_view sensor_id);

enum class DesiredStateOutcome { kStored, kUnknownSensor, kRevokedSensor };
struct DesiredStateChange {
  DesiredStateOutcome outcome = DesiredStateOutcome::kStored;
  std::int64_t version = 0;
  bool pushed = false;  // the sensor is connected and was sent it now
};

// Stores {"config": <yaml>} as the sensor's next version and offers it to the
// live channel at once; a sensor not connected gets it after its next hello.
Result<DesiredStateChange> SetDesiredState(FleetCore& core, std::string_view sensor_id,
                                           const std::string& config);

// The YAML text of a stored desired-state document ("" if it holds none).
std::string DesiredConfigOf(const DesiredState& state);

}  // namespace custos::fleet
