#include "fleet/channel_registry.h"

#include <vector>

namespace custos::fleet {

void ChannelRegistry::Add(const std::string& sensor_id, const std::shared_ptr<ChannelLink>& link,
                          std::string remote) {
  std::shared_ptr<ChannelLink> replaced;
  {
    std::lock_guard lock(mutex_);
    Entry& entry = entries_[sensor_id];
    replaced = entry.link.lock();
    entry.link = link;
    entry.identity = link.get();
    entry.live = LiveSensor{std::move(remote), std::chrono::system_clock::now(), {}, ""};
  }
  // A sensor keeps one channel; the newer one is the one that is alive.
  if (replaced) replaced->Disconnect("replaced by a newer connection of this sensor");
}

void ChannelRegistry::Remove(const std::string& sensor_id, const ChannelLink* link) {
  std::lock_guard lock(mutex_);
  auto found = entries_.find(sensor_id);
  if (found == entries_.end() || found->second.identity != link) return;
  entries_.erase(found);
  if (entries_.empty()) emptied_.notify_all();
}

void ChannelRegistry::NoteHeartbeat(const std::string& sensor_id, const ChannelLink* link,
                                    std::string health) {
  std::lock_guard lock(mutex_);
  auto found = entries_.find(sensor_id);
  if (found == entries_.end() || found->second.identity != link) return;
  found->second.live.last_heartbeat = std::chrono::system_clock::now();
  found->second.live.health = std::move(health);
}

std::shared_ptr<ChannelLink> ChannelRegistry::Find(std::string_view sensor_id) const {
  std::lock_guard lock(mutex_);
  auto found = entries_.find(sensor_id);
  return found == entries_.end() ? nullptr : found->second.link.lock();
}

std::optional<LiveSensor> ChannelRegistry::Live(std::string_view sensor_id) const {
  std::lock_guard lock(mutex_);
  auto found = entries_.find(sensor_id);
  if (found == entries_.end()) return std::nullopt;
  return found->second.live;
}

std::size_t ChannelRegistry::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

bool ChannelRegistry::Disconnect(std::string_view sensor_id, const std::string& reason) {
  std::shared_ptr<ChannelLink> link = Find(sensor_id);
  if (!link) return false;
  link->Disconnect(reason);
  return true;
}

void ChannelRegistry::DisconnectAll(const std::string& reason) {
  std::vector<std::shared_ptr<ChannelLink>> links;
  {
    std::lock_guard lock(mutex_);
    for (const auto& entry : entries_) {
      if (auto link = entry.second.link.lock()) links.push_back(std::move(link));
    }
  }
  for (const auto& link : links) link->Disconnect(reason);
}

bool ChannelRegistry::WaitUntilEmpty(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return emptied_.wait_for(lock, timeout, [this] { return entries_.empty(); });
}

}  // namespace custos::fleet
