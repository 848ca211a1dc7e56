#include "bus/file_delivery.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include "common/unique_fd.h"

namespace custos::bus {
namespace {

// Unique across restarts of sensord: time, then random bits from the kernel.
std::string UniquePrefix() {
  std::uint32_t random = 0;
  if (::getrandom(&random, sizeof random, 0) != sizeof random) random = 0;
  char text[48];
  auto now = std::chrono::system_clock::now().time_since_epoch();
  std::snprintf(
      text, sizeof text, "%lld-%08x",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(now).count()),
      random);
  return text;
}

Status CopyAll(int from, int to, std::uint64_t size) {
  char buffer[65536];
  std::uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(from, buffer,
                        static_cast<size_t>(std::min<std::uint64_t>(sizeof buffer, size - done)),
                        static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read the offered file");
    if (n == 0) break;  // it shrank; deliver what there is
    for (ssize_t written = 0; written < n;) {
      ssize_t w = ::write(to, buffer + written, static_cast<size_t>(n - written));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoError("write the inbox copy");
      written += w;
    }
    done += static_cast<std::uint64_t>(n);
  }
  return {};
}

}  // namespace

Result<DeliveredFile> DeliverToInbox(int source_fd, const std::string& persistent_dir,
                                     std::uint32_t owner_uid, const std::string& sender,
                                     const std::string& file_name, std::uint64_t max_bytes) {
  struct stat source {};
  if (::fstat(source_fd, &source) != 0) return ErrnoError("fstat the offered file");
  // A pipe or socket could block the broker forever; only files are accepted.
  if (!S_ISREG(source.st_mode)) return Error{"the offered descriptor is not a regular file"};
  auto size = static_cast<std::uint64_t>(source.st_size);
  if (size > max_bytes) {
    return Error{"file of " + std::to_string(size) + " bytes exceeds the limit of " +
                 std::to_string(max_bytes)};
  }
  UniqueFd root(::open(persistent_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) return ErrnoError("open " + persistent_dir);
  if (::mkdirat(root.get(), "inbox", 0700) != 0 && errno != EEXIST)
    return ErrnoError("create inbox");
  UniqueFd inbox(::openat(root.get(), "inbox", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!inbox.valid()) return ErrnoError("open inbox (is it a symlink?)");
  if (::fchown(inbox.get(), owner_uid, owner_uid) != 0) return ErrnoError("chown inbox");

  std::string name = UniquePrefix() + "-" + sender + "-" + file_name;
  UniqueFd target(::openat(inbox.get(), name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!target.valid()) return ErrnoError("create inbox/" + name);
  if (auto copied = CopyAll(source_fd, target.get(), size); !copied) {
    ::unlinkat(inbox.get(), name.c_str(), 0);
    return copied.error();
  }
  if (::fchown(target.get(), owner_uid, owner_uid) != 0) {
    ::unlinkat(inbox.get(), name.c_str(), 0);
    return ErrnoError("chown inbox/" + name);
  }
  return DeliveredFile{"inbox/" + name, size};
}

}  // namespace custos::bus
