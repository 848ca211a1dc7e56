// The sensor's life cycle with real containers: retention, restart after a
// crash, refusing a bad configuration, active mode, and the status command.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <filesystem>
#include <fstream>

#include "common/process.h"
#include "tests/system/harness.h"

namespace custos::testing {
namespace {
namespace fs = std::filesystem;

std::string Hostile(const std::string& name, const std::string& args,
                    const std::string& extra = "") {
  return "  - name: " + name + "\n    manifest: " + ManifestOf("hostile") + "\n    args: " + args +
         "\n" + extra;
}

void WriteAged(const std::string& path, std::chrono::seconds age) {
  std::ofstream(path) << "data\n";
  timeval times[2];
  ::gettimeofday(&times[0], nullptr);
  times[0].tv_sec -= age.count();
  times[1] = times[0];
  ASSERT_EQ(::lutimes(path.c_str(), times), 0) << path;
}

TEST(Retention, DeletesOlderFilesAndKeepsNewerOnes) {
  SensorUnderTest sensor("retain", Hostile("keeper", "[idle]", "    retention: 1h\n"),
                         "retention_sweep: 200ms");
  sensor.Start();
  sensor.WaitForLog("keeper", "IDLE ready");
  std::string dir = sensor.PersistentDir("keeper");
  fs::create_directories(dir + "/old-dir");
  WriteAged(dir + "/old.pcap", std::chrono::hours(2));
  WriteAged(dir + "/old-dir/old.db", std::chrono::hours(3));
  WriteAged(dir + "/recent.pcap", std::chrono::minutes(30));
  // A hostile instrument's symlink to a file outside: the link may go, its target never.
  std::string outside = sensor.root() + "/outside";
  WriteAged(outside, std::chrono::hours(5));
  fs::create_symlink(outside, dir + "/link-out");
  timeval link_times[2];
  ::gettimeofday(&link_times[0], nullptr);
  link_times[0].tv_sec -= 7200;
  link_times[1] = link_times[0];
  ::lutimes((dir + "/link-out").c_str(), link_times);
  ::utimes((dir + "/old-dir").c_str(), link_times);

  sensor.WaitForInstrument(
      "keeper", [](const auto& s) { return s["files_expired"].template get<int>() >= 3; });
  EXPECT_FALSE(fs::exists(dir + "/old.pcap"));
  EXPECT_FALSE(fs::exists(dir + "/old-dir"));
  EXPECT_FALSE(fs::is_symlink(dir + "/link-out"));
  EXPECT_TRUE(fs::exists(dir + "/recent.pcap"));
  EXPECT_TRUE(fs::exists(dir + "/marker"));
  EXPECT_TRUE(fs::exists(outside))
      << "the sweep followed a symlink out of the instrument's storage";
  // The instrument is told its period.
  EXPECT_EQ(sensor.InstrumentStatus("keeper")["retention_seconds"], 3600);
  sensor.Stop();
}

TEST(Restart, CrashingInstrumentIsRestartedWithoutTouchingOthers) {
  SensorUnderTest sensor("crash", Hostile("calm", "[idle]") + Hostile("crasher", "[crash, '100']"),
                         "restart_backoff: {initial: 100ms, max: 400ms}");
  sensor.Start();
  auto calm =
      sensor.WaitForInstrument("calm", [](const auto& s) { return s["state"] == "running"; });
  auto crasher = sensor.WaitForInstrument(
      "crasher", [](const auto& s) { return s["restarts"].template get<int>() >= 3; });
  // 139 is SIGSEGV (128+11); under AddressSanitizer the crash exits 1 instead.
  EXPECT_TRUE(crasher["last_exit"] == 139 || crasher["last_exit"] == 1) << crasher.dump();
  auto calm_after = sensor.InstrumentStatus("calm");
  EXPECT_EQ(calm_after["pid"], calm["pid"]);
  EXPECT_EQ(calm_after["restarts"], 0);
  sensor.Stop();
}

TEST(Configuration, BadFileIsRefusedWithFieldAndLineAndRunningSetKept) {
  SensorUnderTest sensor("badcfg", Hostile("calm", "[idle]"));
  sensor.Start();
  auto calm =
      sensor.WaitForInstrument("calm", [](const auto& s) { return s["state"] == "running"; });
  std::string good =
      "  - name: calm\n    manifest: " + ManifestOf("hostile") + "\n    args: [idle]\n";
  sensor.RewriteConfig(good + "    limits:\n      memory: lots\n");
  auto reply = sensor.Request({{"command", "reload"}});
  EXPECT_FALSE(reply["ok"].get<bool>());
  std::string error = reply.value("error", "");
  EXPECT_NE(error.find("instruments[0].limits.memory"), std::string::npos) << error;
  EXPECT_NE(error.find("sensor.yaml:15"), std::string::npos) << error;
  sensor.RewriteConfig(good + "    retension: 1d\n");
  reply = sensor.Request({{"command", "reload"}});
  EXPECT_NE(reply.value("error", "").find("instruments[0].retension: unknown field"),
            std::string::npos)
      << reply.dump();
  auto after = sensor.InstrumentStatus("calm");
  EXPECT_EQ(after["pid"], calm["pid"])
      << "a refused configuration must not touch running instruments";
  EXPECT_EQ(after["state"], "running");
  // A good one is applied: a second instrument joins, the first is untouched.
  sensor.RewriteConfig(good + Hostile("second", "[idle]"));
  reply = sensor.Request({{"command", "reload"}});
  EXPECT_TRUE(reply["ok"].get<bool>()) << reply.dump();
  sensor.WaitForInstrument("second", [](const auto& s) { return s["state"] == "running"; });
  EXPECT_EQ(sensor.InstrumentStatus("calm")["pid"], calm["pid"]);
  sensor.Stop();
}

TEST(Lifecycle, StopAndStartOneInstrumentAndShowStatus) {
  SensorUnderTest sensor("life", Hostile("one", "[idle]") + Hostile("two", "[idle]"));
  sensor.Start();
  auto two = sensor.WaitForInstrument("two", [](const auto& s) { return s["state"] == "running"; });
  sensor.WaitForInstrument("one", [](const auto& s) { return s["state"] == "running"; });
  EXPECT_TRUE(sensor.Request({{"command", "stop"}, {"instrument", "one"}})["ok"].get<bool>());
  EXPECT_EQ(sensor.InstrumentStatus("one")["state"], "stopped");
  EXPECT_EQ(sensor.InstrumentStatus("two")["pid"], two["pid"]);
  EXPECT_TRUE(sensor.Request({{"command", "start"}, {"instrument", "one"}})["ok"].get<bool>());
  auto status = RunCommand({CUSTOS_CLI, "sensor", "--socket", sensor.SocketPath(), "status"});
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->exit_code, 0) << status->output;
  EXPECT_NE(status->output.find("one"), std::string::npos) << status->output;
  EXPECT_NE(status->output.find("running"), std::string::npos) << status->output;
  EXPECT_NE(status->output.find("MEMORY MB"), std::string::npos) << status->output;
  auto unknown =
      RunCommand({CUSTOS_CLI, "sensor", "--socket", sensor.SocketPath(), "stop", "nosuch"});
  ASSERT_TRUE(unknown.ok());
  EXPECT_NE(unknown->exit_code, 0);
  EXPECT_NE(unknown->output.find("no instrument named 'nosuch'"), std::string::npos)
      << unknown->output;
  sensor.Stop();
}

TEST(ActiveMode, InterfaceIsHandedOverAndBack) {
  SensorUnderTest sensor("active",
                         Hostile("act", "[idle]", "    network: active\n    interface: tap7\n"), "",
                         "allowed_capabilities: [CAP_NET_RAW]\nactive_interfaces: [tap7]");
  sensor.host().Run({"ip", "link", "add", "tap7", "type", "veth", "peer", "name", "tap7peer"});
  sensor.Start();
  auto act = sensor.WaitForInstrument("act", [](const auto& s) { return s["state"] == "running"; });
  EXPECT_EQ(sensor.host().Run({"ip", "-o", "link", "show"}).find("tap7:"), std::string::npos)
      << "tap7 should have left the sensor's namespace while the instrument runs";
  std::string inside = "/proc/" + std::to_string(act["pid"].get<int>()) + "/ns/net";
  auto links = RunCommand({"nsenter", "--net=" + inside, "ip", "-o", "link", "show", "tap7"});
  ASSERT_TRUE(links.ok());
  EXPECT_NE(links->output.find("tap7"), std::string::npos) << links->output;
  sensor.Stop();
  EXPECT_NE(sensor.host().Run({"ip", "-o", "link", "show", "tap7"}).find("tap7"), std::string::npos)
      << "tap7 was not handed back";
}

TEST(Recovery, NextStartCleansUpAfterSensordWasKilled) {
  SensorUnderTest sensor("killed",
                         Hostile("act", "[idle]", "    network: active\n    interface: tap8\n") +
                             Hostile("pas", "[idle]", "    network: passive\n"),
                         "", "allowed_capabilities: [CAP_NET_RAW]\nactive_interfaces: [tap8]");
  sensor.host().Run({"ip", "link", "add", "tap8", "type", "veth", "peer", "name", "tap8peer"});
  sensor.Start();
  auto first =
      sensor.WaitForInstrument("act", [](const auto& s) { return s["state"] == "running"; });
  sensor.WaitForInstrument("pas", [](const auto& s) { return s["state"] == "running"; });
  sensor.Kill();
  // Killed: its containers still run and tap8 is still inside one of them.
  EXPECT_EQ(sensor.host().Run({"ip", "-o", "link", "show"}).find("tap8:"), std::string::npos);
  sensor.Start();
  auto second =
      sensor.WaitForInstrument("act", [](const auto& s) { return s["state"] == "running"; });
  EXPECT_NE(second["pid"], first["pid"]) << "the old container should have been replaced";
  EXPECT_TRUE(sensor.Log("act").find("IDLE ready") != std::string::npos);
  sensor.Stop();
  EXPECT_NE(sensor.host().Run({"ip", "-o", "link", "show", "tap8"}).find("tap8"), std::string::npos)
      << "tap8 was not handed back after the crash";
}

}  // namespace
}  // namespace custos::testing
