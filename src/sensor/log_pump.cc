#include "sensor/log_pump.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/files.h"
#include "common/log.h"

namespace custos {
namespace {

// One read per wake-up: a chatty instrument cannot hold the event loop.
constexpr std::size_t kChunk = 64 * 1024;
constexpr int kPipeBytes = 1 << 20;

}  // namespace

Result<std::unique_ptr<LogPump>> LogPump::Open(EventLoop& loop, std::string path,
                                               std::uint64_t max_bytes) {
  std::unique_ptr<LogPump> pump(new LogPump(loop, std::move(path), max_bytes));
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return ErrnoError("cannot make a log pipe");
  pump->read_end_.reset(ends[0]);
  pump->write_end_.reset(ends[1]);
  if (::fcntl(ends[0], F_SETFL, O_NONBLOCK) != 0) return ErrnoError("log pipe");
  // Room for bursts while the event loop is busy (starting or stopping
  // instruments); past it the writer waits. Best effort: 1 MiB is the
  // default pipe-max-size.
  (void)::fcntl(ends[0], F_SETPIPE_SZ, kPipeBytes);
  CUSTOS_TRY(pump->OpenFile());
  LogPump* raw = pump.get();
  CUSTOS_TRY(loop.WatchReadable(ends[0], [raw] { raw->PumpOnce(); }));
  pump->watching_ = true;
  return pump;
}

LogPump::~LogPump() { StopWatching(); }

void LogPump::StopWatching() {
  if (watching_) loop_.Unwatch(read_end_.get());
  watching_ = false;
}

Status LogPump::OpenFile() {
  file_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!file_.valid()) return ErrnoError("cannot open " + path_);
  struct stat info {};
  if (::fstat(file_.get(), &info) != 0) return ErrnoError("cannot stat " + path_);
  size_ = static_cast<std::uint64_t>(info.st_size);
  return {};
}

Status LogPump::Rotate() {
  const std::string previous = path_ + ".1";
  if (::rename(path_.c_str(), previous.c_str()) != 0)
    return ErrnoError("cannot rename " + path_ + " to " + previous);
  CUSTOS_TRY(OpenFile());
  ++rotations_;
  std::string note = "[custos] log continued here; the " + std::to_string(max_bytes_ >> 20) +
                     " MiB before are in " + previous + "\n";
  CUSTOS_TRY(WriteAll(file_.get(), note.data(), note.size(), path_));
  size_ += note.size();
  return {};
}

bool LogPump::PumpOnce() {
  if (!read_end_.valid()) return false;
  char buffer[kChunk];
  ssize_t got = ::read(read_end_.get(), buffer, sizeof buffer);
  if (got < 0) {
    if (errno == EAGAIN || errno == EINTR) return false;
    spdlog::warn("log {}: {}", path_, ErrnoError("read").message);
  }
  if (got <= 0) {
    // Every writer is gone (or the pipe failed): nothing more will come.
    StopWatching();
    read_end_.reset();
    return false;
  }
  if (size_ >= max_bytes_) {
    if (auto rotated = Rotate(); !rotated) spdlog::warn("log {}", rotated.error().message);
  }
  if (!file_.valid()) return true;  // the text is lost, not the instrument
  if (auto written = WriteAll(file_.get(), buffer, static_cast<std::size_t>(got), path_);
      !written) {
    spdlog::warn("log: {}", written.error().message);
  }
  size_ += static_cast<std::uint64_t>(got);
  return true;
}

void LogPump::Drain() {
  // Bounded: the pipe holds at most its buffer once the writers are gone.
  for (int chunks = 0; chunks < 256 && PumpOnce(); ++chunks) {
  }
}

}  // namespace custos
