// Verifies a sensor's certificate chain against the fleet root with the
// issuing CA's CRL, and reads who the sensor is (CN = sensor id, O = tenant).
// The fleet uses it for peers it did not meet through TLS (the VPN's
// tls-verify hook, re-checking live connections after a revocation); the TLS
// server context runs the same check in its handshake. Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "crypto/openssl_util.h"

namespace custos::crypto {

struct PeerIdentity {
  std::string sensor_id;
  std::string tenant;
  std::string serial_hex;
  TimePoint not_after;
};

// Reads the identity fields of a sensor certificate; does not verify it.
Result<PeerIdentity> SensorIdentityOf(X509* certificate);

// `chain` is the peer's certificate first, then its intermediates (the
// issuing CA). Requires a path to `root`, the clientAuth purpose, validity at
// `now`, and that `crl` (signed by the leaf's issuer, current at `now`) does
// not list the leaf.
Result<PeerIdentity> VerifySensorChain(X509* root, const std::vector<X509*>& chain, X509_CRL* crl,
                                       TimePoint now = std::chrono::system_clock::now());
Result<PeerIdentity> VerifySensorChainPem(std::string_view root_pem, std::string_view chain_pem,
                                          std::string_view crl_pem,
                                          TimePoint now = std::chrono::system_clock::now());

// The core of both: runs X509_verify_cert on an initialised `context` with
// `crls` consulted and X509_V_FLAG_CRL_CHECK set. Returns X509_verify_cert's
// result; the reason stays in `context`.
int VerifyWithCrls(X509_STORE_CTX* context, STACK_OF(X509_CRL) * crls);

// "certificate revoked (depth 0, CN=...)" for a failed `context`.
std::string VerifyFailureReason(X509_STORE_CTX* context);

}  // namespace custos::crypto
