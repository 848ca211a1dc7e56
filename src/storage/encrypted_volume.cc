#include "storage/encrypted_volume.h"

#include <fcntl.h>
#include <linux/fscrypt.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "common/files.h"
#include "common/log.h"
#include "common/process.h"

namespace custos::storage {
namespace {

namespace fs = std::filesystem;

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountPath(const std::string& text) {
  std::string path;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      const std::string octal = text.substr(i + 1, 3);
      if (octal.find_first_not_of("01234567") == std::string::npos) {
        path += static_cast<char>(std::stoi(octal, nullptr, 8));
        i += 3;
        continue;
      }
    }
    path += text[i];
  }
  return path;
}

struct MountEntry {
  dev_t device = 0;
  std::string mount_point;
};

Result<std::vector<MountEntry>> ReadMounts() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return ErrnoError("cannot read /proc/self/mountinfo");
  std::vector<MountEntry> mounts;
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <major>:<minor> <root> <mount point> ..."
    std::istringstream fields(line);
    std::string id, parent, numbers, root, mount_point;
    if (!(fields >> id >> parent >> numbers >> root >> mount_point)) continue;
    unsigned major_number = 0, minor_number = 0;
    if (std::sscanf(numbers.c_str(), "%u:%u", &major_number, &minor_number) != 2) continue;
    mounts.push_back({makedev(major_number, minor_number), UnescapeMountPath(mount_point)});
  }
  return mounts;
}

Result<dev_t> BlockDeviceNumber(const std::string& device) {
  struct stat info {};
  if (::stat(device.c_str(), &info) != 0) return ErrnoError("cannot stat " + device);
  if (!S_ISBLK(info.st_mode)) return Error{device + " is not a block device"};
  return info.st_rdev;
}

Status Unmount(const std::string& mount_point, const std::string& device) {
  if (::umount2(mount_point.c_str(), UMOUNT_NOFOLLOW) == 0) return {};
  if (errno == EBUSY) {
    return Error{"cannot unmount " + mount_point + " (" + device +
                 "): still in use by a process (see fuser -vm " + mount_point + ")"};
  }
  return ErrnoError("cannot unmount " + mount_point + " (" + device + ")");
}

Status RequestLoopDetach(const std::string& device) {
  auto detached = RunChecked({"losetup", "--detach", device});
  if (!detached) return detached.error();
  return {};
}

// A loop device still opened by someone (udev probing it after the unmount,
// say) is only marked for autoclear by `losetup --detach`; the kernel lets go
// of the image when the last opener closes. Waiting for that keeps the next
// attach of the same image from finding two loop devices.
Status DetachLoop(const std::string& device) {
  CUSTOS_TRY(RequestLoopDetach(device));
  const std::string backing =
      "/sys/block/" + fs::path(device).filename().string() + "/loop/backing_file";
  for (int wait = 0; wait < 100; ++wait) {
    if (::access(backing.c_str(), F_OK) != 0) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Error{device + " stays attached 5 s after losetup --detach"};
}

// Mounts of `device` at any place, which for our own image's loop devices
// are always a crashed run's.
Status UnmountAll(const std::string& device) {
  auto mount_points = MountPointsOf(device);
  if (!mount_points) return mount_points.error();
  // Later mounts may sit on top of earlier ones.
  for (auto it = mount_points->rbegin(); it != mount_points->rend(); ++it)
    CUSTOS_TRY(Unmount(*it, device));
  return {};
}

// ext4 answers EOPNOTSUPP to the policy query when the encrypt feature is
// off, and ENODATA for an unencrypted directory when it is on.
Status CheckEncryptFeature(int root_fd, const std::string& source) {
  fscrypt_get_policy_ex_arg arg{};
  arg.policy_size = sizeof(arg.policy);
  if (::ioctl(root_fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &arg) == 0 || errno == ENODATA) return {};
  if (errno == EOPNOTSUPP || errno == ENOTTY) {
    return Error{source +
                 " has no 'encrypt' feature (make it with mkfs.ext4 -O encrypt, or enable it "
                 "with tune2fs -O encrypt while unmounted)"};
  }
  return ErrnoError("cannot query encryption support of " + source);
}

}  // namespace

