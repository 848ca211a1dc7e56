// Builds and signs X.509 v3 certificates from an explicit profile: every
// name and extension comes from the profile, never from a request, so a CSR
// cannot smuggle CA:TRUE or extra names into what the CA signs. Used by the
// authority for the root, issuing, server and sensor certificates.
// Thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "crypto/openssl_util.h"

namespace custos::crypto {

struct CertificateProfile {
  // Subject attributes in order, e.g. {NID_organizationName, "acme"}.
  std::vector<std::pair<int, std::string>> subject;
  EVP_PKEY* public_key = nullptr;  // not owned
  TimePoint not_before;
  TimePoint not_after;
  bool is_ca = false;
  int path_length = -1;  // CAs only: how many CAs may follow; -1 leaves it unbounded
  bool server_auth = false;
  bool client_auth = false;
  std::vector<std::string> dns_names;     // subjectAltName dNSName
  std::vector<std::string> ip_addresses;  // subjectAltName iPAddress, IPv4 or IPv6 text
};

// Signs with `issuer_key` under `issuer`'s name; a null `issuer` means the
// certificate is self-signed (a root). The serial is 128 random bits.
Result<X509Ptr> IssueCertificate(const CertificateProfile& profile, X509* issuer,
                                 EVP_PKEY* issuer_key);

// 128 random bits from RAND_bytes, never zero.
Result<Asn1IntegerPtr> RandomSerial();

// Lower-case hex SHA-256 of the certificate's DER encoding (a fingerprint,
// and the CA hash in an enrollment token).
Result<std::string> CertificateSha256Hex(X509* certificate);

// Hostname syntax check for subjectAltName dNSName (letters, digits, '-',
// '.', at most 253 characters; a leading "*." wildcard label is allowed).
bool IsValidDnsName(std::string_view name);

}  // namespace custos::crypto
