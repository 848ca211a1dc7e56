// Attacks on the instrument sandbox by the hostile instrument, each boundary
// its own test. Every test starts a real custos-sensord running real runc
// containers in a test network namespace.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "sandbox/netns.h"
#include "sandbox/nftables.h"
#include "tests/system/harness.h"

namespace custos::testing {
namespace {

std::string Instrument(const std::string& name, const std::string& network, const std::string& args,
                       const std::string& extra = "") {
  return "  - name: " + name + "\n    manifest: " + ManifestOf("hostile") +
         "\n    network: " + network + "\n    args: " + args + "\n" + extra;
}

// One sensor with a probing instrument `a` and an idle neighbour `b`; the
// probe results are shared by the tests below.
class ProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sensor_ = new SensorUnderTest("probe", "");
    std::string b_data = sensor_->PersistentDir("b");
    std::string paths = "[probe, --path, " + b_data + ", --path, " + b_data + "/marker, --path, " +
                        sensor_->root() +
                        ", --path, /data/marker, --path, /etc/shadow, --path, /root" +
                        ", --path, /var/lib, --path, /proc/1/root/etc/hostname]";
    // b first, so its files exist when a goes looking for them.
    sensor_->RewriteConfig(Instrument("b", "none", "[idle]"));
    sensor_->Start();
    sensor_->WaitForLog("b", "IDLE ready");
    sensor_->RewriteConfig(Instrument("b", "none", "[idle]") + Instrument("a", "none", paths));
    auto reloaded = sensor_->Request({{"command", "reload"}});
    ASSERT_TRUE(reloaded.value("ok", false)) << reloaded.dump();
    sensor_->WaitForLog("a", "PROBES DONE");
    results_ = new std::map<std::string, ProbeResult>(sensor_->ProbeResults("a"));
  }
  static void TearDownTestSuite() {
    delete sensor_;
    delete results_;
  }
  static void ExpectBlocked(const std::string& probe) {
    ASSERT_TRUE(results_->contains(probe)) << "probe " << probe << " did not report";
    EXPECT_TRUE(results_->at(probe).blocked) << probe << ": " << results_->at(probe).detail;
  }

  static SensorUnderTest* sensor_;
  static std::map<std::string, ProbeResult>* results_;
};

SensorUnderTest* ProbeTest::sensor_ = nullptr;
std::map<std::string, ProbeResult>* ProbeTest::results_ = nullptr;

TEST_F(ProbeTest, CannotReadOtherInstrumentsStorageOrTheHost) {
  std::string b_data = sensor_->PersistentDir("b");
  for (const auto& path : {b_data, b_data + "/marker", sensor_->root(), std::string("/data/marker"),
                           std::string("/etc/shadow"), std::string("/root"),
                           std::string("/var/lib"), std::string("/proc/1/root/etc/hostname")}) {
    ExpectBlocked("read:" + path);
  }
  // b's files exist and are closed to a's uid range on the host as well.
  struct stat a_info {
  }, b_info{};
  ASSERT_EQ(::stat(sensor_->PersistentDir("a").c_str(), &a_info), 0);
  ASSERT_EQ(::stat(b_data.c_str(), &b_info), 0);
  EXPECT_NE(a_info.st_uid, b_info.st_uid);
  EXPECT_EQ(b_info.st_mode & 0777, 0700u);
  std::ifstream marker(b_data + "/marker");
  std::string content;
  std::getline(marker, content);
  EXPECT_EQ(content, "persistent-marker");
}

TEST_F(ProbeTest, CannotSeeOtherProcesses) { ExpectBlocked("see_other_processes"); }

TEST_F(ProbeTest, CannotRaiseCapabilities) {
  ExpectBlocked("raise_capabilities");
  ExpectBlocked("raise_ambient_sys_admin");
  ExpectBlocked("holds_sys_admin");
}

TEST_F(ProbeTest, CannotMount) {
  ExpectBlocked("mount_tmpfs");
  ExpectBlocked("mount_bind");
  ExpectBlocked("remount_root_rw");
  ExpectBlocked("unshare_user_namespace");
}

TEST_F(ProbeTest, CannotPtrace) { ExpectBlocked("ptrace_attach"); }

TEST_F(ProbeTest, CannotLoadKernelModules) {
  ExpectBlocked("init_module");
  ExpectBlocked("finit_module");
}

