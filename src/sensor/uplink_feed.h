// The hand-over of bus events from the broker's thread to the uplink. The
// broker calls Offer for every event it sees; events of the topics named in
// policy.uplink are queued, up to a byte bound, for the uplink's spool
// writer, which appends them to the spool and fsyncs once per group. Offer
// never waits for I/O: it holds a mutex only to push onto the queue, and
// when the queue is full it drops the event and counts it.
// Thread-safe: Offer and SetTopics from any thread, Take from one consumer.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace custos::sensor {

struct FeedEvent {
  std::string topic;
  std::string instrument;  // the publisher, as the broker knows it
  std::string payload;
};

struct FeedCounters {
  std::uint64_t offered = 0;       // events of forwarded topics
  std::uint64_t dropped_full = 0;  // refused because the queue was full
  std::uint64_t queued = 0;        // waiting for the writer now
  std::uint64_t queued_bytes = 0;
};

class UplinkFeed {
 public:
  explicit UplinkFeed(std::size_t max_bytes = 16u << 20) : max_bytes_(max_bytes) {}

  void SetTopics(const std::vector<std::string>& topics);
  void Offer(std::string_view topic, std::string_view instrument, std::string_view payload);

  // Waits until events are queued or Close was called, then returns every
  // queued event; nullopt once closed and drained.
  std::optional<std::vector<FeedEvent>> Take();
  // Wakes the consumer; later Offers are dropped without counting.
  void Close();

  FeedCounters Counters() const;

 private:
  const std::size_t max_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::set<std::string, std::less<>> topics_;
  std::deque<FeedEvent> queue_;
  std::size_t bytes_ = 0;
  bool closed_ = false;
  FeedCounters counters_;
};

}  // namespace custos::sensor
