// An instrument's stdout and stderr reach its log file through a pipe that
// sensord drains on its event loop, so a tool that writes without end cannot
// fill the disk: once the file holds `max_bytes`, it becomes <file>.1
// (replacing the one before) and a new file starts. A writer faster than
// sensord drains fills the pipe (1 MiB) and then waits; so does one that
// writes more than that while the loop is busy starting or stopping
// instruments. Event-loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "sensor/event_loop.h"

namespace custos {

class LogPump {
 public:
  static constexpr std::uint64_t kDefaultMaxBytes = std::uint64_t{16} << 20;

  static Result<std::unique_ptr<LogPump>> Open(EventLoop& loop, std::string path,
                                               std::uint64_t max_bytes = kDefaultMaxBytes);
  ~LogPump();
  LogPump(const LogPump&) = delete;
  LogPump& operator=(const LogPump&) = delete;

  // The pipe's write end, for the runtime to give the container as stdout
  // and stderr; close it (CloseWriteEnd) once the container holds it.
  int write_end() const { return write_end_.get(); }
  void CloseWriteEnd() { write_end_.reset(); }
  // Copies what the pipe holds now into the file (after the writer exited).
  void Drain();

  std::uint64_t rotations() const { return rotations_; }

 private:
  LogPump(EventLoop& loop, std::string path, std::uint64_t max_bytes)
      : loop_(loop), path_(std::move(path)), max_bytes_(max_bytes) {}
  // Reads one chunk; false once the pipe has nothing more or is closed.
  bool PumpOnce();
  Status OpenFile();
  Status Rotate();
  void StopWatching();

  EventLoop& loop_;
  const std::string path_;
  const std::uint64_t max_bytes_;
  UniqueFd read_end_, write_end_, file_;
  std::uint64_t size_ = 0;
  std::uint64_t rotations_ = 0;
  bool watching_ = false;
};

}  // namespace custos
