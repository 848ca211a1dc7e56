// The fleet bench's small helpers (see support.h).
#include "bench/fleet/support.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "bench/fleet/net.h"
#include "common/files.h"

namespace custos::fleetbench {

std::atomic<bool> interrupted{false};

double Milliseconds(Clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

std::string StringField(const json& object, const char* name) {
  auto found = object.is_object() ? object.find(name) : object.end();
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

std::uint64_t UnsignedField(const json& object, const char* name) {
  auto found = object.is_object() ? object.find(name) : object.end();
  return found != object.end() && found->is_number_unsigned() ? found->get<std::uint64_t>() : 0;
}

std::string EveTimestamp(std::chrono::system_clock::time_point time) {
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + length, sizeof text - length, ".%06lld+0000",
                static_cast<long long>(micros % 1000000));
  return text;
}

double CpuSeconds(pid_t pid) {
  if (pid < 0) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& time) { return time.tv_sec + time.tv_usec / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
  }
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return 0;
  // Fields 14 and 15 (utime, stime) follow the ")" that ends the command name.
  std::istringstream fields(stat->substr(stat->rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

Result<double> ResidentMegabytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;  // kB
  }
  return Error{"no VmRSS for pid " + std::to_string(pid)};
}

Status RaiseFileLimit(rlim_t needed) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoError("getrlimit");
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoError("setrlimit RLIMIT_NOFILE");
  if (limit.rlim_cur < needed) {
    return Error{"RLIMIT_NOFILE hard limit " + std::to_string(limit.rlim_max) + " is below the " +
                 std::to_string(needed) + " descriptors this run needs"};
  }
  return {};
}

Result<std::uint16_t> FreeLoopbackPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io);
  boost::system::error_code error;
  acceptor.open(tcp::v4(), error);
  if (!error) acceptor.bind({asio::ip::make_address(kHost), 0}, error);
  if (error) return Error{"cannot find a free port: " + error.message()};
  return acceptor.local_endpoint().port();
}

void Countdown::Done() {
  std::lock_guard lock(mutex_);
  if (remaining_ > 0 && --remaining_ == 0) zero_.notify_all();
}

bool Countdown::WaitUntil(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  while (remaining_ > 0) {
    if (interrupted || Clock::now() >= deadline) return false;
    // Woken at the latest every 200 ms to notice SIGINT.
    zero_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(200)));
  }
  return true;
}

}  // namespace custos::fleetbench
