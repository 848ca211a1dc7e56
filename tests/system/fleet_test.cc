// The fleet link end to end: a real custos-fleetd in its own host, a real
// sensord behind a masquerading router (NatNetwork), enrollment with the
// `custos` CLI, events streamed by an instrument and counted one by one at
// the fleet across crashes and a cut cable, revocation, and bad requests.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/files.h"
#include "common/process.h"
#include "tests/system/fleet_harness.h"
#include "tests/system/fleet_setup.h"
#include "tests/system/nat_network.h"

namespace custos::testing {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// bustool publishing `count` numbered events on topic `count`, `rate` a second.
std::string Streamer(long count, long rate) {
  return "  - name: streamer\n    manifest: " + ManifestOf("bustool") +
         "\n    bus: {publish: [count]}\n    args: ['stream:count:" + std::to_string(count) + ":" +
         std::to_string(rate) + "', listen]\n";
}

nlohmann::json Uplink(const SensorUnderTest& sensor) {
  return sensor.Status().value("uplink", nlohmann::json::object());
}

// The `n` of every stored `count` event: each must appear once.
std::multiset<long> StoredNumbers(const FleetUnderTest& fleet, const std::string& sensor_id) {
  std::multiset<long> numbers;
  for (const auto& stored : fleet.Events(sensor_id, "count")) {
    nlohmann::json event = stored["event"];
    if (event.is_string()) event = nlohmann::json::parse(event.get<std::string>(), nullptr, false);
    if (event.contains("event")) event = event["event"];
    if (event.is_string()) event = nlohmann::json::parse(event.get<std::string>(), nullptr, false);
    if (event.is_object() && event.contains("n")) numbers.insert(event["n"].get<long>());
  }
  return numbers;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

TEST(Fleet, SensorBehindNatEnrollsAndEveryEventArrivesOnceAcrossCrashesAndACut) {
  constexpr long kEvents = 3000;
  FleetSetup setup("fnat", Streamer(kEvents, 300));
  auto& sensor = setup.sensor;
  auto& fleet = setup.fleet;
  std::string id = EnrollSensor(sensor, fleet, fleet.CreateToken("acme"));
  ASSERT_FALSE(id.empty());
  sensor.Start();
  ASSERT_TRUE(
      WaitFor([&] { return Uplink(sensor).value("connected", false); }, std::chrono::seconds(20)))
      << Uplink(sensor).dump() << fleet.Log();
  // The fleet sees the sensor only under the router's address: it dialled out.
  EXPECT_NE(fleet.Log().find(NatNetwork::kRouterOutside), std::string::npos) << fleet.Log();

  // Mid-stream: fleetd dies and comes back.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  fleet.Kill();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  fleet.Start();
  // Then the cable is cut while batches are in flight, and mended.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  setup.network.Cut();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  setup.network.Restore();
  // sensord dies while events wait in its spool: cut first so some are unsent.
  sensor.WaitForLog("streamer", R"("action":"stream:count)", std::chrono::seconds(60));
  setup.network.Cut();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  sensor.Kill();
  setup.network.Restore();
  // The streamer must not stream again after the restart: its job is done.
  sensor.RewriteConfig("");
  sensor.Start();

  std::multiset<long> numbers;
  WaitFor(
      [&] {
        numbers = StoredNumbers(fleet, id);
        return numbers.size() >= static_cast<std::size_t>(kEvents);
      },
      std::chrono::seconds(60));
  // Every event the instrument published is stored, exactly once.
  EXPECT_EQ(numbers.size(), static_cast<std::size_t>(kEvents)) << Uplink(sensor).dump();
  for (long n = 0; n < kEvents; ++n) {
    if (numbers.count(n) != 1) {
      ADD_FAILURE() << "event " << n << " stored " << numbers.count(n) << " times";
      break;
    }
  }
  EXPECT_EQ(Uplink(sensor)["spool"].value("dropped_full", 1), 0) << Uplink(sensor).dump();
  sensor.Stop();
}

TEST(Fleet, UsedAndExpiredTokensAndForeignCertificatesAreRefused) {
  FleetSetup setup("ftok", "");
  auto& sensor = setup.sensor;
  auto& fleet = setup.fleet;
  std::string token = fleet.CreateToken("acme");
  std::string id = EnrollSensor(sensor, fleet, token);
  ASSERT_FALSE(id.empty());

  auto enroll = [&](const std::string& with, const std::string& folder) {
    return RunCommand({"nsenter", "--net=" + sensor.host().path(), "--", CUSTOS_CLI, "sensor",
                       "enroll", "--fleet", fleet.ApiAddress(), "--token", with, "--identity",
                       sensor.root() + "/" + folder});
  };
  // No token at all: a clear refusal.
  auto none = RunCommand({CUSTOS_CLI, "sensor", "enroll", "--fleet", fleet.ApiAddress(),
                          "--identity", sensor.root() + "/none"});
  ASSERT_TRUE(none.ok());
  EXPECT_NE(none->exit_code, 0);
  EXPECT_NE(none->output.find("--token-file"), std::string::npos) << none->output;
  EXPECT_FALSE(fs::exists(sensor.root() + "/none/sensor.key"));

  // A used token.
  auto again = enroll(token, "second");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->exit_code, 0) << again->output;
  EXPECT_FALSE(fs::exists(sensor.root() + "/second/sensor.crt"));

  // An expired token: its expiry is moved into the past in the fleet's database,
  // as time would.
  std::string stale = fleet.CreateToken("acme");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((fleet.dir() + "/fleet.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db, "UPDATE enrollment_tokens SET expires_at = 1 WHERE used_at IS NULL",
                         nullptr, nullptr, &error),
            SQLITE_OK)
      << (error ? error : "");
  sqlite3_close(db);
  auto expired = enroll(stale, "third");
  ASSERT_TRUE(expired.ok());
  EXPECT_NE(expired->exit_code, 0) << expired->output;
  EXPECT_FALSE(fs::exists(sensor.root() + "/third/sensor.crt"));

  // A client certificate from another CA cannot open the channel; this
  // sensor's own certificate can (the same request gets an HTTP answer).
  std::string foreign = sensor.root() + "/foreign";
  fs::create_directories(foreign);
  ASSERT_TRUE(RunChecked({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + id, "-days", "1",
                          "-keyout", foreign + "/key.pem", "-out", foreign + "/crt.pem"})
                  .ok());
  auto channel = [&](const std::string& cert, const std::string& key) {
    return RunCommand({"nsenter", "--net=" + sensor.host().path(), "--", "curl", "-s", "-o",
                       "/dev/null", "-w", "%{http_code}", "--cacert",
                       sensor.root() + "/identity/root.pem", "--cert", cert, "--key", key,
                       "https://" + std::string(NatNetwork::kFleetAddress) + ":8444/v1/channel"});
  };
  auto refused = channel(foreign + "/crt.pem", foreign + "/key.pem");
  ASSERT_TRUE(refused.ok());
  EXPECT_NE(refused->exit_code, 0) << "a foreign certificate got an answer: " << refused->output;
  // The sensor presents its certificate with the issuing CA's, as the uplink does.
  std::string with_chain = sensor.root() + "/with-chain.pem";
  {
    std::ofstream out(with_chain);
    out << ReadFile(sensor.root() + "/identity/sensor.crt").value()
        << ReadFile(sensor.root() + "/identity/chain.pem").value();
  }
  auto accepted = channel(with_chain, sensor.root() + "/identity/sensor.key");
  ASSERT_TRUE(accepted.ok());
  EXPECT_EQ(accepted->exit_code, 0) << accepted->output;
  EXPECT_NE(accepted->output, "000") << accepted->output;
}

TEST(Fleet, RevocationDropsTheLiveSensorWithinTwoSecondsAndRefusesItAfter) {
  FleetSetup setup("frev", Streamer(100000, 20));
  auto& sensor = setup.sensor;
  auto& fleet = setup.fleet;
  std::string id = EnrollSensor(sensor, fleet, fleet.CreateToken("acme"));
  sensor.Start();
  ASSERT_TRUE(
      WaitFor([&] { return Uplink(sensor).value("connected", false); }, std::chrono::seconds(20)))
      << Uplink(sensor).dump();
  auto revoked_at = Clock::now();
  fleet.Cli({"sensor", "revoke", id});
  bool dropped =
      WaitFor([&] { return !Uplink(sensor).value("connected", true); }, std::chrono::seconds(10));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - revoked_at);
  ASSERT_TRUE(dropped) << Uplink(sensor).dump();
  EXPECT_LE(took.count(), 2000) << "the revoked sensor stayed connected for " << took.count()
                                << " ms";
  // It keeps trying and is refused every time.
  auto connects = Uplink(sensor).value("connects", 0);
  std::this_thread::sleep_for(std::chrono::seconds(5));
  auto later = Uplink(sensor);
  EXPECT_EQ(later.value("connects", 0), connects) << later.dump();
  EXPECT_GT(later.value("connect_attempts", 0), 0) << later.dump();
  EXPECT_FALSE(later.value("connected", true)) << later.dump();
  auto shown = nlohmann::json::parse(fleet.Cli({"fleet", "sensors", id, "--json"}), nullptr, false);
  EXPECT_TRUE(shown.dump().find("revoked") != std::string::npos) << shown.dump();
  sensor.Stop();
}

