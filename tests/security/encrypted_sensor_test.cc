// A sensor whose data root is an encrypted volume that only its fleet's
// data key opens: a real fleetd, a real sensord behind a NAT, instruments
// writing marker files. The disk is read as a thief would; the key is
// looked for in every file the sensor wrote and in sensord's memory; the
// fleet re-keys the sensor, then revokes it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "common/process.h"
#include "common/unique_fd.h"
#include "sensor/admin_server.h"
#include "storage/encrypted_volume.h"
#include "storage/scratch_area.h"
#include "tests/system/fleet_setup.h"

namespace custos::testing {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string Markers(const std::string& name, const std::string& marker) {
  return "  - name: " + name + "\n    manifest: " + ManifestOf("hostile") +
         "\n    args: [markers, " + marker + "]\n";
}

nlohmann::json Storage(const SensorUnderTest& sensor) {
  return sensor.Status().value("storage", nlohmann::json::object());
}

// Status while sensord may be starting again (a re-key): no answer is no failure.
nlohmann::json StatusIfUp(const SensorUnderTest& sensor) {
  auto reply = AdminRequest(sensor.SocketPath(), {{"command", "status"}});
  return reply && reply->is_object() ? *reply : nlohmann::json::object();
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

// The sensor with an encrypted volume next to its root (not inside data_root).
struct EncryptedSensor {
  EncryptedSensor(const std::string& name, const std::string& instruments)
      : setup(name, instruments, "", "allowed_capabilities: [CAP_NET_RAW]\nuplink: [count]") {
    volume = setup.sensor.root() + "/volume.img";
    setup.sensor.set_extra_sections("fleet:\n  identity: " + setup.sensor.root() +
                                    "/identity\n  heartbeat_seconds: 1\n  data_volume: " + volume +
                                    "\n  data_volume_size: 128M\n");
    setup.sensor.RewriteConfig(instruments);
    id = EnrollSensor(setup.sensor, setup.fleet, setup.fleet.CreateToken("acme"));
  }
  void StartUnlocked() {
    setup.sensor.Start();
    ASSERT_TRUE(WaitFor([&] { return Storage(setup.sensor).value("state", "") == "unlocked"; },
                        std::chrono::seconds(30)))
        << Storage(setup.sensor).dump();
  }
  // What the fleet hands this sensor, fetched as the sensor does (its
  // certificate and chain): {"key", "version", "pending"?}.
  nlohmann::json DataKeyReply() const {
    const auto& sensor = setup.sensor;
    std::string with_chain = sensor.root() + "/with-chain.pem";
    {
      std::ofstream out(with_chain);
      out << ReadFile(sensor.root() + "/identity/sensor.crt").value()
          << ReadFile(sensor.root() + "/identity/chain.pem").value();
    }
    auto reply =
        RunCommand({"nsenter", "--net=" + sensor.host().path(), "--", "curl", "-s", "--cacert",
                    sensor.root() + "/identity/root.pem", "--cert", with_chain, "--key",
                    sensor.root() + "/identity/sensor.key",
                    "https://" + std::string(NatNetwork::kFleetAddress) + ":8444/v1/data-key"});
    fs::remove(with_chain);
    if (!reply) return nlohmann::json();
    return nlohmann::json::parse(reply->output, nullptr, false);
  }
  std::string DataDir(const std::string& instrument) const {
    return setup.sensor.root() + "/data/instruments/" + instrument;
  }
  FleetSetup setup;
  std::string volume;
  std::string id;
};

std::string Decode(const std::string& base64) {
  std::string bytes(base64.size(), '\0');
  int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                               reinterpret_cast<const unsigned char*>(base64.data()),
                               static_cast<int>(base64.size()));
  bytes.resize(32);
  return length >= 32 ? bytes : "";
}

std::string Hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) hex += {digits[c >> 4], digits[c & 15]};
  return hex;
}

