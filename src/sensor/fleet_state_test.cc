// The fleet: section and policy.uplink of the sensor file, and desired
// states: merged with the local file, saved, put back when refused.
#include "sensor/fleet_state.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/files.h"
#include "crypto/test_authority.h"
#include "sensor/fleet_identity.h"

namespace custos::sensor {
namespace {

namespace fs = std::filesystem;
using crypto::testing::Must;
using crypto::testing::TempDir;

class FleetStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.path() / "tool.yaml") << "name: tool\nexecutable: /bin/true\n";
    Must(MakeDirectories(identity_, 0700));
  }

  // A sensor file with a fleet: section and one instrument, "local".
  fs::path WriteFile(const std::string& fleet_fields = "",
                     const std::string& policy = "policy:\n  uplink: [alert]\n") {
    fs::path path = dir_.path() / "sensor.yaml";
    std::ofstream(path) << "sensor:\n  name: s1\n  data_root: " << (dir_.path() / "data").string()
                        << "\nfleet:\n  identity: " << identity_.string() << "\n"
                        << fleet_fields << policy
                        << "instruments:\n  - name: local\n    manifest: tool.yaml\n";
    return path;
  }

  Result<SensorConfig> Parse(const std::string& text) {
    return ParseSensorConfig(text, (dir_.path() / "sensor.yaml").string());
  }

  TempDir dir_;
  fs::path identity_ = dir_.path() / "identity";
};

constexpr char kDesired[] =
    "policy:\n"
    "  uplink: [dns, alert]\n"
    "instruments:\n"
    "  - name: remote\n"
    "    manifest: tool.yaml\n";

TEST_F(FleetStateTest, FleetSectionHasDefaults) {
  auto config = LoadSensorConfig(WriteFile().string());
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->fleet);
  EXPECT_EQ(config->fleet->identity, identity_.string());
  EXPECT_EQ(config->fleet->spool_dir, (dir_.path() / "data" / "spool").string());
  EXPECT_EQ(config->fleet->spool_max_bytes, 256ull << 20);
  EXPECT_EQ(config->fleet->heartbeat, std::chrono::seconds(5));
  EXPECT_EQ(config->uplink, std::vector<std::string>{"alert"});

  auto alone = Parse("sensor:\n  name: s1\n");
  ASSERT_TRUE(alone.ok()) << alone.error().message;
  EXPECT_FALSE(alone->fleet);
  EXPECT_TRUE(alone->uplink.empty());

  auto defaults = Parse("sensor:\n  name: s1\nfleet: {spool_max_bytes: 64M}\n");
  ASSERT_TRUE(defaults.ok()) << defaults.error().message;
  EXPECT_EQ(defaults->fleet->identity, kDefaultIdentityDir);
  EXPECT_EQ(defaults->fleet->spool_dir, "/var/lib/custos/spool");
  EXPECT_EQ(defaults->fleet->spool_max_bytes, 64ull << 20);
}

TEST_F(FleetStateTest, FleetSectionIsValidated) {
  struct Case {
    std::string fields;
    std::string expected;
  };
  for (const auto& [fields, expected] : std::vector<Case>{
           {"fleet:\n  spool_dir: /d/instruments/ids/spool\n",
            "fleet.spool_dir: must not be inside"},
           {"fleet:\n  spool_dir: /d/instruments\n", "fleet.spool_dir: must not be inside"},
           {"fleet:\n  spool_dir: spool\n", "fleet.spool_dir: must be an absolute path"},
           {"fleet:\n  identity: identity\n", "fleet.identity: must be an absolute path"},
           {"fleet:\n  spool_max_bytes: 1M\n", "fleet.spool_max_bytes: must be at least 4M"},
           {"fleet:\n  heartbeat_seconds: 0\n", "fleet.heartbeat_seconds: must be at least 1"},
           {"fleet:\n  heartbeat_seconds: 5s\n",
            "fleet.heartbeat_seconds: expected a whole number"},
           {"fleet:\n  spool: /x\n", "fleet.spool: unknown field"},
           {"policy:\n  uplink: [Bad Topic]\n", "policy.uplink: 'Bad Topic' is not a topic name"},
       }) {
    auto config = Parse("sensor:\n  name: s1\n  data_root: /d\n" + fields);
    ASSERT_FALSE(config.ok()) << fields;
    EXPECT_NE(config.error().message.find(expected), std::string::npos) << config.error().message;
  }
  auto beside =
      Parse("sensor:\n  name: s1\n  data_root: /d\nfleet:\n  spool_dir: /d/instruments2\n");
  EXPECT_TRUE(beside.ok()) << beside.error().message;
}

