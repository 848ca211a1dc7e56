// Test harness for system and security tests: a test host (a network
// namespace of its own, removed at the end, also on failure) running a real
// custos-sensord with a configuration written by the test, and helpers to
// read instrument status and logs. Requires root, runc, ip and nft.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace custos::testing {

// A network namespace named custos-t<pid>-<n>, deleted by the destructor.
class TestNetns {
 public:
  TestNetns();
  ~TestNetns();
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  // Runs a command inside; returns its output, or fails the test.
  std::string Run(const std::vector<std::string>& argv) const;

 private:
  std::string name_;
};

struct ProbeResult {
  bool blocked = false;
  std::string detail;
};

class SensorUnderTest {
 public:
  // `instruments_yaml` is the `instruments:` list (indented by two spaces);
  // `sensor_extra` and `policy_yaml` are added to those sections.
  SensorUnderTest(std::string name, std::string instruments_yaml, std::string sensor_extra = "",
                  std::string policy_yaml = "allowed_capabilities: [CAP_NET_RAW]");
  ~SensorUnderTest();
  SensorUnderTest(const SensorUnderTest&) = delete;
  SensorUnderTest& operator=(const SensorUnderTest&) = delete;

  // Starts sensord in the test host and waits until its admin socket answers.
  void Start();
  // SIGTERM, waits for exit, then checks that nothing was left behind.
  void Stop();
  // SIGKILL, as a crash or power cut would: nothing is cleaned up.
  void Kill();

  nlohmann::json Request(const nlohmann::json& request) const;
  nlohmann::json Status() const;
  nlohmann::json InstrumentStatus(const std::string& name) const;
  // Polls status until `predicate` holds for the instrument, or fails the test.
  nlohmann::json WaitForInstrument(const std::string& name,
                                   const std::function<bool(const nlohmann::json&)>& predicate,
                                   std::chrono::seconds timeout = std::chrono::seconds(20)) const;
  // Waits until the instrument's log contains `text`; returns the log.
  std::string WaitForLog(const std::string& name, const std::string& text,
                         std::chrono::seconds timeout = std::chrono::seconds(20)) const;
  std::map<std::string, ProbeResult> ProbeResults(const std::string& name) const;
  void RewriteConfig(const std::string& instruments_yaml);
  // Top-level sections (such as `fleet:`) added to the file from now on.
  void set_extra_sections(std::string yaml) { extra_sections_ = std::move(yaml); }
  void WriteRawConfig(const std::string& text);

  std::string Log(const std::string& name) const;
  std::string PersistentDir(const std::string& name) const;
  const std::string& root() const { return root_; }
  const std::string& name() const { return name_; }
  std::string ConfigPath() const { return root_ + "/sensor.yaml"; }
  std::string SocketPath() const { return root_ + "/state/sensord.sock"; }
  std::string HubNetns() const { return "custos-" + name_; }
  const TestNetns& host() const { return host_; }
  pid_t pid() const { return pid_; }

 private:
  std::string ConfigText(const std::string& instruments_yaml) const;
  void CheckNothingLeftBehind() const;

  std::string name_;
  std::string sensor_extra_;
  std::string policy_yaml_;
  std::string extra_sections_;
  std::string root_;
  TestNetns host_;
  pid_t pid_ = -1;
};

// Path of a built instrument's manifest (hostile, heartbeat, ...).
std::string ManifestOf(const std::string& instrument);
std::string SensordBinary();
// Reads an interface counter (rx_packets, tx_packets) inside a namespace.
std::uint64_t InterfaceCounter(const std::string& netns_path, const std::string& interface,
                               const std::string& counter);

}  // namespace custos::testing
