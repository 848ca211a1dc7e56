// Test helpers for the fleet link: an enrolled identity written the way
// `custos sensor enroll` writes it (signed by a real test CA), and child
// processes (the test fleet and test sensor of uplink_test_peer) whose
// output is read line by line with deadlines. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "crypto/authority.h"
#include "sensor/fleet_identity.h"

namespace custos::sensor::testing {

void WriteTestIdentity(const std::filesystem::path& identity_dir,
                       const crypto::IssuingAuthority& authority, const std::string& sensor_id,
                       const FleetEndpoint& channel);

// One line of the test fleet's store file.
struct StoredLine {
  std::uint64_t seq = 0;
  std::string topic;
  std::string instrument;
  std::string event;
};
std::vector<StoredLine> ReadStore(const std::filesystem::path& store);

class Peer {
 public:
  // Starts `argv` with its stdout on a pipe; stderr is inherited.
  explicit Peer(const std::vector<std::string>& argv);
  ~Peer();  // SIGKILL and reap, if still running
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // The next line within `timeout`; nullopt on timeout or end of output.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Reads until a line starts with `prefix` and returns it; nullopt when
  // `timeout` passes first.
  std::optional<std::string> WaitFor(const std::string& prefix, std::chrono::milliseconds timeout);
  // Reads "stored D ..." lines until D >= count; returns the last such line.
  std::optional<std::string> WaitForStored(std::uint64_t count, std::chrono::milliseconds timeout);
  // Every line read so far.
  const std::vector<std::string>& lines() const { return lines_; }

  void Signal(int signal);
  // Waits for the exit and returns the code (128+N for signal N).
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  UniqueFd out_;
  std::string pending_;
  std::vector<std::string> lines_;
};

// The count D of a "stored D received R resent_after_ack A" line.
std::uint64_t StoredCount(const std::string& line);
// The number after `key` in a line of "key value" pairs, or 0.
std::uint64_t Field(const std::string& line, const std::string& key);

}  // namespace custos::sensor::testing
