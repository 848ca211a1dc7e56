#include "sensor/event_journal.h"

namespace custos {

void EventJournal::Record(std::string_view topic, std::string_view sender,
                          std::string_view payload) {
  std::lock_guard lock(mutex_);
  ++counts_[std::string(topic)];
  entries_.push_back({std::string(topic), std::string(sender), std::string(payload)});
  bytes_ += payload.size();
  while (entries_.size() > capacity_ || bytes_ > kMaxBytes) {
    bytes_ -= entries_.front().payload.size();
    entries_.pop_front();
  }
}

nlohmann::json EventJournal::Recent(const std::string& topic, std::size_t limit) const {
  std::lock_guard lock(mutex_);
  auto events = nlohmann::json::array();
  for (auto it = entries_.rbegin(); it != entries_.rend() && events.size() < limit; ++it) {
    if (!topic.empty() && it->topic != topic) continue;
    // Kept as text: an instrument's payload is not parsed inside sensord,
    // where a hostile one (deeply nested, not UTF-8) could hurt it.
    events.push_back({{"topic", it->topic}, {"instrument", it->sender}, {"event", it->payload}});
  }
  std::reverse(events.begin(), events.end());
  return events;
}

std::map<std::string, std::uint64_t> EventJournal::Counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

}  // namespace custos
