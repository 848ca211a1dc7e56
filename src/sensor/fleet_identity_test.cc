#include "sensor/fleet_identity.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "crypto/key_file.h"
#include "crypto/test_authority.h"
#include "sensor/uplink_test_support.h"

namespace custos::sensor {
namespace {

using crypto::testing::Must;
using crypto::testing::TempDir;

TEST(FleetEndpoint, ParsesHostAndPort) {
  auto named = ParseFleetEndpoint("fleet.example.com:8443");
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_EQ(named->host, "fleet.example.com");
  EXPECT_EQ(named->port, 8443);
  EXPECT_EQ(named->ToString(), "fleet.example.com:8443");
  auto v6 = ParseFleetEndpoint("[2001:db8::1]:8444");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(v6->ToString(), "[2001:db8::1]:8444");
  for (const char* bad : {"fleet", "fleet:", ":8443", "fleet:0", "fleet:65536", "fleet:84x",
                          "::1:8443", "[::1]8443", "[fleet]:8443"}) {
    EXPECT_FALSE(ParseFleetEndpoint(bad).ok()) << bad;
  }
}

class FleetIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::testing::InitTestAuthority(dir_.path() / "ca");
    authority_.emplace(Must(crypto::IssuingAuthority::Load(dir_.path() / "ca")));
    testing::WriteTestIdentity(identity_, *authority_, "sensor-7", {"fleet.test", 8444});
  }
  TempDir dir_;
  std::optional<crypto::IssuingAuthority> authority_;
  std::filesystem::path identity_ = dir_.path() / "identity";
};

TEST_F(FleetIdentityTest, LoadsWhatEnrollmentWrote) {
  EXPECT_TRUE(IsEnrolled(identity_));
  EXPECT_FALSE(IsEnrolled(dir_.path() / "nowhere"));
  auto identity = LoadFleetIdentity(identity_);
  ASSERT_TRUE(identity.ok()) << identity.error().message;
  EXPECT_EQ(identity->sensor_id, "sensor-7");
  EXPECT_EQ(identity->tenant, "acme");
  EXPECT_EQ(identity->channel.ToString(), "fleet.test:8444");
  ASSERT_TRUE(identity->key);
}

TEST_F(FleetIdentityTest, RefusesAKeyThatIsNotTheCertificates) {
  Must(
      crypto::WritePrivateKeyFile(IdentityPaths(identity_).key, Must(crypto::KeyPair::Generate())));
  auto identity = LoadFleetIdentity(identity_);
  ASSERT_FALSE(identity.ok());
  EXPECT_NE(identity.error().message.find("public key"), std::string::npos)
      << identity.error().message;
}

TEST_F(FleetIdentityTest, RefusesACertificateForAnotherSensor) {
  nlohmann::json fleet = {{"sensor_id", "sensor-8"},
                          {"tenant", "acme"},
                          {"api", "fleet.test:8443"},
                          {"channel", "fleet.test:8444"}};
  Must(WriteFileAtomic(IdentityPaths(identity_).fleet, fleet.dump()));
  auto identity = LoadFleetIdentity(identity_);
  ASSERT_FALSE(identity.ok());
  EXPECT_NE(identity.error().message.find("sensor-7"), std::string::npos)
      << identity.error().message;
}

TEST_F(FleetIdentityTest, RefusesARootThatDidNotSignTheCertificate) {
  crypto::testing::InitTestAuthority(dir_.path() / "other", "Other Fleet");
  auto other = Must(crypto::IssuingAuthority::Load(dir_.path() / "other"));
  Must(WriteFileAtomic(IdentityPaths(identity_).root, other.root_pem()));
  auto identity = LoadFleetIdentity(identity_);
  ASSERT_FALSE(identity.ok());
  EXPECT_NE(identity.error().message.find("does not verify"), std::string::npos)
      << identity.error().message;
}

}  // namespace
}  // namespace custos::sensor
