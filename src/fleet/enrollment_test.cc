// POST /v1/enroll against a running fleetd over real TLS.
#include "fleet/enrollment.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/files.h"
#include "crypto/certificate.h"
#include "crypto/csr.h"
#include "crypto/openssl_util.h"
#include "crypto/verify.h"
#include "fleet/fleet_test_support.h"

namespace custos::fleet {
namespace {

using nlohmann::json;
using testing::EnrollBody;
using testing::Must;
using testing::Reply;
using testing::TestFleet;

std::size_t SensorCount(TestFleet& fleet) { return Must(fleet.store().ListSensors("")).size(); }

void ExpectProblem(const Reply& reply, int status) {
  EXPECT_EQ(reply.status, status) << reply.text;
  EXPECT_EQ(reply.content_type, "application/problem+json");
  EXPECT_EQ(reply.body.value("status", 0), status) << reply.text;
  EXPECT_FALSE(reply.body.value("detail", "").empty()) << reply.text;
  EXPECT_EQ(reply.body.value("type", "").rfind("urn:custos:problem:", 0), 0u) << reply.text;
}

TEST(EnrollmentTest, SignsTheCsrAndRecordsTheSensorWithItsDataKey) {
  TestFleet fleet;
  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  std::string token = fleet.CreateToken("acme");
  Reply reply = fleet.Call("POST", "/v1/enroll", EnrollBody(token, key, "lab-1"), "");
  ASSERT_EQ(reply.status, 200) << reply.text;
  std::string id = reply.body["sensor_id"];
  EXPECT_EQ(reply.body["tenant"], "acme");
  EXPECT_EQ(reply.body["root"], fleet.root_pem());
  EXPECT_EQ(reply.body["channel"], "127.0.0.1:" + std::to_string(fleet.channel_port()));

  // The certificate chains to the fleet root, names the sensor and tenant,
  // and carries the sensor's own key.
  std::string crl = Must(ReadFile(fleet.dir() / "fleet" / "crl.pem"));
  auto identity = Must(crypto::VerifySensorChainPem(
      fleet.root_pem(),
      reply.body["certificate"].get<std::string>() + reply.body["chain"].get<std::string>(), crl));
  EXPECT_EQ(identity.sensor_id, id);
  EXPECT_EQ(identity.tenant, "acme");
  auto certificate =
      Must(crypto::ParseCertificatePem(reply.body["certificate"].get<std::string>()));
  EXPECT_TRUE(key.SamePublicKey(X509_get0_pubkey(certificate.get())));

  // The token's hash part is this fleet's root.
  auto parts = SplitEnrollmentToken(token);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->second, Must(CertificateSha256(fleet.root_pem())));

