// Hands tasks from other threads (the uplink's network thread) to sensord's
// single-threaded event loop: Post queues a task and wakes the loop through
// an eventfd; the loop runs queued tasks in order. Post is thread-safe;
// the mailbox itself is created and destroyed on the loop's thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "sensor/event_loop.h"

namespace custos::sensor {

class UplinkMailbox {
 public:
  static Result<std::unique_ptr<UplinkMailbox>> Create(EventLoop& loop);
  ~UplinkMailbox();
  UplinkMailbox(const UplinkMailbox&) = delete;
  UplinkMailbox& operator=(const UplinkMailbox&) = delete;

  void Post(std::function<void()> task);

 private:
  explicit UplinkMailbox(EventLoop& loop) : loop_(loop) {}
  void Drain();

  EventLoop& loop_;
  UniqueFd event_fd_;
  std::mutex mutex_;
  std::vector<std::function<void()>> tasks_;
};

}  // namespace custos::sensor
