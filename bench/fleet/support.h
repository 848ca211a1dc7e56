// The fleet bench's shared names, constants and small helpers: the
// interrupt flag, JSON fields read without throwing, percentiles, process
// figures from /proc, file limits, free ports and a countdown to wait on.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"

namespace custos::fleetbench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

inline constexpr char kHost[] = "127.0.0.1";
inline constexpr auto kStepTimeout = std::chrono::seconds(15);
inline constexpr auto kDrainTimeout = std::chrono::seconds(30);

// Set by the SIGINT and SIGTERM handler; every wait gives up when it is.
extern std::atomic<bool> interrupted;

double Milliseconds(Clock::duration duration);

// Fields of what the fleet sends, read without throwing: "" and 0 when
// absent or of another type.
std::string StringField(const json& object, const char* name);
std::uint64_t UnsignedField(const json& object, const char* name);

// Nearest rank; `values` is sorted in place.
template <typename T>
double Percentile(std::vector<T>& values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(values.size())));
  return static_cast<double>(values[std::clamp<std::size_t>(rank, 1, values.size()) - 1]);
}

// "2026-11-23T15:04:05.123456+0000" (EVE).
std::string EveTimestamp(std::chrono::system_clock::time_point time);

// User plus system CPU seconds of a process (/proc/PID/stat) or, for -1,
// of this one: to tell whether fleetd or the simulator used the cores.
double CpuSeconds(pid_t pid);

Result<double> ResidentMegabytes(pid_t pid);

// Every sensor holds a socket and fleetd one per sensor; fleetd inherits
// the limit because it is raised before fleetd is spawned.
Status RaiseFileLimit(rlim_t needed);

// A port the kernel chose on loopback, free when this returns.
Result<std::uint16_t> FreeLoopbackPort();

// Counts completions down; the main thread waits for zero with a deadline.
class Countdown {
 public:
  explicit Countdown(std::size_t count) : remaining_(count) {}
  void Done();
  // False on the deadline or an interrupt.
  bool WaitUntil(Clock::time_point deadline);

 private:
  std::mutex mutex_;
  std::condition_variable zero_;
  std::size_t remaining_;
};

}  // namespace custos::fleetbench
