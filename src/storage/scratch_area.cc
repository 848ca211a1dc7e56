#include "storage/scratch_area.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/files.h"
#include "common/unique_fd.h"
#include "storage/encrypted_volume.h"

namespace custos::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kBase[] = "/tmp/custos-storage";

// Mount points below `root`, in mount order (mountinfo's fifth field; test
// paths hold no characters that mountinfo escapes).
std::vector<std::string> MountsBelow(const std::string& root) {
  std::vector<std::string> found;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, numbers, fs_root, mount_point;
    if (!(fields >> id >> parent >> numbers >> fs_root >> mount_point)) continue;
    if (mount_point.rfind(root + "/", 0) == 0) found.push_back(mount_point);
  }
  return found;
}

}  // namespace

ScratchArea::ScratchArea(const std::string& name) : root_(std::string(kBase) + "/" + name) {
  status_ = CleanUp();
  if (status_) status_ = MakeDirectories(root_, 0700);
}

ScratchArea::~ScratchArea() {
  auto cleaned = CleanUp();
  if (!cleaned) ADD_FAILURE() << "scratch area " << root_ << ": " << cleaned.error().message;
}

Status ScratchArea::CleanUp() {
  auto mounts = MountsBelow(root_);
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
    if (::umount2(it->c_str(), 0) != 0 && ::umount2(it->c_str(), MNT_DETACH) != 0)
      return ErrnoError("cannot unmount " + *it);
  }
  std::error_code error;
  if (!fs::exists(root_, error)) return {};
  for (fs::recursive_directory_iterator it(root_, error), end; !error && it != end;
       it.increment(error)) {
    if (it->is_regular_file() && it->path().extension() == ".img")
      CUSTOS_TRY(CleanUpImage(it->path().string()));
  }
  fs::remove_all(root_, error);
  if (error) return Error{"cannot remove " + root_ + ": " + error.message()};
  return {};
}

std::string CurrentTestName() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  std::replace(name.begin(), name.end(), '/', '_');
  return name;
}

Result<bool> FileContains(const std::string& path, std::string_view needle) {
  if (needle.empty()) return Error{"empty needle"};
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("cannot open " + path);
  std::vector<char> buffer(std::size_t{4} << 20);
  std::size_t kept = 0;  // tail of the previous chunk
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer.data() + kept, buffer.size() - kept);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot read " + path);
    }
    if (n == 0) return false;
    std::size_t filled = kept + static_cast<std::size_t>(n);
    if (::memmem(buffer.data(), filled, needle.data(), needle.size()) != nullptr) return true;
    kept = std::min(filled, needle.size() - 1);
    std::memmove(buffer.data(), buffer.data() + filled - kept, kept);
  }
}

bool TreeEntry::operator==(const TreeEntry& other) const {
  return mode == other.mode && uid == other.uid && gid == other.gid &&
         mtime.tv_sec == other.mtime.tv_sec && mtime.tv_nsec == other.mtime.tv_nsec &&
         content == other.content;
}

std::map<std::string, TreeEntry> SnapshotTree(const std::string& root) {
  std::map<std::string, TreeEntry> entries;
  for (const auto& item : fs::recursive_directory_iterator(root)) {
    struct stat info {};
    EXPECT_EQ(::lstat(item.path().c_str(), &info), 0) << item.path();
    TreeEntry entry{info.st_mode, info.st_uid, info.st_gid, info.st_mtim, {}};
    if (S_ISREG(info.st_mode)) {
      std::ifstream in(item.path(), std::ios::binary);
      entry.content.assign(std::istreambuf_iterator<char>(in), {});
    } else if (S_ISLNK(info.st_mode)) {
      entry.content = fs::read_symlink(item.path()).string();
    }
    entries[item.path().lexically_relative(root).string()] = entry;
  }
  return entries;
}

}  // namespace custos::storage
