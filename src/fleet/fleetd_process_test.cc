// The real binaries end to end: `custos fleet init`, `custos-fleetd`, the
// `custos fleet` commands against it, a sensor enrolling over HTTPS, and
// a clean stop on SIGTERM. Loopback only.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "common/files.h"
#include "common/process.h"
#include "common/unique_fd.h"
#include "crypto/test_authority.h"
#include "fleet/fleet_test_support.h"
#include "fleet/https_client.h"

namespace custos::fleet {
namespace {

using crypto::testing::Must;
using crypto::testing::TempDir;
using nlohmann::json;

// custos-fleetd as a child whose stderr (its log) is collected by a thread.
class Fleetd {
 public:
  explicit Fleetd(const std::string& dir) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    pid_ = Must(SpawnProcess(
        {CUSTOS_FLEETD, "--dir", dir, "--api", "127.0.0.1:0", "--channel", "127.0.0.1:0"}, -1,
        write_end.get()));
    write_end.reset();
    reader_ = std::thread([this, fd = std::move(read_end)] {
      char buffer[4096];
      for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard lock(mutex_);
        if (n <= 0) {
          eof_ = true;
          changed_.notify_all();
          return;
        }
        log_.append(buffer, static_cast<std::size_t>(n));
        changed_.notify_all();
      }
    });
  }

  ~Fleetd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    reader_.join();
  }

  // Waits until the log matches `pattern`; the first group of the match.
  std::string WaitForLog(const std::string& pattern) {
    std::regex expression(pattern);
    std::unique_lock lock(mutex_);
    std::smatch match;
    bool found = changed_.wait_for(lock, std::chrono::seconds(20), [&] {
      return std::regex_search(log_, match, expression) || eof_;
    });
    if (!found || match.empty()) {
      ADD_FAILURE() << "fleetd log never matched " << pattern << ":\n" << log_;
      return "";
    }
    return match.size() > 1 ? match[1].str() : match[0].str();
  }

  // SIGTERM, then the exit code (-1 if it did not exit in 10 s).
  int Terminate() {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 1000; ++i) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return ExitCodeFromStatus(status);
      }
      ::poll(nullptr, 0, 10);
    }
    return -1;
  }

  std::string log() {
    std::lock_guard lock(mutex_);
    return log_;
  }

 private:
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string log_;
  bool eof_ = false;
};

struct CliRun {
  int exit_code;
  std::string output;
};

CliRun Custos(std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), CUSTOS_CLI);
  auto result = Must(RunCommand(arguments));
  return {result.exit_code, result.output};
}

mode_t ModeOf(const std::filesystem::path& path) {
  struct stat status {};
  EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
  return status.st_mode & 0777;
}

TEST(FleetdProcessTest, InitServeOperateAndStop) {
  TempDir temp;
  std::string dir = (temp.path() / "fleet").string();
  CliRun init =
      Custos({"fleet", "init", "--dir", dir, "--address", "fleet.test,198.18.0.1", "--save-token"});
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_EQ(ModeOf(dir), 0700u);
  EXPECT_EQ(ModeOf(dir + "/admin.token"), 0600u);
  EXPECT_EQ(ModeOf(dir + "/admin.token.sha256"), 0600u);
  EXPECT_EQ(ModeOf(dir + "/master.key"), 0600u);
  std::string admin_token = Must(ReadFile(dir + "/admin.token"));
  admin_token.pop_back();
  EXPECT_EQ(Must(ReadFile(dir + "/admin.token.sha256")), Sha256Hex(admin_token) + "\n");
  CliRun again = Custos({"fleet", "init", "--dir", dir, "--address", "fleet.test"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;

  Fleetd fleetd(dir);
  std::string api_port = fleetd.WaitForLog(R"(API on 127\.0\.0\.1:(\d+))");
  ASSERT_FALSE(api_port.empty());
  std::string api = "127.0.0.1:" + api_port;
  std::vector<std::string> connection = {"--fleet-dir", dir, "--api", api};
  auto with = [&connection](std::vector<std::string> arguments) {
    arguments.insert(arguments.end(), connection.begin(), connection.end());
    return Custos(arguments);
  };

  CliRun created = with({"fleet", "token", "create", "--tenant", "acme", "--ttl", "10m", "--json"});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  std::string token = json::parse(created.output)["token"];
  EXPECT_TRUE(std::regex_match(token, std::regex(R"([A-Za-z0-9_-]{43}\.[0-9a-f]{64})"))) << token;

  // A sensor enrolls with it over the API port, trusting only the root.
  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  HttpsClientOptions options{HostPort{"127.0.0.1", static_cast<std::uint16_t>(std::stoi(api_port))},
                             Must(ReadFile(dir + "/root/root.crt")), ""};
  auto enrolled = Must(HttpsCall(options, "POST", "/v1/enroll", testing::EnrollBody(token, key)));
  ASSERT_EQ(enrolled.status, 200) << enrolled.body;
  std::string id = json::parse(enrolled.body)["sensor_id"];

  CliRun tokens = with({"fleet", "token", "list"});
  EXPECT_EQ(tokens.exit_code, 0) << tokens.output;
  EXPECT_NE(tokens.output.find(id), std::string::npos) << tokens.output;
  EXPECT_EQ(tokens.output.find(token.substr(0, 43)), std::string::npos);
  CliRun sensors = with({"fleet", "sensors"});
  EXPECT_EQ(sensors.exit_code, 0) << sensors.output;
  EXPECT_NE(sensors.output.find(id), std::string::npos) << sensors.output;
  CliRun one = with({"fleet", "sensors", id, "--json"});
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_EQ(json::parse(one.output)["tenant"], "acme");

  std::string state_file = (temp.path() / "state.yaml").string();
  Must(WriteFileAtomic(state_file, "policy:\n  uplink: [dns]\ninstruments: []\n"));
  CliRun state = with({"fleet", "state", "set", id, state_file});
  EXPECT_EQ(state.exit_code, 0) << state.output;
  EXPECT_NE(state.output.find("version 1"), std::string::npos) << state.output;
  CliRun events = with({"fleet", "events", "--type", "dns", "--since", "2026-01-01T00:00:00Z"});
  EXPECT_EQ(events.exit_code, 0) << events.output;

  CliRun revoked = with({"sensor", "revoke", id});
  EXPECT_EQ(revoked.exit_code, 0) << revoked.output;
  EXPECT_NE(revoked.output.find("revoked"), std::string::npos);
  CliRun refused = with({"fleet", "state", "set", id, state_file});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("409"), std::string::npos) << refused.output;
  CliRun unknown = with({"sensor", "revoke", "sensor-nobody"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("404"), std::string::npos) << unknown.output;

  // A wrong token file is refused by the server.
  std::string wrong = (temp.path() / "wrong.token").string();
  Must(WriteFileAtomic(wrong, "not-the-token\n", 0600));
  CliRun denied = Custos(
      {"fleet", "sensors", "--api", api, "--token-file", wrong, "--ca", dir + "/root/root.crt"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_NE(denied.output.find("401"), std::string::npos) << denied.output;

  EXPECT_EQ(fleetd.Terminate(), 0) << fleetd.log();
  EXPECT_NE(fleetd.log().find("fleetd stopped"), std::string::npos);
}

TEST(FleetdProcessTest, RefusesAFolderWithoutAFleet) {
  TempDir temp;
  Fleetd fleetd(temp.path().string());
  fleetd.WaitForLog("cannot read");
  EXPECT_NE(fleetd.Terminate(), 0);
}

}  // namespace
}  // namespace custos::fleet
