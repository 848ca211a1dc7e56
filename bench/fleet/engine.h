// The network threads that drive every connection of the bench.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "bench/fleet/net.h"

namespace custos::fleetbench {

// One io_context per thread: whatever is bound to one runs on one thread.
class Engine {
 public:
  explicit Engine(int threads) {
    for (int i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<asio::io_context>(1));
    for (auto& io : contexts_) {
      guards_.emplace_back(asio::make_work_guard(*io));
      threads_.emplace_back([context = io.get()] { context->run(); });
    }
  }
  ~Engine() { Stop(); }
  // Ends the threads; handlers still queued are dropped, not run.
  void Stop() {
    guards_.clear();
    for (auto& io : contexts_) io->stop();
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  asio::io_context& at(std::size_t index) { return *contexts_[index % contexts_.size()]; }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace custos::fleetbench