TEST(Fleet, BadApiRequestsGetAProblemAndChangeNothing) {
  FleetSetup setup("fapi", "");
  auto& fleet = setup.fleet;
  std::string admin = fleet.AdminToken();
  std::string id = EnrollSensor(setup.sensor, fleet, fleet.CreateToken("acme"));
  std::string unused = fleet.CreateToken("acme");
  auto before_tokens = fleet.Api("GET", "/v1/tokens", "", admin);
  auto before_sensor = fleet.Api("GET", "/v1/sensors/" + id, "", admin);
  ASSERT_EQ(before_tokens.first, 200);

  struct Case {
    std::string method, path, body, token;
    int status;
  };
  std::vector<Case> cases{
      {"GET", "/v1/sensors", "", "", 401},
      {"GET", "/v1/sensors", "", "wrong-token", 401},
      {"POST", "/v1/tokens", "{not json", admin, 400},
      {"POST", "/v1/tokens", R"({"tenant": "acme", "ttl_seconds": "soon"})", admin, 400},
      {"POST", "/v1/tokens", R"({"tenant": "acme", "colour": "red"})", admin, 400},
      {"POST", "/v1/sensors/no-such-sensor/revoke", "{}", admin, 404},
      {"PUT", "/v1/sensors/" + id + "/desired-state", R"({"config": 42})", admin, 400},
      {"GET", "/v1/events?limit=abc", "", admin, 400},
      {"GET", "/v1/events?since=yesterday", "", admin, 400},
      {"POST", "/v1/enroll", R"({"token": ")" + unused + R"(", "csr": "garbage"})", "", 400},
      {"POST", "/v1/enroll", R"({"token": "x.y", "csr": "garbage"})", "", 401},
  };
  for (const auto& request : cases) {
    auto [status, body] = fleet.Api(request.method, request.path, request.body, request.token);
    EXPECT_EQ(status, request.status) << request.method << " " << request.path << ": " << body;
    auto problem = nlohmann::json::parse(body, nullptr, false);
    EXPECT_TRUE(problem.is_object() && problem.contains("title") && problem.contains("detail") &&
                problem.value("status", 0) == request.status)
        << request.method << " " << request.path << ": not a problem document: " << body;
  }
  EXPECT_EQ(fleet.Api("GET", "/v1/tokens", "", admin), before_tokens);
  EXPECT_EQ(fleet.Api("GET", "/v1/sensors/" + id, "", admin).second, before_sensor.second);
}

}  // namespace
}  // namespace custos::testing
