// The CRL a running TLS server checks client certificates against. The
// fleet calls Update with each newly signed CRL; handshakes that start
// afterwards see it, without rebuilding or restarting the TLS context, and
// IsRevoked lets the fleet find live connections to drop. Thread-safe: one
// mutex guards a shared_ptr to an immutable Crl, so a handshake holds its
// snapshot without blocking updates.
#pragma once

#include <memory>
#include <mutex>
#include <string_view>

#include "common/result.h"
#include "crypto/crl.h"
#include "crypto/openssl_util.h"

namespace custos::crypto {

class RevocationList {
 public:
  // `issuer_pem` is the issuing CA certificate whose CRLs are accepted.
  static Result<std::shared_ptr<RevocationList>> Create(
      std::string_view issuer_pem, std::string_view crl_pem,
      TimePoint now = std::chrono::system_clock::now());

  // Replaces the CRL if `crl_pem` is a current CRL of the issuer whose CRL
  // number is not lower than the one in use; otherwise keeps the old one.
  Status Update(std::string_view crl_pem, TimePoint now = std::chrono::system_clock::now());

  std::shared_ptr<const Crl> Current() const;
  bool IsRevoked(std::string_view serial_hex) const;

 private:
  RevocationList(X509Ptr issuer, std::shared_ptr<const Crl> crl)
      : issuer_(std::move(issuer)), crl_(std::move(crl)) {}

  const X509Ptr issuer_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Crl> crl_;
};

}  // namespace custos::crypto
