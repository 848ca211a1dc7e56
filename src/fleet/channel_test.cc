// The channel port of a running fleetd, driven by a real sensor-side client
// over mutual TLS and WebSocket.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "common/files.h"
#include "crypto/authority.h"
#include "crypto/crl.h"
#include "crypto/test_authority.h"
#include "fleet/fleet_test_support.h"

namespace custos::fleet {
namespace {

using nlohmann::json;
using testing::ChannelClient;
using testing::EventsBatch;
using testing::Must;
using testing::SensorIdentity;
using testing::TestFleet;

std::vector<StoredEvent> StoredEvents(TestFleet& fleet, const std::string& sensor_id) {
  EventQuery query;
  query.sensor_id = sensor_id;
  query.limit = kMaxQueryLimit;
  return Must(fleet.store().QueryEvents(query)).events;
}

TEST(ChannelTest, HelloEventsAndAckOnlyAfterTheEventsAreStored) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  ChannelClient client(fleet.channel_port(), sensor);
  Must(client.Connect());
  auto welcome = Must(client.Hello());
  EXPECT_EQ(welcome["sensor_id"], sensor.sensor_id);
  EXPECT_EQ(welcome["heartbeat_seconds"], 5);
  EXPECT_TRUE(fleet.server().core().registry->Live(sensor.sensor_id).has_value());

  Must(client.Send(EventsBatch(7, 1, 50)));
  auto ack = Must(client.ReceiveType("ack"));
  EXPECT_EQ(ack["batch"], 7);
  EXPECT_EQ(ack["up_to_seq"], 50);
  // When the ack arrives, every event it covers is already in the store.
  auto stored = StoredEvents(fleet, sensor.sensor_id);
  ASSERT_EQ(stored.size(), 50u);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].seq, i + 1);
    EXPECT_EQ(stored[i].event_type, "dns");
  }
  // Batches are acknowledged in the order they were sent.
  for (std::uint64_t batch = 8; batch < 12; ++batch) {
    Must(client.Send(EventsBatch(batch, 51 + (batch - 8) * 10, 60 + (batch - 8) * 10)));
  }
  for (std::uint64_t batch = 8; batch < 12; ++batch) {
    auto next = Must(client.ReceiveType("ack"));
    EXPECT_EQ(next["batch"], batch);
    EXPECT_EQ(next["up_to_seq"], 60 + (batch - 8) * 10);
  }
  EXPECT_EQ(StoredEvents(fleet, sensor.sensor_id).size(), 90u);
  auto record = Must(fleet.store().GetSensor(sensor.sensor_id));
  EXPECT_TRUE(record->last_seen.has_value());
}

TEST(ChannelTest, TheSameBatchTwiceIsStoredOnce) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  {
    ChannelClient client(fleet.channel_port(), sensor);
    Must(client.Connect());
    Must(client.Hello());
    Must(client.Send(EventsBatch(1, 1, 20)));
    EXPECT_EQ(Must(client.ReceiveType("ack"))["up_to_seq"], 20);
    // Sent again on the same connection, as after a lost ack.
    Must(client.Send(EventsBatch(1, 1, 20)));
    EXPECT_EQ(Must(client.ReceiveType("ack"))["up_to_seq"], 20);
  }
  // And again after a reconnect, overlapping new events.
  ChannelClient again(fleet.channel_port(), sensor);
  Must(again.Connect());
  Must(again.Hello());
  Must(again.Send(EventsBatch(2, 11, 30)));
  EXPECT_EQ(Must(again.ReceiveType("ack"))["up_to_seq"], 30);
  auto stored = StoredEvents(fleet, sensor.sensor_id);
  ASSERT_EQ(stored.size(), 30u);
  for (std::size_t i = 0; i < stored.size(); ++i) EXPECT_EQ(stored[i].seq, i + 1);
}

