// Certificate revocation lists signed by the fleet's issuing CA: building
// one from the registry's revoked serials, and parsing one back with its
// signature, issuer and freshness checked. A Crl is immutable and may be
// shared between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "crypto/openssl_util.h"

namespace custos::crypto {

struct RevokedCertificate {
  std::string serial_hex;  // as SerialHex prints it; other hex forms are normalized
  TimePoint revoked_at;
};

struct CrlTimes {
  TimePoint this_update;
  // Verifiers refuse every certificate once this passes without a newer
  // CRL, so the fleet must re-sign well before it.
  TimePoint next_update;
  // Must grow with each CRL; 0 takes this_update in milliseconds since the epoch.
  std::uint64_t number = 0;
};

// A v2 CRL (with CRL number and authority key identifier) naming `revoked`,
// signed by `issuer_key` in the name of `issuer`. Duplicate serials are merged.
Result<std::string> BuildCrlPem(X509* issuer, EVP_PKEY* issuer_key,
                                const std::vector<RevokedCertificate>& revoked,
                                const CrlTimes& times);

class Crl {
 public:
  // One PEM "X509 CRL" issued and signed by `issuer`, current at `now`
  // (thisUpdate not in the future beyond a few minutes' clock skew,
  // nextUpdate present and still ahead).
  static Result<Crl> Parse(std::string_view pem, X509* issuer,
                           TimePoint now = std::chrono::system_clock::now());

  X509_CRL* get() const { return crl_.get(); }
  TimePoint this_update() const { return this_update_; }
  TimePoint next_update() const { return next_update_; }
  std::uint64_t number() const { return number_; }
  const std::vector<RevokedCertificate>& revoked() const { return revoked_; }
  bool IsRevoked(std::string_view serial_hex) const;
  std::string Pem() const;

 private:
  Crl() = default;
  X509CrlPtr crl_;
  TimePoint this_update_;
  TimePoint next_update_;
  std::uint64_t number_ = 0;
  std::vector<RevokedCertificate> revoked_;
};

}  // namespace custos::crypto
