#include "sensor/sensor_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace custos {
namespace {
namespace fs = std::filesystem;

class SensorConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/custos-config-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    std::ofstream(dir_ + "/manifest.yaml")
        << "name: tool\nexecutable: /bin/true\n"
           "capabilities: [CAP_NET_RAW]\nnetworks: [none, passive]\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  Result<SensorConfig> Parse(
      const std::string& instruments,
      const std::string& policy = "  allowed_capabilities: [CAP_NET_RAW]\n") {
    std::string text = "sensor:\n  name: s1\n  state_dir: /run/x\npolicy:\n" + policy +
                       "instruments:\n" + instruments;
    return ParseSensorConfig(text, dir_ + "/sensor.yaml");
  }
  std::string dir_;
};

TEST_F(SensorConfigTest, ReadsEveryInstrumentField) {
  auto config = Parse(
      "  - name: ids\n    manifest: manifest.yaml\n    network: passive\n    retention: 2d\n"
      "    limits: {memory: 128M, pids: 20, cpus: 0.5, open_files: 100}\n    transient: 8M\n"
      "    args: [--fast]\n    settings: {rules: all, depth: 3}\n");
  ASSERT_TRUE(config.ok()) << config.error().message;
  const auto& ids = config->instruments.at(0);
  EXPECT_EQ(ids.name, "ids");
  EXPECT_EQ(ids.manifest.executable, "/bin/true");
  EXPECT_EQ(ids.network, NetworkMode::kPassive);
  EXPECT_EQ(ids.retention, std::chrono::hours(48));
  EXPECT_EQ(ids.limits.memory_bytes, 128u << 20);
  EXPECT_EQ(ids.limits.pids, 20u);
  EXPECT_DOUBLE_EQ(ids.limits.cpus, 0.5);
  EXPECT_EQ(ids.transient_bytes, 8u << 20);
  EXPECT_EQ(ids.extra_args, std::vector<std::string>{"--fast"});
  EXPECT_EQ(ids.settings_json, R"({"depth":3,"rules":"all"})");
  EXPECT_EQ(config->state_dir, "/run/x");
}

struct BadCase {
  std::string instruments;
  std::string expected;
};

TEST_F(SensorConfigTest, RefusesBadInputNamingLineAndField) {
  std::vector<BadCase> cases = {
      {"  - name: a\n    manifest: manifest.yaml\n    limits: {memory: lots}\n",
       "sensor.yaml:9: instruments[0].limits.memory: expected a size"},
      {"  - name: a\n    manifest: manifest.yaml\n    retension: 1d\n",
       "sensor.yaml:9: instruments[0].retension: unknown field"},
      {"  - name: A_B\n    manifest: manifest.yaml\n", "instruments[0].name: 'A_B' must be"},
      {"  - name: a\n    manifest: manifest.yaml\n    network: active\n",
       "the manifest does not allow network mode 'active'"},
      {"  - name: a\n    manifest: missing.yaml\n", "instruments[0].manifest: cannot read"},
      {"  - name: a\n    manifest: manifest.yaml\n  - name: a\n    manifest: manifest.yaml\n",
       "instruments[1].name: 'a' is used twice"},
      {"  - name: a\n    manifest: manifest.yaml\n    retention: 0s\n", "must be longer than 0"},
      {"  - name: a\n    manifest: manifest.yaml\n    limits: {pids: -3}\n",
       "expected a whole number"},
      {"  - name: a\n    manifest: manifest.yaml\n    interface: eth0\n",
       "only allowed in active and capture mode"},
      {"  - [oops\n", "not valid YAML"},
  };
  for (const auto& bad : cases) {
    auto config = Parse(bad.instruments);
    ASSERT_FALSE(config.ok()) << bad.instruments;
    EXPECT_NE(config.error().message.find(bad.expected), std::string::npos)
        << "got: " << config.error().message << "\nwanted: " << bad.expected;
  }
}

TEST_F(SensorConfigTest, CapabilitiesNeedPolicy) {
  auto config = Parse("  - name: a\n    manifest: manifest.yaml\n", "  allowed_capabilities: []\n");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("asks for CAP_NET_RAW"), std::string::npos)
      << config.error().message;
}

TEST_F(SensorConfigTest, PassiveInstrumentsMayNotLiftTheirGuard) {
  std::ofstream(dir_ + "/admin.yaml") << "name: t\nexecutable: /bin/true\n"
                                         "capabilities: [CAP_NET_ADMIN]\nnetworks: [passive]\n";
  auto config = Parse("  - name: a\n    manifest: admin.yaml\n    network: passive\n",
                      "  allowed_capabilities: [CAP_NET_ADMIN]\n");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("passive instrument may not hold CAP_NET_ADMIN"),
            std::string::npos)
      << config.error().message;
}

TEST_F(SensorConfigTest, SettingsKeepTheirTypes) {
  auto config = Parse(
      "  - name: a\n    manifest: manifest.yaml\n"
      "    settings: {n: 12, r: 0.5, hex: 0x10, quoted: '7', flag: true, list: [a, 2]}\n");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->instruments[0].settings_json,
            R"({"flag":true,"hex":"0x10","list":["a",2],"n":12,"quoted":"7","r":0.5})");
}

TEST_F(SensorConfigTest, RequiresTheSensorSection) {
  auto config = ParseSensorConfig("instruments: []\n", dir_ + "/sensor.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("sensor: is required"), std::string::npos)
      << config.error().message;
}

TEST_F(SensorConfigTest, CaptureFiltersAreCheckedWhenTheFileIsRead) {
  auto good = Parse(
      "  - name: web\n    manifest: manifest.yaml\n    network: passive\n"
      "    capture_filter: 'tcp port 80'\n");
  ASSERT_TRUE(good.ok()) << good.error().message;
  EXPECT_EQ(good->instruments.at(0).capture_filter, "tcp port 80");
  auto bad = Parse(
      "  - name: web\n    manifest: manifest.yaml\n    network: passive\n"
      "    capture_filter: 'tcp prot 80'\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("capture_filter"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("tcp prot 80"), std::string::npos) << bad.error().message;
  auto misplaced = Parse(
      "  - name: web\n    manifest: manifest.yaml\n    network: none\n"
      "    capture_filter: tcp\n");
  ASSERT_FALSE(misplaced.ok());
  EXPECT_NE(misplaced.error().message.find("only allowed in passive and ring mode"),
            std::string::npos)
      << misplaced.error().message;
}

TEST(IsValidName, AllowsShortLowercaseNames) {
  EXPECT_TRUE(IsValidName("flow-meter"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("-x"));
  EXPECT_FALSE(IsValidName("sixteen-chars-xx"));
  EXPECT_FALSE(IsValidName("Upper"));
}

}  // namespace
}  // namespace custos
