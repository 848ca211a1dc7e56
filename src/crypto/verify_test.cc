#include "crypto/verify.h"

#include <gtest/gtest.h>

#include <optional>

#include "common/files.h"
#include "crypto/authority.h"
#include "crypto/key_file.h"
#include "crypto/test_authority.h"

namespace custos::crypto {
namespace {

using std::chrono::hours;
using testing::EnrollTestSensor;
using testing::InitTestAuthority;
using testing::Must;
using testing::TempDir;

class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitTestAuthority(dir_.path());
    authority_.emplace(Must(IssuingAuthority::Load(dir_.path())));
  }

  std::string CurrentCrl(const std::vector<RevokedCertificate>& revoked) {
    auto now = std::chrono::system_clock::now();
    return Must(authority_->SignCrl(revoked, CrlTimes{now, now + hours(24)}));
  }

  static std::string Chain(const testing::TestSensor& sensor) {
    return sensor.certificate.certificate_pem + sensor.certificate.chain_pem;
  }

  TempDir dir_;
  std::optional<IssuingAuthority> authority_;
};

TEST_F(VerifyTest, AcceptsASensorOfThisFleet) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001", "acme");
  PeerIdentity identity =
      Must(VerifySensorChainPem(authority_->root_pem(), Chain(sensor), CurrentCrl({})));
  EXPECT_EQ(identity.sensor_id, "sensor-0001");
  EXPECT_EQ(identity.tenant, "acme");
  EXPECT_EQ(identity.serial_hex, sensor.certificate.serial_hex);
  EXPECT_EQ(identity.not_after, sensor.certificate.not_after);
  // The leaf and the issuing CA are enough; the root comes from the trust store.
  EXPECT_TRUE(VerifySensorChainPem(
                  authority_->root_pem(),
                  sensor.certificate.certificate_pem + CertificateToPem(authority_->certificate()),
                  CurrentCrl({}))
                  .ok());
}

TEST_F(VerifyTest, RefusesALeafWithoutItsIssuingCa) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  auto refused = VerifySensorChainPem(authority_->root_pem(), sensor.certificate.certificate_pem,
                                      CurrentCrl({}));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("local issuer"), std::string::npos)
      << refused.error().message;
}

TEST_F(VerifyTest, RefusesASensorOfAnotherCa) {
  // Same CA names, different keys: only the signatures tell them apart.
  TempDir other_dir;
  InitTestAuthority(other_dir.path());
  IssuingAuthority other = Must(IssuingAuthority::Load(other_dir.path()));
  auto stranger = EnrollTestSensor(other, "sensor-0001");
  auto refused = VerifySensorChainPem(authority_->root_pem(), Chain(stranger), CurrentCrl({}));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("certificate chain refused"), std::string::npos);
}

TEST_F(VerifyTest, RefusesARevokedSensorOnceTheCrlListsIt) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  auto bystander = EnrollTestSensor(*authority_, "sensor-0002");
  ASSERT_TRUE(VerifySensorChainPem(authority_->root_pem(), Chain(sensor), CurrentCrl({})).ok());
  std::string crl = CurrentCrl({{sensor.certificate.serial_hex, std::chrono::system_clock::now()}});
  auto refused = VerifySensorChainPem(authority_->root_pem(), Chain(sensor), crl);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("certificate revoked"), std::string::npos)
      << refused.error().message;
  EXPECT_TRUE(VerifySensorChainPem(authority_->root_pem(), Chain(bystander), crl).ok());
}

TEST_F(VerifyTest, RefusesWithoutACurrentCrlFromTheIssuer) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  auto now = std::chrono::system_clock::now();
  std::string stale = Must(authority_->SignCrl({}, CrlTimes{now - hours(48), now - hours(24)}));
  auto expired = VerifySensorChainPem(authority_->root_pem(), Chain(sensor), stale);
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().message.find("CRL has expired"), std::string::npos)
      << expired.error().message;

  TempDir other_dir;
  InitTestAuthority(other_dir.path());
  IssuingAuthority other = Must(IssuingAuthority::Load(other_dir.path()));
  std::string forged = Must(other.SignCrl({}, CrlTimes{now, now + hours(1)}));
  EXPECT_FALSE(VerifySensorChainPem(authority_->root_pem(), Chain(sensor), forged).ok());
  EXPECT_FALSE(VerifySensorChainPem(authority_->root_pem(), Chain(sensor), "").ok());
}

TEST_F(VerifyTest, RefusesExpiredAndNotYetValidCertificates) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001", "acme", hours(1));
  auto later = std::chrono::system_clock::now() + hours(2);
  std::string crl = Must(authority_->SignCrl({}, CrlTimes{later, later + hours(1)}));
  auto expired = VerifySensorChainPem(authority_->root_pem(), Chain(sensor), crl, later);
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().message.find("certificate has expired"), std::string::npos)
      << expired.error().message;
}

TEST_F(VerifyTest, RefusesTheServerCertificateAsAClient) {
  AuthorityPaths paths(dir_.path());
  std::string chain = Must(ReadFile(paths.server_certificate)) + authority_->chain_pem();
  auto refused = VerifySensorChainPem(authority_->root_pem(), chain, CurrentCrl({}));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("unsuitable certificate purpose"), std::string::npos)
      << refused.error().message;
}

}  // namespace
}  // namespace custos::crypto
