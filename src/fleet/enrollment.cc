#include "fleet/enrollment.h"

#include <openssl/rand.h>

#include "common/log.h"
#include "crypto/certificate.h"
#include "crypto/csr.h"
#include "crypto/openssl_util.h"

namespace custos::fleet {
namespace {

constexpr char kTokenRefused[] = "enrollment token is unknown, used or expired";

// "sensor-" and 64 random bits in hex: ids never collide in practice and
// say nothing about the sensor's owner or place.
Result<std::string> NewSensorId() {
  unsigned char random[8];
  if (RAND_bytes(random, sizeof random) != 1) return Error{"RAND_bytes failed"};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "sensor-";
  for (unsigned char byte : random) {
    id += kHex[byte >> 4];
    id += kHex[byte & 0xF];
  }
  return id;
}

}  // namespace

Result<std::string> CertificateSha256(X509* certificate) {
  return crypto::CertificateSha256Hex(certificate);
}

Result<std::string> CertificateSha256(std::string_view pem) {
  auto certificate = crypto::ParseCertificatePem(pem);
  if (!certificate.ok()) return certificate.error();
  return CertificateSha256(certificate->get());
}

std::optional<std::pair<std::string, std::string>> SplitEnrollmentToken(std::string_view token) {
  std::size_t dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == token.size() ||
      token.find('.', dot + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return std::make_pair(std::string(token.substr(0, dot)), std::string(token.substr(dot + 1)));
}

Result<Enroller> Enroller::Create(FleetStore& store, const crypto::IssuingAuthority& authority,
                                  const DataKeyService& keys,
                                  std::chrono::seconds certificate_validity) {
  auto root_hash = CertificateSha256(authority.root());
  if (!root_hash.ok()) return root_hash.error();
  return Enroller(store, authority, keys, certificate_validity, std::move(*root_hash));
}

ApiResult<EnrolledSensor> Enroller::Enroll(const EnrollRequest& request) const {
  auto parts = SplitEnrollmentToken(request.token);
  if (!parts) return Unauthorized("enrollment token is malformed; expected <secret>.<ca-hash>");
  const auto& [secret, ca_hash] = *parts;
  if (ca_hash != root_hash_) {
    return Unauthorized("enrollment token was made by another fleet (its CA hash differs)");
  }
  auto csr = crypto::Csr::Parse(request.csr_pem);
  if (!csr.ok()) return BadRequest("invalid-csr", "field \"csr\": " + csr.error().message);

  auto tenant = store_->EnrollmentTokenTenant(secret);
  if (!tenant.ok()) return Internal("cannot check the token: " + tenant.error().message);
  if (!tenant->has_value()) return Unauthorized(kTokenRefused);

  auto sensor_id = NewSensorId();
  if (!sensor_id.ok()) return Internal(sensor_id.error().message);
  auto issued =
      authority_->SignSensorCsr(*csr, crypto::SensorSubject{*sensor_id, **tenant}, validity_);
  if (!issued.ok()) return Internal("cannot sign the certificate: " + issued.error().message);
  auto fingerprint = CertificateSha256(issued->certificate_pem);
  if (!fingerprint.ok()) return Internal(fingerprint.error().message);
  auto wrapped_key = keys_->NewWrappedKey(*sensor_id);
  if (!wrapped_key.ok()) return Internal(wrapped_key.error().message);

  NewSensor sensor{*sensor_id, issued->serial_hex, *fingerprint};
  sensor.name = request.name;
  sensor.wrapped_data_key = std::move(*wrapped_key);
  auto record = store_->EnrollSensor(secret, sensor);
  if (!record.ok()) {
    // The token may have been used or expired since the check above.
    auto still = store_->EnrollmentTokenTenant(secret);
    if (still.ok() && !still->has_value()) return Unauthorized(kTokenRefused);
    return Internal("cannot record the sensor: " + record.error().message);
  }
  spdlog::info("enrolled sensor {} (tenant {}, name \"{}\", certificate serial {})", *sensor_id,
               record->tenant, request.name, issued->serial_hex);
  return EnrolledSensor{*sensor_id, record->tenant, issued->certificate_pem, issued->chain_pem,
                        authority_->root_pem()};
}

}  // namespace custos::fleet
