// sensord's side of the link to its fleet, built from the configuration's
// `fleet:` section and the identity `custos sensor enroll` wrote: it owns
// the uplink, feeds it the bus events of `policy.uplink`, keeps the status
// snapshot its heartbeats report fresh, and runs what the fleet asks for
// (desired states, commands) on sensord's event loop through the same path
// as a reload. Event-loop thread only, except the function Tap returns,
// which the bus broker's thread calls.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "bus/broker.h"
#include "common/result.h"
#include "sensor/event_loop.h"
#include "sensor/sensor_config.h"
#include "sensor/uplink.h"
#include "sensor/uplink_feed.h"
#include "sensor/uplink_mailbox.h"

namespace custos::sensor {

class FleetLink {
 public:
  // What sensord lends the link; each is called on the event loop.
  struct Actions {
    std::function<Status(const SensorConfig&)> apply;  // the reload path
    std::function<nlohmann::json()> status;            // Supervisor::StatusJson
    std::function<Status(const std::string& instrument)> restart;
    // The fleet ordered a re-key: re-encrypt the data root under the
    // pending key. Returns once that is under way (or refused).
    std::function<Status()> rekey;
  };

  // nullptr when `config` has no fleet: section, or when the identity is
  // missing or unusable: then `why_not` says why (sensord runs alone).
  static std::unique_ptr<FleetLink> Create(const SensorConfig& config,
                                           const std::string& config_path,
                                           std::uint64_t state_version, std::string* why_not);
  ~FleetLink();

  // For Supervisor::SetEventTap, before the broker starts.
  bus::PlatformSink Tap() const;
  // Opens the spool and starts the uplink (after Supervisor::Prepare).
  Status Start(EventLoop& loop, Actions actions);
  // Takes the new policy.uplink topics of a configuration just applied.
  void Applied(const SensorConfig& config);
  nlohmann::json StatusJson() const;
  // Ends the uplink; what the feed still holds goes to the spool first.
  void Stop();

 private:
  FleetLink(const SensorConfig& config, std::string config_path, UplinkOptions options);
  nlohmann::json RunCommand(const nlohmann::json& command);
  void RefreshStatus();

  const std::string config_path_;
  UplinkOptions options_;
  std::shared_ptr<UplinkFeed> feed_;
  Actions actions_;
  EventLoop* loop_ = nullptr;
  EventLoop::TimerId refresh_timer_ = 0;
  std::unique_ptr<UplinkMailbox> mailbox_;
  std::unique_ptr<Uplink> uplink_;
};

}  // namespace custos::sensor
