#include "sensor/event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include <cerrno>

namespace custos {

Result<std::unique_ptr<EventLoop>> EventLoop::Create(const std::vector<int>& signals) {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  loop->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!loop->epoll_.valid()) return ErrnoError("epoll_create1");
  sigset_t mask;
  sigemptyset(&mask);
  for (int signal : signals) sigaddset(&mask, signal);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return ErrnoError("sigprocmask");
  loop->signal_fd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!loop->signal_fd_.valid()) return ErrnoError("signalfd");
  EventLoop* raw = loop.get();
  auto watched = loop->WatchReadable(loop->signal_fd_.get(), [raw] { raw->HandleSignals(); });
  if (!watched) return watched.error();
  return loop;
}

Status EventLoop::WatchReadable(int fd, Callback callback) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return ErrnoError("epoll_ctl");
  watched_[fd] = std::move(callback);
  return {};
}

void EventLoop::Unwatch(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  watched_.erase(fd);
}

EventLoop::TimerId EventLoop::After(std::chrono::milliseconds delay, Callback callback) {
  TimerId id = next_timer_++;
  timers_.emplace(Clock::now() + delay, std::make_pair(id, std::move(callback)));
  return id;
}

void EventLoop::Cancel(TimerId timer) {
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->second.first == timer) {
      timers_.erase(it);
      return;
    }
  }
}

void EventLoop::OnSignal(int signal, Callback callback) {
  signal_handlers_[signal] = std::move(callback);
}

void EventLoop::HandleSignals() {
  signalfd_siginfo info{};
  while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
    auto handler = signal_handlers_.find(static_cast<int>(info.ssi_signo));
    if (handler != signal_handlers_.end()) handler->second();
  }
}

int EventLoop::NextTimeoutMs() const {
  if (timers_.empty()) return -1;
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - Clock::now());
  return wait.count() < 0 ? 0 : static_cast<int>(std::min<long long>(wait.count(), 60'000));
}

void EventLoop::RunDueTimers() {
  auto now = Clock::now();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto callback = std::move(timers_.begin()->second.second);
    timers_.erase(timers_.begin());
    callback();
  }
}

void EventLoop::Run() {
  running_ = true;
  epoll_event events[16];
  while (running_) {
    int count = ::epoll_wait(epoll_.get(), events, 16, NextTimeoutMs());
    if (count < 0 && errno != EINTR) break;
    for (int i = 0; i < count && running_; ++i) {
      auto handler = watched_.find(events[i].data.fd);
      // Copy: the callback may unwatch its own descriptor.
      if (handler != watched_.end()) {
        auto callback = handler->second;
        callback();
      }
    }
    if (running_) RunDueTimers();
  }
}

}  // namespace custos
