// One instrument's container: builds its bundle, storage and network, starts
// it with the OCI runtime, stops it, and undoes everything it set up. Owned
// by the Supervisor and used only from the event loop thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "sandbox/container_spec.h"
#include "sandbox/veth.h"
#include "sensor/log_pump.h"
#include "sensor/ring_grant.h"
#include "sensor/sensor_config.h"
#include "sensor/sensor_platform.h"

namespace custos {

enum class InstrumentState { kStopped, kRunning, kBackoff, kExited };

const char* InstrumentStateName(InstrumentState state);

class Instrument {
 public:
  Instrument(InstrumentConfig config, SensorPlatform& platform);
  ~Instrument();
  Instrument(const Instrument&) = delete;
  Instrument& operator=(const Instrument&) = delete;

  // Starts the container; on failure nothing it set up is left behind.
  Status Start();
  // SIGTERM, up to the grace period, then SIGKILL; reaps and cleans up.
  void Stop();
  // The container's init was reaped with `exit_code`; cleans up after it.
  void Exited(int exit_code);

  // What the Supervisor's restart policy needs.
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void set_state(InstrumentState state) { state_ = state; }
  InstrumentState state() const { return state_; }
  void set_last_error(std::string error) { last_error_ = std::move(error); }
  std::chrono::steady_clock::duration Uptime() const;
  int restarts() const { return restarts_; }
  void CountRestart() { ++restarts_; }

  const InstrumentConfig& config() const { return config_; }
  std::string persistent_dir() const;
  nlohmann::json StatusJson() const;

 private:
  // Assembles the root filesystem and describes the container.
  Result<ContainerSpec> BuildSpec(std::uint32_t host_uid, const std::string& persistent);
  // The document the instrument reads from its settings file or the bus.
  std::string SettingsDocument() const;
  Status WriteSettings(const std::string& path, std::uint32_t host_uid) const;
  Status OpenBusEndpoint(std::uint32_t host_uid, const std::string& persistent);
  Status PrepareUiDirectory(std::uint32_t host_uid);
  Status AttachNetwork();
  Status AttachCapture(const std::string& pin);
  // Takes a slot of the capture engine's ring for a `ring` instrument.
  Status AcquireRing();
  void ReleaseRing();
  // Tells the capture engine which instrument a tap end or ring slot feeds.
  Status WriteTapInfo(const std::string& key) const;
  void Cleanup();

  InstrumentConfig config_;
  SensorPlatform& platform_;
  InstrumentState state_ = InstrumentState::kStopped;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::unique_ptr<LogPump> log_;  // its stdout and stderr, while it runs
  bool netns_pinned_ = false;
  bool interface_moved_ = false;
  std::optional<MirrorLink> mirror_;
  std::optional<RingGrant> ring_;
  std::chrono::steady_clock::time_point started_at_{};
  int restarts_ = 0;
  std::optional<int> last_exit_;
  std::uint64_t oom_kills_ = 0;  // by the cgroup's memory limit, over all runs
  std::string last_error_;
};

}  // namespace custos