// The start addresses of sensord's mappings that hold `needle`, and whether
// each is marked "dd" (left out of core dumps).
std::map<std::string, bool> MappingsHolding(pid_t pid, const std::string& needle) {
  std::map<std::string, bool> found;
  std::string proc = "/proc/" + std::to_string(pid);
  UniqueFd memory(::open((proc + "/mem").c_str(), O_RDONLY | O_CLOEXEC));
  std::ifstream maps(proc + "/maps");
  for (std::string line; std::getline(maps, line);) {
    unsigned long start = 0, end = 0;
    char permissions[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, permissions) != 3) continue;
    if (permissions[0] != 'r' || end - start > (512ul << 20)) continue;
    std::string bytes(end - start, '\0');
    ssize_t got = ::pread(memory.get(), bytes.data(), bytes.size(), static_cast<off_t>(start));
    if (got <= 0) continue;
    bytes.resize(static_cast<std::size_t>(got));
    if (bytes.find(needle) != std::string::npos) found[line.substr(0, line.find('-'))] = false;
  }
  std::ifstream smaps(proc + "/smaps");
  std::string current;
  for (std::string line; std::getline(smaps, line);) {
    if (line.find('-') != std::string::npos && line.find(' ') > line.find('-') &&
        std::isxdigit(static_cast<unsigned char>(line[0]))) {
      current = line.substr(0, line.find('-'));
    } else if (line.rfind("VmFlags:", 0) == 0 && found.contains(current)) {
      found[current] = line.find(" dd") != std::string::npos;
    }
  }
  return found;
}

TEST(EncryptedSensor, AStolenDiskRevealsNothingAndTheKeyIsNowhereButLockedMemory) {
  const std::string kAlpha = "custos-marker-alpha-5e1d9c";
  const std::string kBeta = "custos-marker-beta-77a02f";
  EncryptedSensor encrypted("encd", Markers("alpha", kAlpha) + Markers("beta", kBeta));
  auto& sensor = encrypted.setup.sensor;
  ASSERT_FALSE(encrypted.id.empty());
  encrypted.StartUnlocked();
  sensor.WaitForLog("alpha", "MARKERS ready");
  sensor.WaitForLog("beta", "MARKERS ready");
  auto reply = encrypted.DataKeyReply();
  ASSERT_TRUE(reply.is_object() && reply.contains("key")) << reply.dump();
  std::string key = Decode(reply["key"].get<std::string>());
  ASSERT_EQ(key.size(), 32u);

  // In memory, the key lives only in pages left out of core dumps, and
  // sensord may not dump core at all.
  auto holders = MappingsHolding(sensor.pid(), key);
  EXPECT_FALSE(holders.empty()) << "the search found the key nowhere, so it proves nothing";
  for (const auto& [mapping, dontdump] : holders)
    EXPECT_TRUE(dontdump) << "the key is in mapping " << mapping << ", which a core dump keeps";
  auto limits = ReadFile("/proc/" + std::to_string(sensor.pid()) + "/limits").value();
  std::istringstream lines(limits);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Max core file size", 0) == 0) {
      std::istringstream fields(line.substr(18));
      std::string soft, hard;
      fields >> soft >> hard;
      EXPECT_EQ(soft, "0") << line;
      EXPECT_EQ(hard, "0") << line;
    }
  }

  sensor.Stop();  // keys removed from the kernel, volume unmounted
  // No file the sensor wrote holds the key, in any spelling: logs, state,
  // identity, spool, the volume itself.
  std::string base64 = reply["key"].get<std::string>();
  for (const auto& entry : fs::recursive_directory_iterator(sensor.root())) {
    if (!entry.is_regular_file()) continue;
    for (const auto& spelling : {key, Hex(key), base64}) {
      auto contains = storage::FileContains(entry.path(), spelling);
      ASSERT_TRUE(contains.ok()) << contains.error().message;
      EXPECT_FALSE(*contains) << entry.path() << " holds the data key";
    }
  }
  // The raw volume holds neither the instruments' data nor their file names.
  for (const auto& marker :
       {kAlpha + "-content", kBeta + "-content", kAlpha + "-file", kBeta + "-file"}) {
    auto contains = storage::FileContains(encrypted.volume, marker);
    ASSERT_TRUE(contains.ok());
    EXPECT_FALSE(*contains) << "the raw volume shows " << marker;
  }
  // Mounted without the key: encoded names, and no file opens.
  std::string mountpoint = sensor.root() + "/thief";
  fs::create_directories(mountpoint);
  {
    auto volume = storage::EncryptedVolume::Open(encrypted.volume, mountpoint);
    ASSERT_TRUE(volume.ok()) << volume.error().message;
    int files = 0;
    for (const auto& entry : fs::directory_iterator(mountpoint + "/instruments/alpha")) {
      EXPECT_EQ(entry.path().filename().string().find("custos-marker"), std::string::npos);
      if (!entry.is_regular_file()) continue;
      ++files;
      UniqueFd fd(::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC));
      EXPECT_FALSE(fd.valid()) << entry.path() << " opened without the key";
    }
    EXPECT_GE(files, 1);
    ASSERT_TRUE(volume->Close().ok());
  }

  // At the next boot the fleet hands the key over again, and the data is there.
  encrypted.StartUnlocked();
  // Its directory is unlocked when the instrument starts.
  sensor.WaitForInstrument("alpha",
                           [](const nlohmann::json& s) { return s["state"] == "running"; });
  auto content = ReadFile(encrypted.DataDir("alpha") + "/" + kAlpha + "-file");
  ASSERT_TRUE(content.ok()) << content.error().message;
  EXPECT_EQ(content->substr(0, kAlpha.size() + 8), kAlpha + "-content");
  sensor.Stop();
}

