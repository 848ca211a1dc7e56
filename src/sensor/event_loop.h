// A single-threaded epoll loop with timers and signals (via signalfd). The
// sensor daemon runs everything on it, so its parts need no locks.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace custos {

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void()>;
  using TimerId = std::uint64_t;

  // Blocks `signals` for the process and delivers them to OnSignal handlers.
  static Result<std::unique_ptr<EventLoop>> Create(const std::vector<int>& signals);

  Status WatchReadable(int fd, Callback callback);
  void Unwatch(int fd);
  TimerId After(std::chrono::milliseconds delay, Callback callback);
  void Cancel(TimerId timer);
  void OnSignal(int signal, Callback callback);

  // Runs until Quit is called.
  void Run();
  void Quit() { running_ = false; }

 private:
  EventLoop() = default;
  void HandleSignals();
  int NextTimeoutMs() const;
  void RunDueTimers();

  UniqueFd epoll_;
  UniqueFd signal_fd_;
  std::map<int, Callback> watched_;
  std::multimap<Clock::time_point, std::pair<TimerId, Callback>> timers_;
  std::map<int, Callback> signal_handlers_;
  TimerId next_timer_ = 1;
  bool running_ = false;
};

}  // namespace custos