Status CreateVolumeImage(const std::string& image, std::uint64_t size_bytes) {
  constexpr std::uint64_t kMinimumSize = std::uint64_t{16} << 20;
  if (size_bytes < kMinimumSize) return Error{"volume image " + image + " must be at least 16M"};
  {
    UniqueFd file(::open(image.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!file.valid()) return ErrnoError("cannot create volume image " + image);
    if (::ftruncate(file.get(), static_cast<off_t>(size_bytes)) != 0) {
      Error error = ErrnoError("cannot size volume image " + image);
      ::unlink(image.c_str());
      return error;
    }
  }
  // Inode tables and journal are written now rather than by a background
  // thread after the first mount, which would disturb early I/O.
  auto made = RunChecked({"mkfs.ext4", "-q", "-F", "-O", "encrypt", "-E",
                          "lazy_itable_init=0,lazy_journal_init=0", "-L", "custos-data", image});
  if (!made) {
    ::unlink(image.c_str());
    return Context("cannot make a filesystem on " + image, made.error());
  }
  return {};
}

Result<std::vector<std::string>> LoopDevicesOf(const std::string& image) {
  auto output =
      RunChecked({"losetup", "--list", "--noheadings", "--output", "NAME", "--associated", image});
  if (!output) return output.error();
  std::vector<std::string> devices;
  std::istringstream lines(*output);
  std::string line;
  while (std::getline(lines, line)) {
    line.erase(std::remove_if(line.begin(), line.end(), ::isspace), line.end());
    if (!line.empty()) devices.push_back(line);
  }
  return devices;
}

Result<std::vector<std::string>> MountPointsOf(const std::string& device) {
  auto number = BlockDeviceNumber(device);
  if (!number) return number.error();
  auto mounts = ReadMounts();
  if (!mounts) return mounts.error();
  std::vector<std::string> mount_points;
  for (const auto& entry : *mounts) {
    if (entry.device == *number) mount_points.push_back(entry.mount_point);
  }
  return mount_points;
}

Status CleanUpImage(const std::string& image) {
  auto devices = LoopDevicesOf(image);
  if (!devices) return devices.error();
  for (const auto& device : *devices) {
    spdlog::warn("volume {}: cleaning up {} left attached by an earlier run", image, device);
    CUSTOS_TRY(UnmountAll(device));
    CUSTOS_TRY(DetachLoop(device));
  }
  return {};
}

Result<EncryptedVolume> EncryptedVolume::Open(const std::string& source,
                                              const std::string& mountpoint) {
  struct stat info {};
  if (::stat(source.c_str(), &info) != 0) return ErrnoError("volume " + source);
  const bool is_image = S_ISREG(info.st_mode);
  if (!is_image && !S_ISBLK(info.st_mode))
    return Error{"volume " + source + " is neither an image file nor a block device"};
  CUSTOS_TRY(MakeDirectories(mountpoint, 0711));
  std::error_code error;
  const std::string target = fs::canonical(mountpoint, error).string();
  if (error) return Error{"cannot resolve mountpoint " + mountpoint + ": " + error.message()};

  EncryptedVolume volume;
  volume.source_ = source;
  volume.mountpoint_ = target;
  if (is_image) {
    CUSTOS_TRY(CleanUpImage(source));
  } else {
    auto mount_points = MountPointsOf(source);
    if (!mount_points) return mount_points.error();
    for (const auto& place : *mount_points) {
      if (place != target) return Error{"volume " + source + " is already mounted at " + place};
      CUSTOS_TRY(Unmount(place, source));
    }
  }
  auto mounts = ReadMounts();
  if (!mounts) return mounts.error();
  for (const auto& entry : *mounts) {
    if (entry.mount_point == target)
      return Error{"mountpoint " + target + " already has another filesystem mounted on it"};
  }

  if (is_image) {
    // Direct I/O keeps the image's blocks out of the page cache a second
    // time (the mounted filesystem caches them already).
    auto device = RunChecked({"losetup", "--find", "--show", "--direct-io=on", source});
    if (!device) return Context("cannot attach " + source + " to a loop device", device.error());
    volume.device_ = *device;
    while (!volume.device_.empty() && ::isspace(static_cast<unsigned char>(volume.device_.back())))
      volume.device_.pop_back();
    volume.owns_loop_ = true;
  } else {
    volume.device_ = source;
  }
  // From here the destructor undoes what succeeded.
  if (::mount(volume.device_.c_str(), target.c_str(), "ext4", MS_NOSUID | MS_NODEV, nullptr) != 0)
    return ErrnoError("cannot mount " + source + " (" + volume.device_ + ") at " + target);
  volume.mounted_ = true;
  volume.root_.reset(::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!volume.root_.valid()) return ErrnoError("cannot open " + target);
  CUSTOS_TRY(CheckEncryptFeature(volume.root_.get(), source));
  return volume;
}

EncryptedVolume::EncryptedVolume(EncryptedVolume&& other) noexcept
    : source_(std::move(other.source_)),
      mountpoint_(std::move(other.mountpoint_)),
      device_(std::move(other.device_)),
      owns_loop_(std::exchange(other.owns_loop_, false)),
      mounted_(std::exchange(other.mounted_, false)),
      root_(std::move(other.root_)) {}

EncryptedVolume& EncryptedVolume::operator=(EncryptedVolume&& other) noexcept {
  if (this != &other) {
    ForceClose();
    source_ = std::move(other.source_);
    mountpoint_ = std::move(other.mountpoint_);
    device_ = std::move(other.device_);
    owns_loop_ = std::exchange(other.owns_loop_, false);
    mounted_ = std::exchange(other.mounted_, false);
    root_ = std::move(other.root_);
  }
  return *this;
}

EncryptedVolume::~EncryptedVolume() { ForceClose(); }

Status EncryptedVolume::Close() {
  root_.reset();
  if (mounted_) {
    CUSTOS_TRY(Unmount(mountpoint_, device_));
    mounted_ = false;
  }
  if (owns_loop_) {
    CUSTOS_TRY(DetachLoop(device_));
    owns_loop_ = false;
  }
  return {};
}

void EncryptedVolume::ForceClose() {
  auto closed = Close();
  if (closed) return;
  spdlog::warn("volume {}: {}; detaching lazily", source_, closed.error().message);
  // The kernel finishes the unmount, and (autoclear) the loop detach, when
  // the last user lets go.
  if (mounted_ && ::umount2(mountpoint_.c_str(), MNT_DETACH) == 0) mounted_ = false;
  if (owns_loop_ && RequestLoopDetach(device_)) owns_loop_ = false;
}

}  // namespace custos::storage
