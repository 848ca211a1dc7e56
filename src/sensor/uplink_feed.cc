#include "sensor/uplink_feed.h"

namespace custos::sensor {

void UplinkFeed::SetTopics(const std::vector<std::string>& topics) {
  std::lock_guard lock(mutex_);
  topics_ = std::set<std::string, std::less<>>(topics.begin(), topics.end());
}

void UplinkFeed::Offer(std::string_view topic, std::string_view instrument,
                       std::string_view payload) {
  std::size_t size = topic.size() + instrument.size() + payload.size();
  {
    std::lock_guard lock(mutex_);
    if (closed_ || !topics_.contains(topic)) return;
    ++counters_.offered;
    if (bytes_ + size > max_bytes_) {
      ++counters_.dropped_full;
      return;
    }
    queue_.push_back({std::string(topic), std::string(instrument), std::string(payload)});
    bytes_ += size;
  }
  ready_.notify_one();
}

std::optional<std::vector<FeedEvent>> UplinkFeed::Take() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [this] { return closed_ || !queue_.empty(); });
  if (queue_.empty()) return std::nullopt;
  std::vector<FeedEvent> events(std::make_move_iterator(queue_.begin()),
                                std::make_move_iterator(queue_.end()));
  queue_.clear();
  bytes_ = 0;
  return events;
}

void UplinkFeed::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  ready_.notify_all();
}

FeedCounters UplinkFeed::Counters() const {
  std::lock_guard lock(mutex_);
  FeedCounters counters = counters_;
  counters.queued = queue_.size();
  counters.queued_bytes = bytes_;
  return counters;
}

}  // namespace custos::sensor
