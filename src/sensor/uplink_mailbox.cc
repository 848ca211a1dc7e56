#include "sensor/uplink_mailbox.h"

#include <sys/eventfd.h>

#include <cerrno>
#include <cstdint>

namespace custos::sensor {

Result<std::unique_ptr<UplinkMailbox>> UplinkMailbox::Create(EventLoop& loop) {
  std::unique_ptr<UplinkMailbox> mailbox(new UplinkMailbox(loop));
  mailbox->event_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!mailbox->event_fd_.valid()) return ErrnoError("eventfd");
  UplinkMailbox* raw = mailbox.get();
  CUSTOS_TRY(loop.WatchReadable(mailbox->event_fd_.get(), [raw] { raw->Drain(); }));
  return mailbox;
}

UplinkMailbox::~UplinkMailbox() {
  if (event_fd_.valid()) loop_.Unwatch(event_fd_.get());
}

void UplinkMailbox::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  std::uint64_t one = 1;
  // Cannot fail short of a counter overflow, and the loop drains it first.
  (void)!::write(event_fd_.get(), &one, sizeof one);
}

void UplinkMailbox::Drain() {
  std::uint64_t count = 0;
  (void)!::read(event_fd_.get(), &count, sizeof count);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(mutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
}

}  // namespace custos::sensor
