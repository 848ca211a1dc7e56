#include "sensor/ring_grant.h"

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace custos {
namespace {

// The engine's descriptor number for the memfd named `name`, or -1.
int FindMemfd(pid_t pid, const std::string& name) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  std::string wanted = "/memfd:" + name + " (deleted)";
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return -1;
  int found = -1;
  while (dirent* entry = ::readdir(listing)) {
    if (entry->d_name[0] == '.') continue;
    char target[256];
    std::string link = dir + "/" + entry->d_name;
    ssize_t length = ::readlink(link.c_str(), target, sizeof target - 1);
    if (length <= 0) continue;
    if (std::string(target, static_cast<std::size_t>(length)) == wanted) {
      found = std::stoi(entry->d_name);
      break;
    }
  }
  ::closedir(listing);
  return found;
}

Result<UniqueFd> TakeDescriptor(int pidfd, int number, const std::string& what) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, number, 0)));
  if (!fd.valid()) return ErrnoError("cannot take the engine's " + what);
  return fd;
}

}  // namespace

Result<RingGrant> GrantRing(pid_t engine, int slot, std::chrono::milliseconds wait) {
  if (slot < 0 || slot >= capture::kRingConsumers)
    return Error{"no free capture ring slot (at most " + std::to_string(capture::kRingConsumers) +
                 " ring instruments)"};
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, engine, 0)));
  if (!pidfd.valid()) return ErrnoError("the capture engine is gone");
  std::string cursor_name = capture::kCursorMemfdPrefix + std::to_string(slot);
  auto deadline = std::chrono::steady_clock::now() + wait;
  Error last{"the capture engine has no capture ring (is its ring setting off?)"};
  for (;;) {
    int ring_number = FindMemfd(engine, capture::kRingMemfdName);
    int cursor_number = FindMemfd(engine, cursor_name);
    if (ring_number >= 0 && cursor_number >= 0) {
      auto ring = TakeDescriptor(pidfd.get(), ring_number, "capture ring");
      auto cursor = TakeDescriptor(pidfd.get(), cursor_number, "ring cursor");
      if (!ring) return ring.error();
      if (!cursor) return cursor.error();
      // The engine seals its ring right after mapping it; until then, wait.
      auto sealed = capture::CheckRingSeals(ring->get());
      if (sealed) {
        CUSTOS_TRY(capture::CheckCursorSeals(cursor->get()));
        auto view = capture::CursorView::Map(cursor->get());
        if (!view) return view.error();
        view->Reset();
        return RingGrant{slot, std::move(*ring), std::move(*cursor), std::move(*view)};
      }
      last = sealed.error();
    }
    if (std::chrono::steady_clock::now() >= deadline) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace custos