TEST_F(ProbeTest, CannotWriteRootFilesystem) {
  ExpectBlocked("write_root");
  ExpectBlocked("write_own_binary");
  ExpectBlocked("write_sysrq");
  ExpectBlocked("mknod_block_device");
}

TEST_F(ProbeTest, NoneModeHasNoRouteAnywhere) {
  ExpectBlocked("has_route");
  ExpectBlocked("connect_198.18.0.1");
  ExpectBlocked("interfaces_besides_lo");
}

TEST(PassiveIsolation, TransmittedPacketsReachNothing) {
  SensorUnderTest sensor("passive", Instrument("rx", "passive", "[sniff]") +
                                        Instrument("tx", "passive", "[transmit, '200']"));
  sensor.Start();
  sensor.WaitForLog("rx", "SNIFFING");
  auto rx = sensor.WaitForInstrument("rx", [](const auto& s) { return s["state"] == "running"; });
  auto tx = sensor.WaitForInstrument("tx", [](const auto& s) { return s["state"] == "running"; });
  std::string log = sensor.WaitForLog("tx", "TRANSMITTED");
  // Two AF_PACKET sockets (one bypassing the qdisc) tried 200 frames each.
  ASSERT_NE(log.find("TRANSMITTED attempted=400 "), std::string::npos) << log;
  int udp_accepted = std::stoi(log.substr(log.find("udp_accepted=") + 13));

  // Every frame met the egress guard inside the instrument's own namespace...
  std::string tx_netns = "/proc/" + std::to_string(tx["pid"].get<int>()) + "/ns/net";
  auto egress_dropped = DroppedPackets(tx_netns, "out_mirror0");
  ASSERT_TRUE(egress_dropped.ok()) << egress_dropped.error().message;
  EXPECT_GE(*egress_dropped, 400u + static_cast<unsigned>(udp_accepted));
  // ...nothing crossed to the host end (whose ingress guard would count it)...
  std::string hub = "/run/netns/" + sensor.HubNetns();
  std::string tx_end = tx["mirror_host_end"], rx_end = rx["mirror_host_end"];
  auto ingress_dropped = DroppedPackets(hub, "in_" + tx_end);
  ASSERT_TRUE(ingress_dropped.ok()) << ingress_dropped.error().message;
  EXPECT_EQ(*ingress_dropped, 0u);
  EXPECT_EQ(InterfaceCounter(hub, tx_end, "rx_packets"), 0u);
  // ...and nothing left the hub towards any other interface or namespace.
  EXPECT_EQ(InterfaceCounter(hub, rx_end, "tx_packets"), 0u);
  EXPECT_EQ(InterfaceCounter(hub, tx_end, "tx_packets"), 0u);
  // rx rewrites its count after every 100 ms without a frame: wait for the first.
  const std::string sniffed = sensor.PersistentDir("rx") + "/sniffed";
  auto first_count = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!std::filesystem::exists(sniffed) && std::chrono::steady_clock::now() < first_count)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ifstream counter(sniffed);
  long seen = -1;
  counter >> seen;
  EXPECT_EQ(seen, 0) << "the other passive instrument saw frames";
  // The test host (the sensor's own namespace) got nothing either.
  EXPECT_EQ(InterfaceCounter(sensor.host().path(), "lo", "rx_packets"), 0u);

  // Second line of defence: with the in-namespace guard gone (as on a kernel
  // whose qdisc bypass skips egress hooks), the host end's guard drops it all.
  auto removed =
      RunInNetns(tx_netns, {"nft", "delete", "chain", "netdev", kGuardTable, "out_mirror0"});
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  ASSERT_EQ(::kill(tx["pid"].get<int>(), SIGUSR1), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (sensor.Log("tx").find("TRANSMITTED", log.find("TRANSMITTED") + 1) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ingress_dropped = DroppedPackets(hub, "in_" + tx_end);
  ASSERT_TRUE(ingress_dropped.ok());
  EXPECT_GE(*ingress_dropped, 400u) << sensor.Log("tx");
  EXPECT_EQ(InterfaceCounter(hub, rx_end, "tx_packets"), 0u);
  std::ifstream again(sniffed);
  again >> seen;
  EXPECT_EQ(seen, 0) << "the other passive instrument saw frames";
  sensor.Stop();
}

TEST(PassiveIsolation, InstrumentCannotReconfigureItsMirror) {
  SensorUnderTest sensor("pprobe", Instrument("p", "passive", "[probe]"));
  sensor.Start();
  sensor.WaitForLog("p", "PROBES DONE");
  auto results = sensor.ProbeResults("p");
  for (const char* probe : {"configure_interface:mirror0", "configure_interface:lo", "mount_tmpfs",
                            "raise_capabilities", "unshare_user_namespace"}) {
    ASSERT_TRUE(results.contains(probe)) << probe;
    EXPECT_TRUE(results[probe].blocked) << probe << ": " << results[probe].detail;
  }
  // Its only interfaces are loopback and the mirror, with no route anywhere.
  EXPECT_EQ(results["interfaces_besides_lo"].detail, "interfaces: lo mirror0 ");
  EXPECT_TRUE(results["has_route"].blocked) << results["has_route"].detail;
  EXPECT_TRUE(results["connect_198.18.0.1"].blocked) << results["connect_198.18.0.1"].detail;
  sensor.Stop();
}

TEST(ResourceLimits, ForkBombAndMemoryHogAreContainedWhileNeighbourRuns) {
  std::string limits_bomb = "    limits: {pids: 16}\n";
  std::string limits_hog = "    limits: {memory: 32M}\n";
  SensorUnderTest sensor("limits",
                         Instrument("calm", "none", "[idle]") +
                             Instrument("bomb", "none", "[forkbomb]", limits_bomb) +
                             Instrument("hog", "none", "[memhog]", limits_hog),
                         "restart_backoff: {initial: 200ms, max: 1s}");
  sensor.Start();
  std::string log = sensor.WaitForLog("bomb", "FORKBOMB");
  EXPECT_NE(log.find("refused=Resource temporarily unavailable"), std::string::npos) << log;
  auto forked = std::stoi(log.substr(log.find("forked=") + 7));
  EXPECT_LT(forked, 16);
  auto hog = sensor.WaitForInstrument(
      "hog", [](const auto& s) { return s["restarts"].template get<int>() >= 1; });
  EXPECT_EQ(hog["last_exit"], 137) << "the hog should be killed by the OOM killer";
  EXPECT_GE(hog["oom_kills"].get<int>(), 1) << "the memory cgroup should count the kill";
  auto calm_before = sensor.InstrumentStatus("calm");
  std::string ticks_file = sensor.PersistentDir("calm") + "/ticks";
  long first = 0, later = 0;
  std::ifstream(ticks_file) >> first;
  sensor.WaitForInstrument("hog",
                           [](const auto& s) { return s["restarts"].template get<int>() >= 2; });
  std::ifstream(ticks_file) >> later;
  auto calm_after = sensor.InstrumentStatus("calm");
  EXPECT_GT(later, first) << "the neighbour stopped making progress";
  EXPECT_EQ(calm_after["state"], "running");
  EXPECT_EQ(calm_after["restarts"], 0);
  EXPECT_EQ(calm_after["pid"], calm_before["pid"]);
  sensor.Stop();
}

TEST(ResourceLimits, AFloodedLogKeepsToTwoBoundedFiles) {
  SensorUnderTest sensor("logflood", Instrument("spam", "none", "[spam, '40']"));
  sensor.Start();
  // 40 MiB written: the first 16 MiB are gone, .log.1 holds the next 16 and
  // .log the last 8 with the closing line (far from a boundary, so it is
  // not rotated away by the lines that follow).
  std::string log = sensor.WaitForLog("spam", "SPAMMED", std::chrono::seconds(60));
  const std::string path = sensor.root() + "/log/spam.log";
  ASSERT_TRUE(std::filesystem::exists(path)) << "logs are not where the test looks";
  constexpr std::uintmax_t kBound = (16u << 20) + (64u << 10) + 256;
  EXPECT_LE(std::filesystem::file_size(path), kBound);
  EXPECT_LE(std::filesystem::file_size(path + ".1"), kBound);
  EXPECT_GE(std::filesystem::file_size(path + ".1"), 16u << 20);
  EXPECT_FALSE(std::filesystem::exists(path + ".2"));
  EXPECT_NE(log.find("[custos] log continued here"), std::string::npos);
  EXPECT_EQ(sensor.InstrumentStatus("spam")["state"], "running");
  sensor.Stop();
}

}  // namespace
}  // namespace custos::testing
