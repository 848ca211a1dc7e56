#include "fleet/event_writer.h"

#include "common/log.h"

namespace custos::fleet {

EventWriter::EventWriter(FleetStore& store, std::size_t max_events)
    : store_(store), max_events_(max_events), thread_([this] { Run(); }) {}

EventWriter::~EventWriter() { Stop(); }

void EventWriter::Submit(std::string sensor_id, std::vector<IncomingEvent> events, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({SensorBatch{std::move(sensor_id), std::move(events)}, std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(Error{"fleetd is stopping"});
}

void EventWriter::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void EventWriter::Run() {
  for (;;) {
    std::vector<Pending> group;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is stored
      std::size_t events = 0;
      while (!queue_.empty() && (group.empty() || events < max_events_)) {
        events += queue_.front().batch.events.size();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<SensorBatch> batches;
    batches.reserve(group.size());
    for (Pending& pending : group) batches.push_back(std::move(pending.batch));
    auto outcomes = store_.StoreEventBatches(batches);
    if (!outcomes.ok())
      spdlog::error("storing {} event batch(es): {}", batches.size(), outcomes.error().message);
    for (std::size_t i = 0; i < group.size(); ++i) {
      if (outcomes.ok()) {
        group[i].done((*outcomes)[i]);
      } else {
        group[i].done(outcomes.error());
      }
    }
  }
}

}  // namespace custos::fleet