  auto sensor = Must(fleet.store().GetSensor(id));
  ASSERT_TRUE(sensor.has_value());
  EXPECT_EQ(sensor->name, "lab-1");
  EXPECT_EQ(sensor->certificate_serial, identity.serial_hex);
  EXPECT_EQ(sensor->fingerprint, Must(CertificateSha256(certificate.get())));
  auto data_key = Must(fleet.server().core().keys->KeyFor(id));
  EXPECT_EQ(data_key.size(), 32u);
}

TEST(EnrollmentTest, AUsedTokenIsRefused) {
  TestFleet fleet;
  std::string token = fleet.CreateToken();
  crypto::KeyPair first = Must(crypto::KeyPair::Generate());
  ASSERT_EQ(fleet.Call("POST", "/v1/enroll", EnrollBody(token, first), "").status, 200);
  crypto::KeyPair second = Must(crypto::KeyPair::Generate());
  Reply again = fleet.Call("POST", "/v1/enroll", EnrollBody(token, second), "");
  ExpectProblem(again, 401);
  EXPECT_EQ(SensorCount(fleet), 1u);
}

TEST(EnrollmentTest, AnExpiredTokenIsRefused) {
  TestFleet fleet;
  auto root_hash = Must(CertificateSha256(fleet.root_pem()));
  Must(fleet.store().AddEnrollmentToken(
      "expired-secret", "acme", std::chrono::system_clock::now() - std::chrono::seconds(1)));
  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  Reply reply =
      fleet.Call("POST", "/v1/enroll", EnrollBody("expired-secret." + root_hash, key), "");
  ExpectProblem(reply, 401);
  EXPECT_EQ(SensorCount(fleet), 0u);
}

TEST(EnrollmentTest, UnknownMalformedAndForeignTokensAreRefused) {
  TestFleet fleet;
  std::string token = fleet.CreateToken();
  auto parts = *SplitEnrollmentToken(token);
  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  for (const std::string& bad :
       {std::string("made-up-secret.") + parts.second, parts.first, parts.first + ".",
        parts.first + "." + std::string(64, '0'), std::string("a.b.c")}) {
    ExpectProblem(fleet.Call("POST", "/v1/enroll", EnrollBody(bad, key), ""), 401);
  }
  EXPECT_EQ(SensorCount(fleet), 0u);
  // The real token was not spent by those attempts.
  EXPECT_EQ(fleet.Call("POST", "/v1/enroll", EnrollBody(token, key), "").status, 200);
}

TEST(EnrollmentTest, AGarbageCsrIs400AndStoresNothing) {
  TestFleet fleet;
  std::string token = fleet.CreateToken();
  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  std::string valid = Must(crypto::Csr::Create(key, "x")).Pem();
  std::string tampered = valid;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  for (const std::string& csr : {std::string("garbage"),
                                 std::string("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                             "-----END CERTIFICATE REQUEST-----\n"),
                                 tampered, fleet.root_pem()}) {
    Reply reply = fleet.Call("POST", "/v1/enroll", json{{"token", token}, {"csr", csr}}.dump(), "");
    ExpectProblem(reply, 400);
    EXPECT_NE(reply.body.value("detail", "").find("csr"), std::string::npos) << reply.text;
  }
  EXPECT_EQ(SensorCount(fleet), 0u);
  // The token is still unused: a CSR error does not spend it.
  auto tokens = Must(fleet.store().ListEnrollmentTokens());
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_FALSE(tokens[0].used_at.has_value());
}

TEST(EnrollmentTest, MalformedRequestsAre4xxProblems) {
  TestFleet fleet;
  std::string token = fleet.CreateToken();
  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  std::string csr = Must(crypto::Csr::Create(key, "x")).Pem();
  ExpectProblem(fleet.Call("POST", "/v1/enroll", "{not json", ""), 400);
  ExpectProblem(fleet.Call("POST", "/v1/enroll", "[]", ""), 400);
  ExpectProblem(fleet.Call("POST", "/v1/enroll", json{{"csr", csr}}.dump(), ""), 400);
  ExpectProblem(fleet.Call("POST", "/v1/enroll",
                           json{{"token", token}, {"csr", csr}, {"extra", 1}}.dump(), ""),
                400);
  ExpectProblem(fleet.Call("POST", "/v1/enroll", json{{"token", 5}, {"csr", csr}}.dump(), ""), 400);
  ExpectProblem(fleet.Call("POST", "/v1/enroll", EnrollBody(token, key), "", "text/plain"), 415);
  ExpectProblem(fleet.Call("GET", "/v1/enroll", "", ""), 405);
  EXPECT_EQ(SensorCount(fleet), 0u);
  EXPECT_EQ(fleet.Call("POST", "/v1/enroll", EnrollBody(token, key), "").status, 200);
}

TEST(EnrollmentTest, ConcurrentEnrollmentsWithOneTokenHaveOneWinner) {
  TestFleet fleet;
  std::string token = fleet.CreateToken();
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0}, refused{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      crypto::KeyPair key = Must(crypto::KeyPair::Generate());
      HttpsClientOptions options{HostPort{"127.0.0.1", fleet.api_port()}, fleet.root_pem(), ""};
      auto reply = HttpsCall(options, "POST", "/v1/enroll", EnrollBody(token, key));
      if (reply.ok() && reply->status == 200) ++accepted;
      if (reply.ok() && reply->status == 401) ++refused;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(refused.load(), 5);
  EXPECT_EQ(SensorCount(fleet), 1u);
}

}  // namespace
}  // namespace custos::fleet