TEST(ChannelTest, ACertificateFromAnotherCaCannotOpenTheChannel) {
  TestFleet fleet;
  SensorIdentity ours = fleet.Enroll();
  crypto::testing::TempDir other_dir;
  crypto::testing::InitTestAuthority(other_dir.path(), "Test Fleet");
  auto other = Must(crypto::IssuingAuthority::Load(other_dir.path()));
  // Same sensor id as an enrolled one, signed by a stranger's CA; the
  // stranger trusts our root, so only the fleet's check can stop it.
  auto stranger = crypto::testing::EnrollTestSensor(other, ours.sensor_id, "acme");
  SensorIdentity forged{ours.sensor_id,
                        "acme",
                        std::move(stranger.key),
                        stranger.certificate.certificate_pem,
                        stranger.certificate.chain_pem,
                        fleet.root_pem()};
  ChannelClient client(fleet.channel_port(), forged);
  EXPECT_FALSE(client.Connect().ok());
  EXPECT_FALSE(fleet.server().core().registry->Live(ours.sensor_id).has_value());
}

TEST(ChannelTest, UnknownSensorsAndWrongPathsAreRefused) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  {
    ChannelClient wrong_path(fleet.channel_port(), sensor);
    EXPECT_FALSE(wrong_path.Connect("/v1/other").ok());
  }
  // A certificate of this CA for a sensor the registry does not know.
  auto authority = Must(crypto::IssuingAuthority::Load(fleet.fleet_dir()));
  auto unknown = crypto::testing::EnrollTestSensor(authority, "sensor-unknown", "acme");
  SensorIdentity stranger{"sensor-unknown",
                          "acme",
                          std::move(unknown.key),
                          unknown.certificate.certificate_pem,
                          unknown.certificate.chain_pem,
                          fleet.root_pem()};
  ChannelClient client(fleet.channel_port(), stranger);
  auto connected = client.Connect();
  ASSERT_FALSE(connected.ok());
  EXPECT_NE(connected.error().message.find("403"), std::string::npos) << connected.error().message;
  // A second certificate for an enrolled id is not the one the fleet issued.
  auto twin = crypto::testing::EnrollTestSensor(authority, sensor.sensor_id, "acme");
  SensorIdentity copy{sensor.sensor_id,           "acme",
                      std::move(twin.key),        twin.certificate.certificate_pem,
                      twin.certificate.chain_pem, fleet.root_pem()};
  ChannelClient twin_client(fleet.channel_port(), copy);
  EXPECT_FALSE(twin_client.Connect().ok());
}

TEST(ChannelTest, ProtocolViolationsGetAnErrorAndTheConnectionCloses) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  auto expect_error = [&](const std::function<void(ChannelClient&)>& misbehave,
                          const std::string& detail_part) {
    ChannelClient client(fleet.channel_port(), sensor);
    Must(client.Connect());
    misbehave(client);
    auto error = client.ReceiveType("error");
    ASSERT_TRUE(error.ok()) << error.error().message;
    EXPECT_NE(error->value("detail", "").find(detail_part), std::string::npos) << error->dump();
    EXPECT_FALSE(client.Receive(std::chrono::seconds(3)).ok());
    EXPECT_TRUE(client.closed());
  };
  expect_error([](ChannelClient& c) { Must(c.Send(EventsBatch(1, 1, 2))); }, "hello");
  expect_error([](ChannelClient& c) { Must(c.SendText("{nope")); }, "JSON");
  expect_error(
      [&](ChannelClient& c) {
        Must(c.Send({{"type", "hello"},
                     {"version", 1},
                     {"sensor_id", "someone-else"},
                     {"state_version", 0},
                     {"spool", 1}}));
      },
      "certificate names");
  expect_error(
      [](ChannelClient& c) {
        Must(c.Hello());
        json batch = EventsBatch(1, 5, 6);
        batch["events"][1]["seq"] = 5;
        Must(c.Send(batch));
      },
      "seq");
  // Nothing from the refused messages was stored.
  EXPECT_TRUE(StoredEvents(fleet, sensor.sensor_id).empty());
}

