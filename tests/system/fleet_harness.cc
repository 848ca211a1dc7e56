#include "tests/system/fleet_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/files.h"
#include "common/process.h"
#include "common/unique_fd.h"
#include "sandbox/netns.h"

namespace custos::testing {
namespace fs = std::filesystem;
namespace {

// Runs argv in the network namespace at `netns`; exit code and output.
Result<CommandResult> RunInNetnsWithCode(const std::string& netns, std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"nsenter", "--net=" + netns, "--"});
  return RunCommand(argv);
}

}  // namespace

FleetUnderTest::FleetUnderTest(const TestNetns& host, std::string address)
    : host_(host), address_(std::move(address)) {
  char pattern[] = "/tmp/custos-fleet-XXXXXX";
  char* made = ::mkdtemp(pattern);
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  fs::remove(made);  // init wants to make the folder itself
  dir_ = made;
  auto init = RunChecked(
      {CUSTOS_CLI, "fleet", "init", "--dir", dir_, "--address", address_, "--save-token"});
  if (!init) ADD_FAILURE() << init.error().message;
}

FleetUnderTest::~FleetUnderTest() {
  if (pid_ > 0) Stop();
  std::error_code ignored;
  if (!dir_.empty() && std::getenv("CUSTOS_TEST_KEEP") == nullptr) fs::remove_all(dir_, ignored);
}

void FleetUnderTest::Start() {
  UniqueFd log(
      ::open((dir_ + "/fleetd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  auto pid = SpawnProcess(
      {"setpriv", "--pdeathsig", "TERM", "nsenter", "--net=" + host_.path(), CUSTOS_FLEETD, "--dir",
       dir_, "--api", address_ + ":8443", "--channel", address_ + ":8444", "--heartbeat", "1"},
      log.get(), log.get());
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  pid_ = *pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Api("GET", "/v1/sensors", "", AdminToken()).first == 200) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL() << "fleetd exited:\n" << Log();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL() << "fleetd's API never answered:\n" << Log();
}

void FleetUnderTest::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void FleetUnderTest::Kill() {
  if (pid_ <= 0) return;
  // setpriv and nsenter exec, so pid_ is fleetd itself.
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::pair<int, std::string> FleetUnderTest::TryCli(std::vector<std::string> args) const {
  std::vector<std::string> argv{CUSTOS_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--fleet-dir", dir_, "--api", ApiAddress()});
  auto result = RunInNetnsWithCode(host_.path(), argv);
  if (!result) return {-1, result.error().message};
  return {result->exit_code, result->output};
}

std::string FleetUnderTest::Cli(std::vector<std::string> args) const {
  auto [code, output] = TryCli(args);
  if (code != 0)
    ADD_FAILURE() << "custos " << JoinArgs(args) << " failed (" << code << "): " << output;
  return output;
}

std::string FleetUnderTest::CreateToken(const std::string& tenant, const std::string& ttl) const {
  auto reply = nlohmann::json::parse(
      Cli({"fleet", "token", "create", "--tenant", tenant, "--ttl", ttl, "--json"}), nullptr,
      false);
  if (!reply.is_object() || !reply.contains("token")) {
    ADD_FAILURE() << "no token in " << reply.dump();
    return "";
  }
  return reply["token"].get<std::string>();
}

std::vector<nlohmann::json> FleetUnderTest::Events(const std::string& sensor,
                                                   const std::string& type) const {
  std::vector<nlohmann::json> events;
  std::string after;
  for (int page = 0; page < 1000; ++page) {
    std::vector<std::string> args{"fleet", "events",  "--sensor", sensor,  "--type",
                                  type,    "--limit", "1000",     "--json"};
    if (!after.empty()) args.insert(args.end(), {"--after", after});
    auto reply = nlohmann::json::parse(Cli(args), nullptr, false);
    if (!reply.is_object()) break;
    for (auto& event : reply["events"]) events.push_back(event);
    if (reply["next_after"].is_null() || reply["events"].empty()) break;
    after = std::to_string(reply["next_after"].get<long long>());
  }
  return events;
}

std::pair<int, std::string> FleetUnderTest::Api(const std::string& method, const std::string& path,
                                                const std::string& body,
                                                const std::string& token) const {
  std::vector<std::string> argv{"curl",
                                "-s",
                                "-o",
                                "-",
                                "-w",
                                "\n%{http_code}",
                                "-X",
                                method,
                                "--cacert",
                                dir_ + "/root/root.crt",
                                "https://" + ApiAddress() + path};
  if (!token.empty()) argv.insert(argv.end(), {"-H", "Authorization: Bearer " + token});
  if (!body.empty())
    argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
  auto result = RunInNetnsWithCode(host_.path(), argv);
  if (!result || result->exit_code != 0) return {0, result ? result->output : ""};
  auto cut = result->output.rfind('\n');
  return {std::atoi(result->output.c_str() + cut + 1), result->output.substr(0, cut)};
}

std::string FleetUnderTest::AdminToken() const {
  auto token = ReadFile(dir_ + "/admin.token");
  if (!token) return "";
  std::string text = *token;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string FleetUnderTest::Log() const {
  auto text = ReadFile(dir_ + "/fleetd.log");
  return text ? *text : "";
}

std::string EnrollSensor(const SensorUnderTest& sensor, const FleetUnderTest& fleet,
                         const std::string& token) {
  // As an operator should: from a file, so the token is not in the process list.
  const std::string token_file = sensor.root() + "/enroll-token";
  std::ofstream(token_file) << token << "\n";
  sensor.host().Run({CUSTOS_CLI, "sensor", "enroll", "--fleet", fleet.ApiAddress(), "--token-file",
                     token_file, "--identity", sensor.root() + "/identity", "--name",
                     sensor.name()});
  std::filesystem::remove(token_file);
  auto identity = ReadFile(sensor.root() + "/identity/fleet.json");
  if (!identity) {
    ADD_FAILURE() << identity.error().message;
    return "";
  }
  return nlohmann::json::parse(*identity).value("sensor_id", "");
}

}  // namespace custos::testing
