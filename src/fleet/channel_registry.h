// The sensors connected to fleetd's channel right now: one live link per
// sensor id, so the API can push a desired state to it, show it connected
// with its latest heartbeat, and a revocation can cut it off. A sensor that
// connects again replaces (and disconnects) its older link. Thread-safe:
// one mutex; links are called outside it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "fleet/fleet_store.h"

namespace custos::fleet {

// What the rest of fleetd may ask of one live channel. Both calls return at
// once; the work happens on the channel's own executor.
class ChannelLink {
 public:
  virtual ~ChannelLink() = default;
  // Sends {"type": "error", "detail": reason} and closes the connection.
  virtual void Disconnect(std::string reason) = 0;
  // Sends the desired state unless the sensor already has this version or newer.
  virtual void OfferDesiredState(std::int64_t version, std::string config) = 0;
  // Sends a command without arguments ("rekey"), after the welcome.
  virtual void SendCommand(std::string command) = 0;
};

struct LiveSensor {
  std::string remote;  // peer address
  TimePoint connected_at;
  std::optional<TimePoint> last_heartbeat;
  std::string health;  // JSON of the latest heartbeat, "" before the first
};

class ChannelRegistry {
 public:
  void Add(const std::string& sensor_id, const std::shared_ptr<ChannelLink>& link,
           std::string remote);
  // Only removes `link`, not a newer link of the same sensor.
  void Remove(const std::string& sensor_id, const ChannelLink* link);
  void NoteHeartbeat(const std::string& sensor_id, const ChannelLink* link, std::string health);

  std::shared_ptr<ChannelLink> Find(std::string_view sensor_id) const;
  std::optional<LiveSensor> Live(std::string_view sensor_id) const;
  std::size_t size() const;

  // True if the sensor had a live link.
  bool Disconnect(std::string_view sensor_id, const std::string& reason);
  void DisconnectAll(const std::string& reason);
  // Waits until every link has been removed; false on timeout.
  bool WaitUntilEmpty(std::chrono::milliseconds timeout);

 private:
  struct Entry {
    std::weak_ptr<ChannelLink> link;
    const ChannelLink* identity = nullptr;
    LiveSensor live;
  };

  mutable std::mutex mutex_;
  std::condition_variable emptied_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace custos::fleet
