// Enrollment (docs/fleet-protocol.md, "Enrollment"): a sensor sends a
// one-time token and a CSR; the fleet signs the CSR's key into a sensor
// certificate (CN = a new sensor id, O = the token's tenant), makes the
// sensor's data key, and records the sensor while consuming the token in one
// store transaction. A certificate signed for a token that loses a race is
// never handed out, so nothing usable leaks from a refused enrollment.
// Thread-safe: the authority is immutable and the store thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "crypto/authority.h"
#include "fleet/api_requests.h"
#include "fleet/data_keys.h"
#include "fleet/fleet_store.h"
#include "fleet/problem.h"

namespace custos::fleet {

struct EnrolledSensor {
  std::string sensor_id;
  std::string tenant;
  std::string certificate_pem;
  std::string chain_pem;  // issuing CA then root
  std::string root_pem;
};

// Hex SHA-256 of a certificate's DER encoding: the token's <ca-hash> for the
// root, the registry's fingerprint for a sensor certificate.
Result<std::string> CertificateSha256(X509* certificate);
Result<std::string> CertificateSha256(std::string_view pem);

// "<secret>.<ca-hash>" -> {secret, ca-hash}; nullopt if malformed.
std::optional<std::pair<std::string, std::string>> SplitEnrollmentToken(std::string_view token);

class Enroller {
 public:
  // Fails if the authority's root cannot be hashed.
  static Result<Enroller> Create(FleetStore& store, const crypto::IssuingAuthority& authority,
                                 const DataKeyService& keys,
                                 std::chrono::seconds certificate_validity);

  // 400 for a bad CSR, 401 for a token that is malformed, of another fleet,
  // unknown, used or expired; 500 when the fleet itself fails.
  ApiResult<EnrolledSensor> Enroll(const EnrollRequest& request) const;

  // The <ca-hash> part of this fleet's tokens.
  const std::string& root_hash() const { return root_hash_; }

 private:
  Enroller(FleetStore& store, const crypto::IssuingAuthority& authority, const DataKeyService& keys,
           std::chrono::seconds validity, std::string root_hash)
      : store_(&store),
        authority_(&authority),
        keys_(&keys),
        validity_(validity),
        root_hash_(std::move(root_hash)) {}

  FleetStore* store_;
  const crypto::IssuingAuthority* authority_;
  const DataKeyService* keys_;
  std::chrono::seconds validity_;
  std::string root_hash_;
};

}  // namespace custos::fleet