TEST_F(FleetStateTest, DesiredStateReplacesPolicyAndInstrumentsOnly) {
  fs::path path = WriteFile();
  auto merged = LoadSensorConfigWithPolicy(path.string(), kDesired, "desired state v3");
  ASSERT_TRUE(merged.ok()) << merged.error().message;
  EXPECT_EQ(merged->name, "s1");
  ASSERT_TRUE(merged->fleet);
  EXPECT_EQ(merged->uplink, (std::vector<std::string>{"dns", "alert"}));
  ASSERT_EQ(merged->instruments.size(), 1u);
  EXPECT_EQ(merged->instruments[0].name, "remote");
  // Manifest paths resolve against the sensor file's folder.
  EXPECT_EQ(merged->instruments[0].manifest.executable, "/bin/true");

  auto sneaky =
      LoadSensorConfigWithPolicy(path.string(), "sensor:\n  name: other\n", "desired state v4");
  ASSERT_FALSE(sneaky.ok());
  EXPECT_NE(sneaky.error().message.find("desired state v4:1: sensor: unknown field"),
            std::string::npos)
      << sneaky.error().message;

  auto wrong = LoadSensorConfigWithPolicy(
      path.string(), "policy: {}\ninstruments:\n  - name: x\n    manifest: missing.yaml\n",
      "desired state v5");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("desired state v5:4: instruments[0].manifest"),
            std::string::npos)
      << wrong.error().message;

  auto empty = LoadSensorConfigWithPolicy(path.string(), "", "desired state v6");
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_TRUE(empty->instruments.empty());
}

TEST_F(FleetStateTest, AppliedStateIsSavedAndUsedAtTheNextStart) {
  fs::path path = WriteFile();
  std::vector<std::string> applied;
  auto apply = [&](const SensorConfig& config) -> Status {
    applied.push_back(config.instruments.empty() ? "" : config.instruments[0].name);
    return {};
  };
  ASSERT_TRUE(ApplyDesiredState(path.string(), 3, kDesired, apply).ok());
  EXPECT_EQ(applied, std::vector<std::string>{"remote"});
  auto saved = Must(LoadAppliedState(identity_));
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->version, 3u);
  EXPECT_EQ(saved->config, kDesired);

  auto effective = LoadEffectiveConfig(path.string());
  ASSERT_TRUE(effective.ok()) << effective.error().message;
  EXPECT_EQ(effective->state_version, 3u);
  ASSERT_EQ(effective->config.instruments.size(), 1u);
  EXPECT_EQ(effective->config.instruments[0].name, "remote");
}

TEST_F(FleetStateTest, RefusedStateIsNeitherAppliedNorRemembered) {
  fs::path path = WriteFile();
  int calls = 0;
  auto accept = [&](const SensorConfig&) -> Status {
    ++calls;
    return {};
  };
  auto refuse = [&](const SensorConfig&) -> Status {
    ++calls;
    return Error{"sensor.name cannot change"};
  };
  // Invalid: apply is never called, nothing saved.
  auto invalid = ApplyDesiredState(path.string(), 1, "instruments: 7\n", accept);
  ASSERT_FALSE(invalid.ok());
  EXPECT_NE(invalid.error().message.find("desired state v1"), std::string::npos)
      << invalid.error().message;
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(Must(LoadAppliedState(identity_)));
  // Refused with nothing saved before: nothing saved after.
  ASSERT_FALSE(ApplyDesiredState(path.string(), 2, kDesired, refuse).ok());
  EXPECT_FALSE(Must(LoadAppliedState(identity_)));
  // Refused after an accepted one: the accepted one stays.
  ASSERT_TRUE(ApplyDesiredState(path.string(), 3, kDesired, accept).ok());
  ASSERT_FALSE(ApplyDesiredState(path.string(), 4, "policy: {}\n", refuse).ok());
  auto saved = Must(LoadAppliedState(identity_));
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->version, 3u);
  EXPECT_EQ(calls, 3);
}

TEST_F(FleetStateTest, SavedStateThatNoLongerValidatesFallsBackToTheFile) {
  fs::path path = WriteFile();
  Must(SaveAppliedState(identity_,
                        {9, "instruments:\n  - name: gone\n    manifest: vanished.yaml\n"}));
  auto effective = LoadEffectiveConfig(path.string());
  ASSERT_TRUE(effective.ok()) << effective.error().message;
  EXPECT_EQ(effective->state_version, 0u);
  ASSERT_EQ(effective->config.instruments.size(), 1u);
  EXPECT_EQ(effective->config.instruments[0].name, "local");
}

}  // namespace
}  // namespace custos::sensor
