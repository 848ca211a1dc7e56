#include "fleet/channel_messages.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace custos::fleet {
namespace {

using nlohmann::json;

json Hello() {
  return {{"type", "hello"},
          {"version", 1},
          {"sensor_id", "sensor-1"},
          {"state_version", 3},
          {"spool", 17}};
}

json Batch() {
  return {{"type", "events"},
          {"batch", 9},
          {"events",
           {{{"seq", 4}, {"topic", "dns"}, {"instrument", "dnsmon"}, {"event", "{\"a\":1}"}},
            {{"seq", 6}, {"topic", "dns"}, {"instrument", "dnsmon"}, {"event", "not json"}}}}};
}

std::string Refusal(const json& message) {
  auto parsed = ParseSensorMessage(message.dump());
  return parsed.ok() ? "" : parsed.error().message;
}

TEST(ChannelMessagesTest, ParsesEachSensorMessage) {
  auto hello = ParseSensorMessage(Hello().dump());
  ASSERT_TRUE(hello.ok()) << hello.error().message;
  const auto& h = std::get<HelloMessage>(*hello);
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.sensor_id, "sensor-1");
  EXPECT_EQ(h.state_version, 3);
  EXPECT_EQ(h.spool, 17u);

  auto batch = ParseSensorMessage(Batch().dump());
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  const auto& b = std::get<EventsMessage>(*batch);
  EXPECT_EQ(b.batch, 9u);
  ASSERT_EQ(b.events.size(), 2u);
  EXPECT_EQ(b.events[1].seq, 6u);
  EXPECT_EQ(b.events[1].event, "not json");  // kept: the store wraps it

  auto heartbeat = ParseSensorMessage(R"({"type":"heartbeat","health":{"locked":false}})");
  ASSERT_TRUE(heartbeat.ok());
  EXPECT_EQ(json::parse(std::get<HeartbeatMessage>(*heartbeat).health_json),
            json({{"locked", false}}));

  auto result = ParseSensorMessage(
      R"({"type":"state_result","stream":2,"version":5,"ok":false,"error":"no"})");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(std::get<StateResultMessage>(*result).error, "no");
  auto command =
      ParseSensorMessage(R"({"type":"command_result","stream":2,"ok":true,"output":[1]})");
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(std::get<CommandResultMessage>(*command).output_json, "[1]");
  // Unknown fields are ignored, so a newer sensor can add some.
  json extended = Hello();
  extended["future"] = {{"x", 1}};
  EXPECT_EQ(Refusal(extended), "");
}

TEST(ChannelMessagesTest, RefusesMalformedMessagesNamingTheField) {
  EXPECT_NE(Refusal("nope"), "");
  EXPECT_NE(ParseSensorMessage("{").ok(), true);
  EXPECT_NE(ParseSensorMessage(std::string(100, '[') + std::string(100, ']')).ok(), true);
  EXPECT_NE(Refusal({{"type", "mystery"}}).find("mystery"), std::string::npos);
  json hello = Hello();
  hello["version"] = -1;
  EXPECT_NE(Refusal(hello).find("version"), std::string::npos);
  hello = Hello();
  hello.erase("sensor_id");
  EXPECT_NE(Refusal(hello).find("sensor_id"), std::string::npos);
  hello = Hello();
  hello["state_version"] = 1.5;
  EXPECT_NE(Refusal(hello).find("state_version"), std::string::npos);

  json batch = Batch();
  batch["events"][1]["seq"] = 4;  // not increasing
  EXPECT_NE(Refusal(batch).find("events[1]"), std::string::npos);
  batch = Batch();
  batch["events"][0]["seq"] = 0;
  EXPECT_NE(Refusal(batch).find("seq"), std::string::npos);
  batch = Batch();
  batch["events"][0]["seq"] = std::numeric_limits<std::uint64_t>::max();
  EXPECT_NE(Refusal(batch).find("seq"), std::string::npos);
  batch = Batch();
  batch["events"] = json::array();
  EXPECT_NE(Refusal(batch).find("events"), std::string::npos);
  batch = Batch();
  batch["events"][0]["event"] = 5;
  EXPECT_NE(Refusal(batch).find("event"), std::string::npos);
  batch = Batch();
  batch["events"][0]["topic"] = "";
  EXPECT_NE(Refusal(batch).find("topic"), std::string::npos);
  // More than 500 events, or more than 1 MiB of them.
  json many = {{"type", "events"}, {"batch", 1}, {"events", json::array()}};
  for (int seq = 1; seq <= 501; ++seq) {
    many["events"].push_back({{"seq", seq}, {"topic", "t"}, {"instrument", "i"}, {"event", "{}"}});
  }
  EXPECT_NE(Refusal(many).find("500"), std::string::npos);
  json large = {{"type", "events"}, {"batch", 1}, {"events", json::array()}};
  for (int seq = 1; seq <= 3; ++seq) {
    large["events"].push_back({{"seq", seq},
                               {"topic", "t"},
                               {"instrument", "i"},
                               {"event", std::string(400 * 1024, 'x')}});
  }
  EXPECT_NE(Refusal(large).find("1 MiB"), std::string::npos);
  EXPECT_NE(Refusal({{"type", "heartbeat"}, {"health", "fine"}}).find("health"), std::string::npos);
  EXPECT_NE(Refusal({{"type", "state_result"}, {"stream", 1}, {"version", 1}}).find("ok"),
            std::string::npos);
}

TEST(ChannelMessagesTest, BuildsFleetMessages) {
  EXPECT_EQ(json::parse(WelcomeMessage("s1", 5)),
            json({{"type", "welcome"}, {"sensor_id", "s1"}, {"heartbeat_seconds", 5}}));
  EXPECT_EQ(json::parse(AckMessage(3, 99)),
            json({{"type", "ack"}, {"batch", 3}, {"up_to_seq", 99}}));
  auto state = json::parse(DesiredStateMessage(2, 7, "policy: {}\n"));
  EXPECT_EQ(state["type"], "desired_state");
  EXPECT_EQ(state["stream"], 2);
  EXPECT_EQ(state["version"], 7);
  EXPECT_EQ(state["config"], "policy: {}\n");
  // Invalid UTF-8 in a detail cannot break the frame.
  auto error = json::parse(ErrorMessage("bad \xff byte"));
  EXPECT_EQ(error["type"], "error");
}

}  // namespace
}  // namespace custos::fleet
