// Enrollment of this sensor with a fleet (`custos sensor enroll`), exactly
// as docs/fleet-protocol.md describes it: the key pair is made here and
// never leaves the sensor; the fleet is trusted only once the root
// certificate it sends hashes to the token's CA hash, and the token is sent
// only after the server certificate verified against that root. The files
// land in the identity folder (fleet_identity.h), each written atomically,
// fleet.json last. Thread-safe (no shared state); blocks the caller.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"
#include "sensor/fleet_identity.h"

namespace custos::sensor {

// `<secret>.<ca-hash>`: the secret goes to the fleet; the hash (hex SHA-256
// of the root certificate's DER) stays here to check the fleet by.
struct EnrollmentToken {
  std::string text;  // the whole token, as sent
  std::string ca_hash;
};
Result<EnrollmentToken> ParseEnrollmentToken(std::string_view token);

struct EnrollOptions {
  std::string fleet;  // HOST:PORT of the fleet's API port
  std::string token;
  std::filesystem::path identity_dir = kDefaultIdentityDir;
  std::string name;  // for the fleet's registry; empty: this host's name
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // per network step
};

struct EnrollResult {
  std::string sensor_id;
  std::string tenant;
  FleetEndpoint channel;
};

// Refuses a folder that already holds an enrollment (fleet.json). A key
// left by an attempt that failed is used again.
Result<EnrollResult> Enroll(const EnrollOptions& options);

}  // namespace custos::sensor
