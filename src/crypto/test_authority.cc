#include "crypto/test_authority.h"

#include <cstdlib>

namespace custos::crypto::testing {

TempDir::TempDir() {
  char pattern[] = "/tmp/custos-crypto-XXXXXX";
  if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void InitTestAuthority(const std::filesystem::path& dir, const std::string& name) {
  AuthorityOptions options;
  options.name = name;
  options.server_dns_names = {"fleet.test"};
  options.server_ip_addresses = {"127.0.0.1"};
  Must(InitAuthority(dir, options));
}

TestSensor EnrollTestSensor(const IssuingAuthority& authority, const std::string& sensor_id,
                            const std::string& tenant, std::chrono::seconds validity) {
  KeyPair key = Must(KeyPair::Generate());
  Csr request = Must(Csr::Parse(Must(Csr::Create(key, sensor_id)).Pem()));
  IssuedCertificate certificate =
      Must(authority.SignSensorCsr(request, SensorSubject{sensor_id, tenant}, validity));
  return TestSensor{std::move(key), std::move(certificate)};
}

}  // namespace custos::crypto::testing
