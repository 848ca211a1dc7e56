// The fleet's certificate authority. A root CA (self-signed, pathlen 1)
// signs one issuing CA (pathlen 0); the issuing CA signs the fleet server's
// certificate, sensor certificates and CRLs. Day-to-day work needs only the
// issuing key, so the root key can be moved offline after InitAuthority.
//
// On-disk layout under the authority folder (keys 0600 in 0700 folders):
//   root/root.key  root/root.crt          (root.key may be absent)
//   issuing/issuing.key  issuing/issuing.crt
//   server/server.key  server/server.crt  (leaf only; chain.pem completes it)
//   chain.pem   issuing CA then root, PEM
//   crl.pem     the current CRL, signed by the issuing CA
// IssuingAuthority is immutable after Load: its const methods may be called
// from several threads at once.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"
#include "crypto/certificate.h"
#include "crypto/crl.h"
#include "crypto/csr.h"
#include "crypto/key.h"
#include "crypto/openssl_util.h"

namespace custos::crypto {

struct AuthorityOptions {
  // Prefix of the CA common names ("<name> Root CA", "<name> Issuing CA").
  // Giving each fleet its own name keeps CA names from colliding.
  std::string name = "Custos Fleet";
  // subjectAltNames of the fleet server certificate; at least one is needed.
  std::vector<std::string> server_dns_names;
  std::vector<std::string> server_ip_addresses;
  KeyAlgorithm algorithm = KeyAlgorithm::kEcdsaP256;
  std::chrono::seconds root_validity = std::chrono::days(20 * 365);
  std::chrono::seconds issuing_validity = std::chrono::days(10 * 365);
  std::chrono::seconds server_validity = std::chrono::days(2 * 365);
  std::chrono::seconds crl_validity = std::chrono::days(7);
  TimePoint now = std::chrono::system_clock::now();
};

struct AuthorityPaths {
  explicit AuthorityPaths(const std::filesystem::path& dir);
  std::filesystem::path root_key, root_certificate;
  std::filesystem::path issuing_key, issuing_certificate;
  std::filesystem::path server_key, server_certificate;
  std::filesystem::path chain, crl;
};

// Creates the whole layout above in `dir` (created if missing). Refuses a
// folder that already holds an authority rather than replacing its keys.
Status InitAuthority(const std::filesystem::path& dir, const AuthorityOptions& options);

// Who a sensor certificate names; both become part of its subject.
struct SensorSubject {
  std::string sensor_id;  // CN
  std::string tenant;     // O
};

struct IssuedCertificate {
  std::string certificate_pem;  // the new certificate only
  std::string chain_pem;        // issuing CA then root
  std::string serial_hex;
  TimePoint not_before;
  TimePoint not_after;
};

class IssuingAuthority {
 public:
  // Reads the issuing key and certificate and the root certificate (never
  // the root key); checks the issuing certificate chains to the root, is
  // valid at `now` and matches its key.
  static Result<IssuingAuthority> Load(const std::filesystem::path& dir,
                                       TimePoint now = std::chrono::system_clock::now());

  // Signs the CSR's public key into a clientAuth certificate whose subject is
  // `subject` (nothing is copied from the CSR but its key). Sensor ids and
  // tenants are 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. The
  // certificate starts 5 minutes before `now` to absorb clock skew and must
  // not outlive the issuing CA.
  Result<IssuedCertificate> SignSensorCsr(const Csr& csr, const SensorSubject& subject,
                                          std::chrono::seconds validity,
                                          TimePoint now = std::chrono::system_clock::now()) const;

  // A serverAuth certificate for the fleet (renewal uses the same path as init).
  Result<IssuedCertificate> IssueServerCertificate(
      EVP_PKEY* public_key, const std::vector<std::string>& dns_names,
      const std::vector<std::string>& ip_addresses, std::chrono::seconds validity,
      TimePoint now = std::chrono::system_clock::now()) const;

  Result<std::string> SignCrl(const std::vector<RevokedCertificate>& revoked,
                              const CrlTimes& times) const;
  // Parses `pem` as a CRL of this authority, current at `now`.
  Result<Crl> ParseCrl(std::string_view pem,
                       TimePoint now = std::chrono::system_clock::now()) const;

  X509* certificate() const { return certificate_.get(); }
  X509* root() const { return root_.get(); }
  const std::string& root_pem() const { return root_pem_; }
  // Issuing CA then root.
  const std::string& chain_pem() const { return chain_pem_; }

 private:
  IssuingAuthority(KeyPair key, X509Ptr certificate, X509Ptr root);
  Result<IssuedCertificate> Issue(CertificateProfile profile, std::chrono::seconds validity,
                                  TimePoint now) const;

  KeyPair key_;
  X509Ptr certificate_;
  X509Ptr root_;
  std::string root_pem_;
  std::string chain_pem_;
};

}  // namespace custos::crypto
