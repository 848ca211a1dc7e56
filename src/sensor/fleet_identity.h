// The sensor's identity with its fleet: the folder `custos sensor enroll`
// fills (default /var/lib/custos/identity, mode 0700) and sensord's uplink
// reads. Layout (docs/fleet-protocol.md):
//   sensor.key  the private key, 0600; it never leaves the sensor
//   sensor.csr  the request that was sent
//   sensor.crt  the certificate the fleet CA signed (CN = sensor id)
//   chain.pem   the issuing CA (and root) as the fleet sent them
//   root.pem    the fleet root, checked against the token's CA hash
//   fleet.json  {"sensor_id", "tenant", "api": "HOST:PORT", "channel": "HOST:PORT"}
//   desired_state.json  the last desired state the sensor applied (fleet_state.h)
// Functions are thread-safe; they touch only their arguments and files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/key.h"
#include "crypto/openssl_util.h"

namespace custos::sensor {

inline constexpr char kDefaultIdentityDir[] = "/var/lib/custos/identity";

struct IdentityPaths {
  explicit IdentityPaths(const std::filesystem::path& dir);
  std::filesystem::path dir, key, csr, certificate, chain, root, fleet, desired_state;
};

// HOST:PORT, with IPv6 addresses in brackets ("[::1]:8444").
struct FleetEndpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string ToString() const;
};
Result<FleetEndpoint> ParseFleetEndpoint(std::string_view text);

struct FleetIdentity {
  std::string sensor_id;
  std::string tenant;
  FleetEndpoint api;
  FleetEndpoint channel;
  std::string certificate_pem;
  std::string chain_pem;
  std::string root_pem;
  std::shared_ptr<const crypto::KeyPair> key;  // always set by LoadFleetIdentity
};

// True once enrollment finished (fleet.json is written last).
bool IsEnrolled(const std::filesystem::path& dir);

// Checks that the parts belong together: the certificate holds the key's
// public half, chains to the root through the chain for client
// authentication, is valid now, and names the sensor id.
Status CheckFleetIdentity(const FleetIdentity& identity);

// Reads every file and runs CheckFleetIdentity.
Result<FleetIdentity> LoadFleetIdentity(const std::filesystem::path& dir);

// Lower-case hex SHA-256 of the certificate's DER encoding: the CA hash of
// an enrollment token.
Result<std::string> CertificateSha256Hex(X509* certificate);

// Makes a folder's entries (renames, new files) durable.
Status SyncDirectory(const std::filesystem::path& dir);

}  // namespace custos::sensor
