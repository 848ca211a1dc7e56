// Group commit for event batches. Every committed transaction costs an
// fsync (the store runs synchronous=FULL so an ack survives a power cut),
// and a disk manages a few hundred of those a second; a thousand sensors
// each sending small batches would wait on each other's fsyncs. So the
// channel sessions hand their batches to one EventWriter thread, which
// stores everything queued meanwhile in one transaction, then reports each
// batch's outcome. Batches are stored and reported in the order they were
// submitted, so one sensor's acks keep their order.
// Thread-safe: Submit from any thread; callbacks run on the writer thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "fleet/fleet_store.h"

namespace custos::fleet {

class EventWriter {
 public:
  using Done = std::function<void(const Result<StoreEventsResult>& outcome)>;

  // One transaction takes queued batches until it holds `max_events`
  // (always at least one batch).
  explicit EventWriter(FleetStore& store, std::size_t max_events = 20000);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // `done` is called once, after the batch's transaction ended.
  void Submit(std::string sensor_id, std::vector<IncomingEvent> events, Done done);
  // Stores what is queued, then ends the thread; later Submits fail at once.
  void Stop();

 private:
  struct Pending {
    SensorBatch batch;
    Done done;
  };
  void Run();

  FleetStore& store_;
  const std::size_t max_events_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace custos::fleet
