// Keeps the sensor's instruments running as its configuration says: starts
// and stops them, restarts a crashed one with exponential backoff without
// touching the others, sweeps expired files on a schedule, and applies a
// new configuration by changing only what changed. Event-loop thread only.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "bus/broker.h"
#include "common/result.h"
#include "sensor/event_journal.h"
#include "sensor/event_loop.h"
#include "sensor/instrument.h"
#include "sensor/sensor_config.h"
#include "sensor/sensor_platform.h"

namespace custos {

class Supervisor {
 public:
  Supervisor(EventLoop& loop, const SensorConfig& config);
  ~Supervisor();

  // Also hands every bus event to `tap` (the uplink's feed), on the broker's
  // thread. Set before Prepare.
  void SetEventTap(bus::PlatformSink tap) { event_tap_ = std::move(tap); }
  // Creates the sensor's directories and hub namespace and removes what a
  // previous run that died may have left.
  Status Prepare();
  // Starts, stops and restarts instruments so the running set matches.
  // Sensor-level fields that cannot change at run time are refused.
  Status Apply(const SensorConfig& config);
  Status StartInstrument(const std::string& name);
  Status StopInstrument(const std::string& name);
  Status RestartInstrument(const std::string& name);
  // Reaps exited containers (on SIGCHLD) and schedules their restarts.
  void ReapChildren();
  // Runs one retention sweep over every instrument now.
  void SweepRetention();
  // Stops everything and removes every trace: containers, netns, cgroups.
  void Shutdown();

  nlohmann::json StatusJson() const;
  const EventJournal& journal() const { return journal_; }
  const SensorPlatform& platform() const { return platform_; }
  // sensord's main sets the encrypted store on it once the data key arrives.
  SensorPlatform& platform() { return platform_; }

 private:
  struct Entry {
    std::unique_ptr<Instrument> instrument;
    int consecutive_failures = 0;
    EventLoop::TimerId restart_timer = 0;
    std::uint64_t files_expired = 0;
  };

  void Launch(Entry& entry);
  void ReattachPassive();
  void ScheduleRestart(Entry& entry);
  void CancelRestart(Entry& entry);
  void ScheduleSweep();
  Entry* Find(const std::string& name);

  EventLoop& loop_;
  SensorPlatform platform_;
  EventJournal journal_;
  bus::PlatformSink event_tap_;
  std::unique_ptr<bus::Broker> broker_;
  std::map<std::string, Entry> entries_;
  EventLoop::TimerId sweep_timer_ = 0;
  bool shut_down_ = false;
};

}  // namespace custos
