// The message bus between real containers: each instrument below is the
// bustool test instrument in its own runc container, talking to the broker
// in a real custos-sensord through the socket mounted into it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/process.h"
#include "tests/system/harness.h"

namespace custos::testing {
namespace {
namespace fs = std::filesystem;

std::string Tool(const std::string& name, const std::string& actions,
                 const std::string& publish = "[]", const std::string& subscribe = "[]") {
  return "  - name: " + name + "\n    manifest: " + ManifestOf("bustool") +
         "\n    args: " + actions + "\n    bus: {publish: " + publish +
         ", subscribe: " + subscribe + "}\n";
}

// The JSON lines an instrument printed, those with `key`.
std::vector<nlohmann::json> Lines(const SensorUnderTest& sensor, const std::string& name,
                                  const std::string& key) {
  std::vector<nlohmann::json> lines;
  std::istringstream log(sensor.Log(name));
  for (std::string line; std::getline(log, line);) {
    auto entry = nlohmann::json::parse(line, nullptr, false);
    if (entry.is_object() && entry.contains(key)) lines.push_back(entry);
  }
  return lines;
}

// A bus counter from an instrument's status, or -1 while it does not exist.
long Counter(const nlohmann::json& status, const std::string& topic, const std::string& counter) {
  auto bus = status.value("bus", nlohmann::json::object());
  auto topics = bus.value("topics", nlohmann::json::object());
  if (!topics.contains(topic)) return -1;
  return topics[topic].value(counter, -1L);
}

nlohmann::json Action(const SensorUnderTest& sensor, const std::string& name,
                      const std::string& action) {
  for (const auto& line : Lines(sensor, name, "action")) {
    if (line["action"] == action) return line;
  }
  ADD_FAILURE() << name << " did not report " << action << ":\n" << sensor.Log(name);
  return {{"ok", false}, {"detail", ""}};
}

// Starts `first` (listeners) with the instruments of `second` parked (they
// must exist for the policy to name them), waits until the listeners listen,
// then gives the parked ones their real actions.
void StartInTwoSteps(SensorUnderTest& sensor, const std::string& first,
                     const std::vector<std::string>& listeners,
                     const std::vector<std::string>& second_names, const std::string& second) {
  std::string parked;
  for (const auto& name : second_names) parked += Tool(name, "[stuck]");
  sensor.RewriteConfig(first + parked);
  sensor.Start();
  for (const auto& name : listeners) sensor.WaitForLog(name, "LISTENING");
  sensor.RewriteConfig(first + second);
  auto reply = sensor.Request({{"command", "reload"}});
  ASSERT_TRUE(reply.value("ok", false)) << reply.dump();
}

TEST(Bus, DirectMessagesReachOnlyTheirRecipientAndNeedPolicy) {
  SensorUnderTest sensor("busdm", "", "", "messages:\n  - {from: a, to: b, types: [config]}");
  StartInTwoSteps(sensor, Tool("b", "[listen]") + Tool("c", "[listen]"), {"b", "c"}, {"a"},
                  Tool("a", "['request:b:config:v1', 'send:c:config:secret', 'send:b:ruleset:x']"));
  sensor.WaitForLog("a", "ACTIONS DONE");
  auto reply = Action(sensor, "a", "request:b:config:v1");
  EXPECT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  EXPECT_EQ(reply["detail"], "ack:v1");
  auto refused = Action(sensor, "a", "send:c:config:secret");
  EXPECT_FALSE(refused["ok"].get<bool>());
  EXPECT_NE(refused["detail"].get<std::string>().find(
                "policy.messages needs {from: a, to: c, types: [config]}"),
            std::string::npos)
      << refused.dump();
  EXPECT_FALSE(Action(sensor, "a", "send:b:ruleset:x")["ok"].get<bool>())
      << "a type not in the triple";
  auto got_b = Lines(sensor, "b", "got");
  ASSERT_EQ(got_b.size(), 1u) << sensor.Log("b");
  EXPECT_EQ(got_b[0]["sender"], "a") << "the broker stamps the sender";
  EXPECT_EQ(got_b[0]["payload"], "v1");
  EXPECT_TRUE(Lines(sensor, "c", "got").empty()) << "c saw a message: " << sensor.Log("c");
  EXPECT_EQ(sensor.InstrumentStatus("a")["bus"]["refused"], 2);
  sensor.Stop();
}

TEST(Bus, ForgedSenderIsImpossible) {
  SensorUnderTest sensor("busforge", "");
  StartInTwoSteps(sensor,
                  Tool("victim", "[stuck]", "[flow]") +
                      Tool("watch", "[subscribe:flow, listen]", "[]", "[flow]"),
                  {"watch"}, {"forger"}, Tool("forger", "['forge:victim:flow']", "[flow]"));
  sensor.WaitForLog("forger", "ACTIONS DONE");
  auto forged = Action(sensor, "forger", "forge:victim:flow");
  EXPECT_NE(forged["detail"].get<std::string>().find("sent by the broker only"), std::string::npos)
      << forged.dump();
  EXPECT_NE(forged["detail"].get<std::string>().find("connection closed"), std::string::npos)
      << forged.dump();
  EXPECT_TRUE(Lines(sensor, "watch", "counts").empty())
      << "the forged event was delivered: " << sensor.Log("watch");
  EXPECT_EQ(sensor.InstrumentStatus("forger")["bus"]["malformed"], 1);
  sensor.Stop();
}

TEST(Bus, SubscriptionsFollowPolicyAndSendersAreStamped) {
  SensorUnderTest sensor("bustopic", "");
  StartInTwoSteps(sensor, Tool("sub", "[subscribe:flow, subscribe:dns, listen]", "[]", "[flow]"),
                  {"sub"}, {"pub"},
                  Tool("pub", "['publish:flow:50:64', 'publish:dns:50:64']", "[flow, dns]"));
  sensor.WaitForLog("pub", "ACTIONS DONE");
  EXPECT_TRUE(Action(sensor, "sub", "subscribe:flow")["ok"].get<bool>());
  auto refused = Action(sensor, "sub", "subscribe:dns");
  EXPECT_FALSE(refused["ok"].get<bool>());
  EXPECT_NE(refused["detail"].get<std::string>().find("may not subscribe to topic 'dns'"),
            std::string::npos);
  sensor.WaitForInstrument("sub",
                           [](const auto& s) { return Counter(s, "flow", "delivered") == 50; });
  std::string log = sensor.WaitForLog("sub", R"("total":50)");
  EXPECT_NE(log.find(R"({"flow<-pub":50})"), std::string::npos) << log;
  EXPECT_EQ(log.find("dns<-"), std::string::npos) << "no dns event may arrive";
  // The platform saw both topics.
  auto events = sensor.Request({{"command", "events"}, {"topic", "dns"}, {"limit", 5}});
  ASSERT_EQ(events["events"].size(), 5u);
  EXPECT_EQ(events["events"][0]["instrument"], "pub");
  sensor.Stop();
}

TEST(Bus, StuckSubscriberDoesNotStallOthersAndItsDropsAreCounted) {
  SensorUnderTest sensor("busstuck", "");
  StartInTwoSteps(sensor,
                  Tool("stuck", "[subscribe:flow, stuck]", "[]", "[flow]") +
                      Tool("good", "[subscribe:flow, listen]", "[]", "[flow]"),
                  {"good"}, {"pub"}, Tool("pub", "['publish:flow:20000:512']", "[flow]"));
  sensor.WaitForLog("stuck", "STUCK");
  sensor.WaitForLog("pub", "ACTIONS DONE", std::chrono::seconds(60));
  EXPECT_TRUE(Action(sensor, "pub", "publish:flow:20000:512")["ok"].get<bool>());
  auto good = sensor.WaitForInstrument(
      "good", [](const auto& s) { return Counter(s, "flow", "delivered") == 20000; },
      std::chrono::seconds(60));
  EXPECT_EQ(Counter(good, "flow", "dropped"), 0);
  sensor.WaitForLog("good", R"("total":20000)", std::chrono::seconds(60));
  auto stuck = sensor.InstrumentStatus("stuck");
  EXPECT_GT(Counter(stuck, "flow", "dropped"), 0) << stuck.dump();
  EXPECT_EQ(Counter(stuck, "flow", "delivered") + Counter(stuck, "flow", "dropped"), 20000)
      << "every event is accounted for";
  auto status = RunCommand({CUSTOS_CLI, "sensor", "--socket", sensor.SocketPath(), "status"});
  ASSERT_TRUE(status.ok());
  EXPECT_NE(status->output.find("bus topic flow: delivered"), std::string::npos) << status->output;
  sensor.Stop();
}

TEST(Bus, BadFramesCloseOnlyTheOffendersConnection) {
  SensorUnderTest sensor("busbad", "");
  StartInTwoSteps(sensor, Tool("good", "[subscribe:flow, listen]", "[]", "[flow]"), {"good"},
                  {"bad", "pub"},
                  Tool("bad", "[garbage]") + Tool("pub", "['publish:flow:100:64']", "[flow]"));
  sensor.WaitForLog("bad", "ACTIONS DONE");
  auto garbage = Action(sensor, "bad", "garbage");
  EXPECT_NE(garbage["detail"].get<std::string>().find("unsupported protocol version 7"),
            std::string::npos)
      << garbage.dump();
  EXPECT_NE(garbage["detail"].get<std::string>().find("connection closed"), std::string::npos);
  sensor.WaitForLog("good", R"("total":100)");
  EXPECT_EQ(sensor.InstrumentStatus("bad")["bus"]["malformed"], 1);
  EXPECT_EQ(sensor.InstrumentStatus("good")["state"], "running");
  sensor.Stop();
}

TEST(Bus, FilesLandInTheRecipientOnly) {
  SensorUnderTest sensor("busfile", "", "",
                         "messages:\n  - {from: giver, to: taker, types: [file]}");
  StartInTwoSteps(
      sensor, Tool("taker", "[listen]") + Tool("other", "[listen]"), {"taker", "other"}, {"giver"},
      Tool("giver", "['sendfile:taker:rules.txt:alert-all', 'sendfile:other:rules.txt:nope']"));
  sensor.WaitForLog("giver", "ACTIONS DONE");
  EXPECT_TRUE(Action(sensor, "giver", "sendfile:taker:rules.txt:alert-all")["ok"].get<bool>());
  EXPECT_FALSE(Action(sensor, "giver", "sendfile:other:rules.txt:nope")["ok"].get<bool>());
  sensor.WaitForLog("taker", R"("got":"file")");
  auto notice = Lines(sensor, "taker", "got").at(0);
  EXPECT_EQ(notice["sender"], "giver");
  std::string inside = notice["path"];  // /data/inbox/...
  std::ifstream copy(sensor.PersistentDir("taker") + inside.substr(5));
  std::string content;
  std::getline(copy, content);
  EXPECT_EQ(content, "alert-all");
  EXPECT_FALSE(fs::exists(sensor.PersistentDir("other") + "/inbox"));
  EXPECT_FALSE(fs::exists(sensor.PersistentDir("giver") + "/inbox"));
  sensor.Stop();
}

TEST(Bus, InstrumentLearnsItsSettingsOverTheBus) {
  SensorUnderTest sensor(
      "busset", Tool("asker", "[settings]") + "    retention: 3h\n    settings: {depth: 7}\n");
  sensor.Start();
  sensor.WaitForLog("asker", "ACTIONS DONE");
  auto settings =
      nlohmann::json::parse(Action(sensor, "asker", "settings")["detail"].get<std::string>());
  EXPECT_EQ(settings["retention_seconds"], 10800);
  EXPECT_EQ(settings["settings"]["depth"], 7);
  EXPECT_EQ(settings["instrument"], "asker");
  sensor.Stop();
}

TEST(Bus, RealInstrumentsPublishAndConfigureEachOther) {
  std::string instruments =
      "  - name: heartbeat\n    manifest: " + ManifestOf("heartbeat") +
      "\n    bus: {publish: [heartbeat]}\n    settings: {interval_seconds: 1}\n"
      "  - name: mirrorstat\n    manifest: " +
      ManifestOf("mirrorstat") +
      "\n    network: passive\n    bus: {publish: [stats]}\n    settings: {report_seconds: 1}\n"
      "  - name: rulemgr\n    manifest: " +
      ManifestOf("rulemgr") +
      "\n    bus: {publish: [ruleset]}\n    settings: {targets: {mirrorstat: {ethertypes: "
      "['0x86dd']}}}\n";
  SensorUnderTest sensor("busreal", instruments, "",
                         "allowed_capabilities: [CAP_NET_RAW]\n"
                         "messages:\n  - {from: rulemgr, to: mirrorstat, types: [config]}");
  sensor.Start();
  // The manager's configuration reaches the flow counter, which applies it...
  sensor.WaitForLog("rulemgr",
                    R"(configured mirrorstat: {"applied":true,"ethertypes":["0x86dd"]})");
  sensor.WaitForLog("mirrorstat", "config from rulemgr");
  // ...and says so in the events it publishes, which reach the platform.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  nlohmann::json stats;
  while (std::chrono::steady_clock::now() < deadline) {
    auto events =
        sensor.Request({{"command", "events"}, {"topic", "stats"}, {"limit", 1}})["events"];
    if (!events.empty()) {
      auto event = nlohmann::json::parse(events[0]["event"].get<std::string>());
      if (event["stats"]["counting"] == nlohmann::json({"0x86dd"})) {
        stats = events[0];
        stats["event"] = event;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(stats.empty()) << "no stats event showing the new configuration";
  EXPECT_EQ(stats["instrument"], "mirrorstat");
  EXPECT_EQ(stats["event"]["event_type"], "stats");
  EXPECT_TRUE(stats["event"].contains("timestamp"));
  auto heartbeat =
      sensor.Request({{"command", "events"}, {"topic", "heartbeat"}, {"limit", 1}})["events"];
  ASSERT_EQ(heartbeat.size(), 1u) << sensor.InstrumentStatus("heartbeat").dump();
  EXPECT_EQ(nlohmann::json::parse(heartbeat[0]["event"].get<std::string>())["event_type"],
            "heartbeat");
  EXPECT_EQ(sensor.Request({{"command", "events"}, {"topic", "ruleset"}})["events"].size(), 1u);
  // Its UI answers on the socket the platform gave it (what the fleet's proxy will use).
  auto page = RunCommand({"curl", "-s", "--unix-socket",
                          sensor.root() + "/state/ui/mirrorstat/ui.sock", "http://sensor/stats"});
  ASSERT_TRUE(page.ok());
  EXPECT_NE(page->output.find(R"("counting":["0x86dd"])"), std::string::npos) << page->output;
  sensor.Stop();
}

}  // namespace
}  // namespace custos::testing