TEST(ChannelTest, RevokeClosesTheLiveChannelWithinTwoSecondsAndLaterHandshakesFail) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  SensorIdentity bystander = fleet.Enroll();
  ChannelClient client(fleet.channel_port(), sensor);
  Must(client.Connect());
  Must(client.Hello());
  ChannelClient other(fleet.channel_port(), bystander);
  Must(other.Connect());
  Must(other.Hello());

  auto started = std::chrono::steady_clock::now();
  auto revoked = fleet.Call("POST", "/v1/sensors/" + sensor.sensor_id + "/revoke");
  ASSERT_EQ(revoked.status, 200) << revoked.text;
  auto error = client.ReceiveType("error", std::chrono::seconds(2));
  ASSERT_TRUE(error.ok()) << error.error().message;
  EXPECT_NE(error->value("detail", "").find("revoked"), std::string::npos);
  EXPECT_FALSE(client.Receive(std::chrono::seconds(2)).ok());
  EXPECT_TRUE(client.closed());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));

  // The TLS handshake itself now refuses the certificate.
  ChannelClient again(fleet.channel_port(), sensor);
  auto connected = again.Connect();
  EXPECT_FALSE(connected.ok());
  // The CRL on disk names it too, and the data key is refused.
  auto crl = Must(
      crypto::Crl::Parse(Must(ReadFile(fleet.dir() / "fleet" / "crl.pem")),
                         Must(crypto::IssuingAuthority::Load(fleet.fleet_dir())).certificate()));
  auto record = Must(fleet.store().GetSensor(sensor.sensor_id));
  EXPECT_TRUE(crl.IsRevoked(record->certificate_serial));
  EXPECT_FALSE(fleet.server().core().keys->KeyFor(sensor.sensor_id).ok());
  // The other sensor is untouched.
  Must(other.Send(EventsBatch(1, 1, 3)));
  EXPECT_EQ(Must(other.ReceiveType("ack"))["up_to_seq"], 3);
  EXPECT_TRUE(fleet.server().core().keys->KeyFor(bystander.sensor_id).ok());
}

TEST(ChannelTest, DesiredStateIsPushedOnHelloAndWhenTheApiChangesIt) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  const std::string v1 = "policy:\n  uplink: [dns]\ninstruments: []\n";
  const std::string v2 = "policy:\n  uplink: [dns, alert]\ninstruments: []\n";
  auto put = fleet.Call("PUT", "/v1/sensors/" + sensor.sensor_id + "/desired-state",
                        json{{"config", v1}}.dump());
  ASSERT_EQ(put.status, 200) << put.text;
  EXPECT_EQ(put.body["version"], 1);
  EXPECT_EQ(put.body["pushed"], false);

  ChannelClient client(fleet.channel_port(), sensor);
  Must(client.Connect());
  Must(client.Hello(0));
  auto state = Must(client.ReceiveType("desired_state"));
  EXPECT_EQ(state["version"], 1);
  EXPECT_EQ(state["config"], v1);
  Must(client.Send({{"type", "state_result"},
                    {"stream", state["stream"]},
                    {"version", 1},
                    {"ok", true},
                    {"error", nullptr}}));

  put = fleet.Call("PUT", "/v1/sensors/" + sensor.sensor_id + "/desired-state",
                   json{{"config", v2}}.dump());
  ASSERT_EQ(put.status, 200) << put.text;
  EXPECT_EQ(put.body["pushed"], true);
  state = Must(client.ReceiveType("desired_state"));
  EXPECT_EQ(state["version"], 2);
  EXPECT_EQ(state["config"], v2);
  EXPECT_NE(state["stream"], nullptr);

  auto shown = fleet.Call("GET", "/v1/sensors/" + sensor.sensor_id + "/desired-state");
  EXPECT_EQ(shown.body["version"], 2);
  EXPECT_EQ(shown.body["applied_version"], 1);
  EXPECT_EQ(shown.body["config"], v2);

  // A sensor that already runs the latest version is not sent it again.
  ChannelClient current(fleet.channel_port(), sensor);
  Must(current.Connect());
  Must(current.Hello(2));
  Must(current.Send(EventsBatch(1, 1, 1)));
  auto next = Must(current.Receive());
  EXPECT_EQ(next["type"], "ack") << next.dump();
}

