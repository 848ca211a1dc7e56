// The sensor's data root as a filesystem that can hold fscrypt directories:
// an ext4 made with `-O encrypt`, on a partition or (tests, demo) on an image
// file attached to a loop device. EncryptedVolume owns the mount and the loop
// device: Close() or the destructor unmounts and detaches, and Open() first
// cleans up what a crashed run left attached or mounted from the same image.
// The volume itself is not encrypted; EncryptedStore encrypts directories on
// it. Not thread-safe; needs root (mount, losetup).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace custos::storage {

// Creates a sparse image file of `size_bytes` (mode 0600) and makes an ext4
// filesystem with the encrypt feature on it. Refuses a path that exists.
Status CreateVolumeImage(const std::string& image, std::uint64_t size_bytes);

// The loop devices attached to `image` (losetup -j).
Result<std::vector<std::string>> LoopDevicesOf(const std::string& image);

// Where the block device `device` is mounted, in mount order (from
// /proc/self/mountinfo).
Result<std::vector<std::string>> MountPointsOf(const std::string& device);

// Unmounts every mount of every loop device attached to `image` and detaches
// them: what a crashed run leaves behind. Fails, naming the mount, when one
// is still in use.
Status CleanUpImage(const std::string& image);

class EncryptedVolume {
 public:
  // Mounts `source` (an image file, attached to a new loop device with
  // direct I/O, or a block device) at `mountpoint` (created if missing)
  // with nosuid,nodev. Refuses a filesystem without the encrypt feature and
  // a mountpoint that already has something else mounted on it.
  static Result<EncryptedVolume> Open(const std::string& source, const std::string& mountpoint);

  EncryptedVolume(EncryptedVolume&& other) noexcept;
  EncryptedVolume& operator=(EncryptedVolume&& other) noexcept;
  EncryptedVolume(const EncryptedVolume&) = delete;
  EncryptedVolume& operator=(const EncryptedVolume&) = delete;
  // Closes; if unmounting fails (a file still open), detaches lazily and
  // logs a warning.
  ~EncryptedVolume();

  // Unmounts and detaches the loop device. Fails (and stays open) while a
  // process still uses a file on the volume.
  Status Close();

  bool is_open() const { return root_.valid(); }
  const std::string& source() const { return source_; }
  const std::string& mountpoint() const { return mountpoint_; }
  const std::string& device() const { return device_; }
  // The mounted root directory: the descriptor the fscrypt ioctls need.
  int root_fd() const { return root_.get(); }

 private:
  EncryptedVolume() = default;
  void ForceClose();

  std::string source_;
  std::string mountpoint_;
  std::string device_;
  bool owns_loop_ = false;
  bool mounted_ = false;
  UniqueFd root_;
};

}  // namespace custos::storage
