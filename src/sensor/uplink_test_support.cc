#include "sensor/uplink_test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "common/files.h"
#include "common/process.h"
#include "crypto/key_file.h"
#include "crypto/test_authority.h"

namespace custos::sensor::testing {

using crypto::testing::Must;

void WriteTestIdentity(const std::filesystem::path& identity_dir,
                       const crypto::IssuingAuthority& authority, const std::string& sensor_id,
                       const FleetEndpoint& channel) {
  auto sensor = crypto::testing::EnrollTestSensor(authority, sensor_id, "acme");
  IdentityPaths paths(identity_dir);
  Must(MakeDirectories(identity_dir, 0700));
  Must(crypto::WritePrivateKeyFile(paths.key, sensor.key));
  Must(WriteFileAtomic(paths.certificate, sensor.certificate.certificate_pem));
  Must(WriteFileAtomic(paths.chain, sensor.certificate.chain_pem));
  Must(WriteFileAtomic(paths.root, authority.root_pem()));
  nlohmann::json fleet = {{"sensor_id", sensor_id},
                          {"tenant", "acme"},
                          {"api", "127.0.0.1:1"},
                          {"channel", channel.ToString()}};
  Must(WriteFileAtomic(paths.fleet, fleet.dump()));
}

std::vector<StoredLine> ReadStore(const std::filesystem::path& store) {
  std::vector<StoredLine> stored;
  std::ifstream in(store);
  std::string line;
  while (std::getline(in, line)) {
    auto record = nlohmann::json::parse(line, nullptr, false);
    if (!record.is_object()) throw std::runtime_error("bad store line: " + line);
    stored.push_back({record["seq"].get<std::uint64_t>(), record["topic"].get<std::string>(),
                      record["instrument"].get<std::string>(), record["event"].get<std::string>()});
  }
  return stored;
}

Peer::Peer(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  out_.reset(fds[0]);
  UniqueFd write_end(fds[1]);
  pid_ = Must(SpawnProcess(argv, write_end.get(), -1));
}

Peer::~Peer() {
  if (pid_ > 0) {
    Signal(SIGKILL);
    Wait();
  }
}

std::optional<std::string> Peer::ReadLine(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto newline = pending_.find('\n'); newline != std::string::npos) {
      std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      lines_.push_back(line);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !out_.valid()) return std::nullopt;
    pollfd poll_fd{out_.get(), POLLIN, 0};
    int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char buffer[4096];
    ssize_t n = ::read(out_.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      out_.reset();
      return std::nullopt;
    }
    pending_.append(buffer, static_cast<std::size_t>(n));
  }
}

std::optional<std::string> Peer::WaitFor(const std::string& prefix,
                                         std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto line = ReadLine(std::max(left, std::chrono::milliseconds(0)));
    if (!line) return std::nullopt;
    if (line->rfind(prefix, 0) == 0) return line;
  }
}

std::optional<std::string> Peer::WaitForStored(std::uint64_t count,
                                               std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto line = WaitFor("stored ", std::max(left, std::chrono::milliseconds(0)));
    if (!line) return std::nullopt;
    if (StoredCount(*line) >= count) return line;
  }
}

void Peer::Signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

int Peer::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return ExitCodeFromStatus(status);
}

std::uint64_t Field(const std::string& line, const std::string& key) {
  std::istringstream words(line);
  std::string word;
  while (words >> word) {
    if (word == key) {
      std::uint64_t value = 0;
      words >> value;
      return value;
    }
  }
  return 0;
}

std::uint64_t StoredCount(const std::string& line) { return Field(line, "stored"); }

}  // namespace custos::sensor::testing
