// The platform's subscriber to every bus topic: keeps the latest events and
// a count per topic, for `custos sensor events` and status. The uplink to
// the fleet (a later issue) takes events from the same place. Thread-safe:
// the broker thread records, the event loop reads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace custos {

class EventJournal {
 public:
  explicit EventJournal(std::size_t capacity = 1000) : capacity_(capacity) {}

  void Record(std::string_view topic, std::string_view sender, std::string_view payload);
  // The newest `limit` events (oldest first), optionally of one topic; each
  // event's payload is returned as the text the instrument published.
  nlohmann::json Recent(const std::string& topic, std::size_t limit) const;
  std::map<std::string, std::uint64_t> Counts() const;

 private:
  struct Entry {
    std::string topic;
    std::string sender;
    std::string payload;
  };
  static constexpr std::size_t kMaxBytes = 16u << 20;
  std::size_t capacity_;
  std::size_t bytes_ = 0;
  mutable std::mutex mutex_;
  std::deque<Entry> entries_;
  std::map<std::string, std::uint64_t> counts_;
};

}  // namespace custos
