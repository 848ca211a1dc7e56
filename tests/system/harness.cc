#include "tests/system/harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "common/process.h"
#include "sandbox/cgroup_stats.h"
#include "sandbox/netns.h"
#include "sensor/admin_server.h"

namespace custos::testing {
namespace fs = std::filesystem;
namespace {

std::atomic<int> g_counter{0};

std::string Unique(const std::string& prefix) {
  return prefix + std::to_string(::getpid()) + "-" + std::to_string(g_counter++);
}

bool WaitForExit(pid_t pid, std::chrono::seconds timeout, int* status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TestNetns::TestNetns() : name_(Unique("custos-t")) {
  auto created = CreateNamedNetns(name_);
  if (!created) ADD_FAILURE() << created.error().message;
  Run({"ip", "link", "set", "lo", "up"});
}

TestNetns::~TestNetns() {
  auto deleted = DeleteNamedNetns(name_);
  if (!deleted) ADD_FAILURE() << deleted.error().message;
}

std::string TestNetns::Run(const std::vector<std::string>& argv) const {
  auto output = RunInNetns(path(), argv);
  if (!output) {
    ADD_FAILURE() << output.error().message;
    return "";
  }
  return *output;
}

std::string ManifestOf(const std::string& instrument) {
  return std::string(CUSTOS_INSTRUMENT_DIR) + "/" + instrument + "/manifest.yaml";
}

std::string SensordBinary() { return CUSTOS_SENSORD; }

std::uint64_t InterfaceCounter(const std::string& netns_path, const std::string& interface,
                               const std::string& counter) {
  auto stats = ReadInterfaceStats(netns_path, interface);
  if (!stats) {
    ADD_FAILURE() << stats.error().message;
    return 0;
  }
  if (counter == "rx_packets") return stats->rx_packets;
  if (counter == "tx_packets") return stats->tx_packets;
  ADD_FAILURE() << "unknown counter " << counter;
  return 0;
}

SensorUnderTest::SensorUnderTest(std::string name, std::string instruments_yaml,
                                 std::string sensor_extra, std::string policy_yaml)
    : name_(std::move(name)),
      sensor_extra_(std::move(sensor_extra)),
      policy_yaml_(std::move(policy_yaml)) {
  char pattern[] = "/tmp/custos-test-XXXXXX";
  char* made = ::mkdtemp(pattern);
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  root_ = made;
  ::chmod(root_.c_str(), 0755);
  RewriteConfig(instruments_yaml);
}

SensorUnderTest::~SensorUnderTest() {
  if (pid_ > 0) Stop();
  std::error_code ignored;
  // CUSTOS_TEST_KEEP=1 keeps logs and data for a look after the test.
  if (!root_.empty() && std::getenv("CUSTOS_TEST_KEEP") == nullptr) fs::remove_all(root_, ignored);
}

std::string SensorUnderTest::ConfigText(const std::string& instruments_yaml) const {
  std::ostringstream text;
  text << "sensor:\n"
       << "  name: " << name_ << "\n"
       << "  state_dir: " << root_ << "/state\n"
       << "  data_root: " << root_ << "/data\n"
       << "  log_dir: " << root_ << "/log\n"
       << "  uid_base: 2000000\n"
       << "  stop_grace: 2s\n";
  std::istringstream extra(sensor_extra_);
  for (std::string line; std::getline(extra, line);) text << "  " << line << "\n";
  text << "policy:\n";
  std::istringstream policy(policy_yaml_);
  for (std::string line; std::getline(policy, line);) text << "  " << line << "\n";
  text << extra_sections_;
  text << "instruments:\n" << instruments_yaml;
  return text.str();
}

void SensorUnderTest::RewriteConfig(const std::string& instruments_yaml) {
  WriteRawConfig(ConfigText(instruments_yaml));
}

void SensorUnderTest::WriteRawConfig(const std::string& text) {
  auto written = WriteFileAtomic(ConfigPath(), text, 0644);
  if (!written) ADD_FAILURE() << written.error().message;
}

void SensorUnderTest::Start() {
  std::string log = root_ + "/sensord.log";
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  // If the test process dies, sensord gets SIGTERM and cleans up after itself.
  auto pid = SpawnProcess({"setpriv", "--pdeathsig", "TERM", "nsenter", "--net=" + host_.path(),
                           "--", SensordBinary(), "--config", ConfigPath()},
                          fd, fd);
  ::close(fd);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  pid_ = *pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto reply = AdminRequest(SocketPath(), {{"command", "status"}});
    if (reply && reply->value("ok", false)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL() << "sensord exited early: " << ReadFile(log).value();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "sensord did not answer on " << SocketPath() << ": " << ReadFile(log).value();
}

void SensorUnderTest::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  bool exited = WaitForExit(pid_, std::chrono::seconds(60), &status);
  if (!exited) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    ADD_FAILURE() << "sensord did not stop on SIGTERM";
  }
  pid_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "sensord exit status " << status << "\n"
      << ReadFile(root_ + "/sensord.log").value();
  CheckNothingLeftBehind();
}

void SensorUnderTest::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void SensorUnderTest::CheckNothingLeftBehind() const {
  SCOPED_TRACE("sensord log:\n" + ReadFile(root_ + "/sensord.log").value());
  auto containers = RunCommand({"runc", "--root", root_ + "/state/runtime", "list", "-q"});
  ASSERT_TRUE(containers.ok());
  EXPECT_EQ(containers->output, "") << "containers left behind";
  EXPECT_FALSE(NamedNetnsExists(HubNetns())) << "hub namespace left behind";
  EXPECT_FALSE(CgroupExists("/custos/" + name_)) << "cgroup left behind";
  auto mounts = ReadFile("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok());
  EXPECT_EQ(mounts->find(root_), std::string::npos) << "mount left behind under " << root_;
  EXPECT_FALSE(fs::exists(root_ + "/state/bundles")) << "bundles left behind";
  EXPECT_FALSE(fs::exists(root_ + "/state/bus")) << "bus sockets left behind";
  // Interfaces in the test host: only what the test itself made may remain.
  auto links = host_.Run({"ip", "-o", "link", "show"});
  EXPECT_EQ(links.find("cm"), std::string::npos) << "mirror link left in the test host: " << links;
}

nlohmann::json SensorUnderTest::Request(const nlohmann::json& request) const {
  auto reply = AdminRequest(SocketPath(), request);
  if (!reply) {
    ADD_FAILURE() << reply.error().message;
    return nlohmann::json::object();
  }
  return *reply;
}

nlohmann::json SensorUnderTest::Status() const { return Request({{"command", "status"}}); }

nlohmann::json SensorUnderTest::InstrumentStatus(const std::string& name) const {
  for (const auto& instrument : Status().value("instruments", nlohmann::json::array())) {
    if (instrument["name"] == name) return instrument;
  }
  return nlohmann::json::object();
}

nlohmann::json SensorUnderTest::WaitForInstrument(
    const std::string& name, const std::function<bool(const nlohmann::json&)>& predicate,
    std::chrono::seconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json status;
  while (std::chrono::steady_clock::now() < deadline) {
    status = InstrumentStatus(name);
    if (!status.empty() && predicate(status)) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ADD_FAILURE() << "instrument " << name
                << " never reached the expected state; last status: " << status.dump() << "\nlog:\n"
                << Log(name);
  return status;
}

std::string SensorUnderTest::Log(const std::string& name) const {
  auto text = ReadFile(root_ + "/log/" + name + ".log");
  return text ? *text : "";
}

std::string SensorUnderTest::WaitForLog(const std::string& name, const std::string& text,
                                        std::chrono::seconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto log = Log(name);
    if (log.find(text) != std::string::npos) return log;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ADD_FAILURE() << "log of " << name << " never showed '" << text << "':\n"
                << Log(name) << "\nsensord:\n"
                << ReadFile(root_ + "/sensord.log").value();
  return Log(name);
}

std::map<std::string, ProbeResult> SensorUnderTest::ProbeResults(const std::string& name) const {
  std::map<std::string, ProbeResult> results;
  std::istringstream lines(Log(name));
  for (std::string line; std::getline(lines, line);) {
    auto entry = nlohmann::json::parse(line, nullptr, false);
    if (!entry.is_object() || !entry.contains("probe")) continue;
    results[entry["probe"].get<std::string>()] = {entry["blocked"].get<bool>(),
                                                  entry["detail"].get<std::string>()};
  }
  return results;
}

std::string SensorUnderTest::PersistentDir(const std::string& name) const {
  return root_ + "/data/instruments/" + name;
}

}  // namespace custos::testing
