// Test helpers for custos_crypto: a fleet CA in a temporary folder and
// sensors enrolled with it, all made with the real code under test.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include "crypto/authority.h"
#include "crypto/key.h"

namespace custos::crypto::testing {

// Unwraps a Result, turning an error into an exception GoogleTest reports.
template <typename T>
T Must(Result<T> result) {
  if (!result.ok()) throw std::runtime_error(result.error().message);
  return std::move(result.value());
}
inline void Must(Status status) {
  if (!status.ok()) throw std::runtime_error(status.error().message);
}

// A fresh folder under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// InitAuthority in `dir` with server names "fleet.test" and 127.0.0.1.
void InitTestAuthority(const std::filesystem::path& dir, const std::string& name = "Test Fleet");

struct TestSensor {
  KeyPair key;
  IssuedCertificate certificate;
};

// A sensor key, its CSR and the certificate the authority signs for it.
TestSensor EnrollTestSensor(const IssuingAuthority& authority, const std::string& sensor_id,
                            const std::string& tenant = "acme",
                            std::chrono::seconds validity = std::chrono::days(30));

}  // namespace custos::crypto::testing
