#include "storage/tree_copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/unique_fd.h"

namespace custos::storage {
namespace {

// An instrument controls its tree's depth; each level holds two
// descriptors and a stack frame.
constexpr int kMaxDepth = 128;
constexpr std::size_t kBufferSize = std::size_t{1} << 20;

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

// Owner before mode: chown clears set-uid and set-gid bits.
Status CopyAttributes(int fd, const struct stat& info, const std::string& name) {
  if (::fchown(fd, info.st_uid, info.st_gid) != 0) return ErrnoError("cannot chown " + name);
  if (::fchmod(fd, info.st_mode & 07777) != 0) return ErrnoError("cannot chmod " + name);
  const timespec times[2] = {info.st_atim, info.st_mtim};
  if (::futimens(fd, times) != 0) return ErrnoError("cannot set times of " + name);
  return {};
}

Status CopyFile(int source_dir, int target_dir, const std::string& name, const struct stat& info,
                std::vector<char>& buffer) {
  UniqueFd source(::openat(source_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!source.valid()) return ErrnoError("cannot open " + name);
  UniqueFd target(::openat(target_dir, name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!target.valid()) return ErrnoError("cannot create copy of " + name);
  for (;;) {
    ssize_t n = ::read(source.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot read " + name);
    }
    if (n == 0) break;
    CUSTOS_TRY(
        WriteAll(target.get(), buffer.data(), static_cast<std::size_t>(n), "copy of " + name));
  }
  CUSTOS_TRY(CopyAttributes(target.get(), info, name));
  if (::fsync(target.get()) != 0) return ErrnoError("cannot fsync copy of " + name);
  return {};
}

Status CopySymlink(int source_dir, int target_dir, const std::string& name,
                   const struct stat& info) {
  std::vector<char> link(PATH_MAX + 1);
  ssize_t length = ::readlinkat(source_dir, name.c_str(), link.data(), link.size() - 1);
  if (length < 0) return ErrnoError("cannot read link " + name);
  link[static_cast<std::size_t>(length)] = '\0';
  if (::symlinkat(link.data(), target_dir, name.c_str()) != 0)
    return ErrnoError("cannot create link " + name);
  if (::fchownat(target_dir, name.c_str(), info.st_uid, info.st_gid, AT_SYMLINK_NOFOLLOW) != 0)
    return ErrnoError("cannot chown link " + name);
  const timespec times[2] = {info.st_atim, info.st_mtim};
  if (::utimensat(target_dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    return ErrnoError("cannot set times of link " + name);
  return {};
}

Status CopySpecial(int target_dir, const std::string& name, const struct stat& info) {
  if (::mknodat(target_dir, name.c_str(), (info.st_mode & S_IFMT) | 0600, info.st_rdev) != 0)
    return ErrnoError("cannot create " + name);
  if (::fchownat(target_dir, name.c_str(), info.st_uid, info.st_gid, AT_SYMLINK_NOFOLLOW) != 0)
    return ErrnoError("cannot chown " + name);
  if (::fchmodat(target_dir, name.c_str(), info.st_mode & 07777, 0) != 0)
    return ErrnoError("cannot chmod " + name);
  const timespec times[2] = {info.st_atim, info.st_mtim};
  if (::utimensat(target_dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    return ErrnoError("cannot set times of " + name);
  return {};
}

Status CopyContents(int source_dir, int target_dir, int depth, std::vector<char>& buffer);

Status CopyDirectory(int source_dir, int target_dir, const std::string& name,
                     const struct stat& info, int depth, std::vector<char>& buffer) {
  if (::mkdirat(target_dir, name.c_str(), 0700) != 0)
    return ErrnoError("cannot create directory " + name);
  UniqueFd source(
      ::openat(source_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!source.valid()) return ErrnoError("cannot open directory " + name);
  UniqueFd target(
      ::openat(target_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!target.valid()) return ErrnoError("cannot open copy of directory " + name);
  auto copied = CopyContents(source.get(), target.get(), depth + 1, buffer);
  if (!copied) return Context(name, copied.error());
  CUSTOS_TRY(CopyAttributes(target.get(), info, name));
  if (::fsync(target.get()) != 0) return ErrnoError("cannot fsync copy of directory " + name);
  return {};
}

Status CopyContents(int source_dir, int target_dir, int depth, std::vector<char>& buffer) {
  if (depth > kMaxDepth)
    return Error{"directories nested deeper than " + std::to_string(kMaxDepth)};
  // fdopendir takes over the descriptor it is given, so it gets one of its
  // own (with its own offset).
  int listing_fd = ::openat(source_dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing_fd < 0) return ErrnoError("cannot open directory");
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(listing_fd));
  if (!dir) {
    Error error = ErrnoError("cannot list directory");
    ::close(listing_fd);
    return error;
  }
  for (;;) {
    errno = 0;
    dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno != 0) return ErrnoError("cannot list directory");
      break;
    }
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat info {};
    if (::fstatat(source_dir, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0)
      return ErrnoError("cannot stat " + name);
    if (S_ISDIR(info.st_mode)) {
      CUSTOS_TRY(CopyDirectory(source_dir, target_dir, name, info, depth, buffer));
    } else if (S_ISREG(info.st_mode)) {
      CUSTOS_TRY(CopyFile(source_dir, target_dir, name, info, buffer));
    } else if (S_ISLNK(info.st_mode)) {
      CUSTOS_TRY(CopySymlink(source_dir, target_dir, name, info));
    } else {
      CUSTOS_TRY(CopySpecial(target_dir, name, info));
    }
  }
  return {};
}

}  // namespace

Status CopyTree(int source_dir_fd, int target_dir_fd) {
  std::vector<char> buffer(kBufferSize);
  CUSTOS_TRY(CopyContents(source_dir_fd, target_dir_fd, 0, buffer));
  struct stat info {};
  if (::fstat(source_dir_fd, &info) != 0) return ErrnoError("cannot stat source directory");
  CUSTOS_TRY(CopyAttributes(target_dir_fd, info, "target directory"));
  if (::fsync(target_dir_fd) != 0) return ErrnoError("cannot fsync target directory");
  return {};
}

}  // namespace custos::storage
