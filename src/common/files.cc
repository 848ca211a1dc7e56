#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace custos {

Result<std::string> ReadFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("cannot read " + path.string());
  std::string content;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read " + path.string());
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
  }
  return content;
}

Status WriteAll(int fd, const void* data, std::size_t size, const std::string& what) {
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t written = ::write(fd, bytes, size);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return ErrnoError("cannot write " + what);
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
  return {};
}

Status WriteFileAtomic(const std::filesystem::path& path, const std::string& content,
                       unsigned mode) {
  std::string temporary = path.string() + ".tmp";
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoError("cannot write " + temporary);
  CUSTOS_TRY(WriteAll(fd.get(), content.data(), content.size(), temporary));
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + temporary);
  fd.reset();
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return ErrnoError("cannot rename " + temporary + " to " + path.string());
  }
  return {};
}

Status MakeDirectories(const std::filesystem::path& path, unsigned mode) {
  std::error_code error;
  bool created = std::filesystem::create_directories(path, error);
  if (error) return Error{"cannot create " + path.string() + ": " + error.message()};
  // An existing directory keeps its mode: it may be the operator's (/var/log).
  if (created && ::chmod(path.c_str(), mode) != 0) return ErrnoError("chmod " + path.string());
  return {};
}

}  // namespace custos
