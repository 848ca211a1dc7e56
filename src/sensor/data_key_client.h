// Fetches the sensor's data key from its fleet at boot: one HTTPS request
// to the channel port (mutual TLS with the sensor's certificate), so a
// revoked sensor is refused in the handshake before any key is sent. The
// key goes straight into locked memory (storage::SecretBytes); the reply's
// text is wiped. A pending key is the fleet's order to re-key: the sensor
// re-encrypts under it and confirms, and the fleet then makes it current.
// Functions are thread-safe; each call has its own connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "common/result.h"
#include "sensor/fleet_identity.h"
#include "storage/key_material.h"

namespace custos::sensor {

struct DataKeys {
  storage::SecretBytes current;
  std::uint64_t version = 0;
  std::optional<storage::SecretBytes> pending;  // re-key to this one
  std::uint64_t pending_version = 0;
};

// GET /v1/data-key on the channel port.
Result<DataKeys> FetchDataKeys(const FleetIdentity& identity,
                               std::chrono::seconds timeout = std::chrono::seconds(10));
// POST /v1/data-key/confirm {"version": N}: the sensor's data is now under
// key version N.
Status ConfirmDataKey(const FleetIdentity& identity, std::uint64_t version,
                      std::chrono::seconds timeout = std::chrono::seconds(10));

}  // namespace custos::sensor
