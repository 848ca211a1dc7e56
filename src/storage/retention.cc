#include "storage/retention.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/unique_fd.h"

namespace custos {
namespace {

constexpr int kMaxDepth = 64;

bool OlderThan(const struct stat& info, std::chrono::system_clock::time_point cutoff) {
  auto mtime = std::chrono::system_clock::time_point(
      std::chrono::seconds(info.st_mtim.tv_sec) +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(info.st_mtim.tv_nsec)));
  return mtime < cutoff;
}

// Sweeps the directory open at `dir`; returns whether it ended up empty.
Result<bool> SweepDirectory(int dir, const std::string& path,
                            std::chrono::system_clock::time_point cutoff, int depth,
                            SweepReport& report) {
  if (depth > kMaxDepth) return Error{path + ": directories nested too deep"};
  int listing_fd = ::dup(dir);
  if (listing_fd < 0) return ErrnoError("dup");
  DIR* listing = ::fdopendir(listing_fd);
  if (listing == nullptr) {
    ::close(listing_fd);
    return ErrnoError("cannot list " + path);
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(listing)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(listing);

  bool empty = true;
  for (const auto& name : names) {
    struct stat info {};
    if (::fstatat(dir, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoError("cannot stat " + path + "/" + name);
    }
    if (S_ISDIR(info.st_mode)) {
      UniqueFd child(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child.valid()) return ErrnoError("cannot open " + path + "/" + name);
      auto child_empty = SweepDirectory(child.get(), path + "/" + name, cutoff, depth + 1, report);
      if (!child_empty) return child_empty.error();
      if (*child_empty && OlderThan(info, cutoff) &&
          ::unlinkat(dir, name.c_str(), AT_REMOVEDIR) == 0) {
        continue;
      }
      empty = false;
    } else if (OlderThan(info, cutoff)) {
      if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
        return ErrnoError("cannot delete " + path + "/" + name);
      }
      ++report.deleted;
    } else {
      ++report.kept;
      empty = false;
    }
  }
  return empty;
}

}  // namespace

Result<SweepReport> SweepExpired(const std::string& root,
                                 std::chrono::system_clock::time_point cutoff) {
  UniqueFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid()) return ErrnoError("cannot open " + root);
  SweepReport report;
  auto swept = SweepDirectory(dir.get(), root, cutoff, 0, report);
  if (!swept) return swept.error();
  return report;
}

}  // namespace custos