TEST(ChannelTest, ARekeyIsCommandedAtOnceAndAgainOnHelloUntilConfirmed) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  ChannelClient client(fleet.channel_port(), sensor);
  Must(client.Connect());
  Must(client.Hello(0));
  auto ordered = fleet.Call("POST", "/v1/sensors/" + sensor.sensor_id + "/rekey");
  ASSERT_EQ(ordered.status, 200) << ordered.text;
  EXPECT_EQ(ordered.body["pending_version"], 2);
  EXPECT_EQ(ordered.body["sent"], true);
  auto command = Must(client.ReceiveType("command"));
  EXPECT_EQ(command["command"], "rekey") << command.dump();
  EXPECT_NE(command["stream"], nullptr);

  // The sensor did not re-key (it went away): its next hello is told again.
  ChannelClient again(fleet.channel_port(), sensor);
  Must(again.Connect());
  Must(again.Hello(0));
  command = Must(again.ReceiveType("command"));
  EXPECT_EQ(command["command"], "rekey") << command.dump();

  // Once it confirmed, a hello gets no command: the first message is the ack.
  ASSERT_TRUE(Must(fleet.server().core().keys->ConfirmRekey(sensor.sensor_id, 2)));
  ChannelClient confirmed(fleet.channel_port(), sensor);
  Must(confirmed.Connect());
  Must(confirmed.Hello(0));
  Must(confirmed.Send(EventsBatch(1, 1, 1)));
  auto next = Must(confirmed.Receive());
  EXPECT_EQ(next["type"], "ack") << next.dump();
  EXPECT_FALSE(confirmed.ReceiveType("command", std::chrono::seconds(1)).ok());
}

TEST(ChannelTest, HeartbeatsShowAsHealthAndConnection) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  auto before = fleet.Call("GET", "/v1/sensors/" + sensor.sensor_id);
  EXPECT_EQ(before.body["connected"], false);
  EXPECT_EQ(before.body["last_seen"], nullptr);

  ChannelClient client(fleet.channel_port(), sensor);
  Must(client.Connect());
  Must(client.Hello());
  json health = {{"instruments", json::array({{{"name", "dnsmon"}, {"state", "running"}}})},
                 {"spool", {{"pending", 3}, {"dropped_full", 0}}},
                 {"locked", false}};
  Must(client.Send({{"type", "heartbeat"}, {"health", health}}));
  // The heartbeat has no answer; an acknowledged batch proves it was read.
  Must(client.Send(EventsBatch(1, 1, 1)));
  Must(client.ReceiveType("ack"));
  auto shown = fleet.Call("GET", "/v1/sensors/" + sensor.sensor_id);
  EXPECT_EQ(shown.body["connected"], true);
  EXPECT_EQ(shown.body["health"], health);
  EXPECT_NE(shown.body["last_seen"], nullptr);
  // The first heartbeat of a connection also reaches the store, written on
  // the blocking pool with no message to wait for: poll with a deadline.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Must(fleet.store().GetSensor(sensor.sensor_id))->health == "{}" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(json::parse(Must(fleet.store().GetSensor(sensor.sensor_id))->health), health);
}

TEST(ChannelTest, ANewConnectionOfTheSameSensorReplacesTheOld) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  ChannelClient first(fleet.channel_port(), sensor);
  Must(first.Connect());
  Must(first.Hello());
  ChannelClient second(fleet.channel_port(), sensor);
  Must(second.Connect());
  Must(second.Hello());
  auto error = first.ReceiveType("error");
  ASSERT_TRUE(error.ok()) << error.error().message;
  EXPECT_NE(error->value("detail", "").find("replaced"), std::string::npos);
  Must(second.Send(EventsBatch(1, 1, 2)));
  EXPECT_EQ(Must(second.ReceiveType("ack"))["up_to_seq"], 2);
}

}  // namespace
}  // namespace custos::fleet