TEST(EncryptedSensor, ReKeyingKeepsEveryFileAndARevokedSensorStaysLocked) {
  const std::string kGamma = "custos-marker-gamma-c41b8e";
  EncryptedSensor encrypted("encr", Markers("gamma", kGamma));
  auto& sensor = encrypted.setup.sensor;
  auto& fleet = encrypted.setup.fleet;
  encrypted.StartUnlocked();
  sensor.WaitForLog("gamma", "MARKERS ready");
  std::string marker_file = encrypted.DataDir("gamma") + "/" + kGamma + "-file";
  auto before = ReadFile(marker_file);
  ASSERT_TRUE(before.ok()) << before.error().message;
  EXPECT_EQ(Storage(sensor).value("key_version", 0), 1);

  // The fleet orders a re-key of the running sensor: it stops, starts
  // again by itself (the same process) and re-encrypts before gamma runs.
  const pid_t pid = sensor.pid();
  fleet.Cli({"sensor", "rekey", encrypted.id});
  const auto rekeyed = [&](int version) {
    auto status = StatusIfUp(sensor);
    auto storage = status.value("storage", nlohmann::json::object());
    bool gamma_running = false;
    for (const auto& instrument : status.value("instruments", nlohmann::json::array()))
      gamma_running |=
          instrument.value("name", "") == "gamma" && instrument.value("state", "") == "running";
    return storage.value("state", "") == "unlocked" && storage.value("key_version", 0) == version &&
           gamma_running;
  };
  ASSERT_TRUE(WaitFor([&] { return rekeyed(2); }, std::chrono::seconds(60)))
      << StatusIfUp(sensor).dump();
  EXPECT_EQ(::kill(pid, 0), 0) << "sensord was not started again in place";
  auto after = ReadFile(marker_file);
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(*after, *before);
  auto reply = encrypted.DataKeyReply();
  EXPECT_EQ(reply.value("version", 0), 2) << reply.dump();
  EXPECT_FALSE(reply.contains("pending")) << reply.dump();

  // Ordered while the sensor is off: it re-keys when it next starts.
  sensor.Stop();
  fleet.Cli({"sensor", "rekey", encrypted.id});
  encrypted.StartUnlocked();
  ASSERT_TRUE(WaitFor([&] { return rekeyed(3); }, std::chrono::seconds(60)))
      << StatusIfUp(sensor).dump();
  after = ReadFile(marker_file);
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(*after, *before);
  EXPECT_EQ(encrypted.DataKeyReply().value("version", 0), 3);
  sensor.Stop();

  // Revoked: the key is refused, the data stays locked, no instrument starts.
  fleet.Cli({"sensor", "revoke", encrypted.id});
  sensor.Start();
  std::this_thread::sleep_for(std::chrono::seconds(5));
  auto storage = Storage(sensor);
  EXPECT_EQ(storage.value("state", ""), "locked, waiting for fleet") << storage.dump();
  EXPECT_FALSE(storage.value("last_error", "").empty()) << storage.dump();
  for (const auto& instrument : sensor.Status().value("instruments", nlohmann::json::array()))
    EXPECT_NE(instrument.value("state", ""), "running") << instrument.dump();
  EXPECT_FALSE(fs::exists(marker_file)) << "the data root is open without a key";
  sensor.Stop();
}

}  // namespace
}  // namespace custos::testing
