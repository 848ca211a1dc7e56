// Test support (not linked into daemons): a fixed scratch folder per test,
// /tmp/custos-storage/<name>, for volume images and their mountpoints.
// Creating one first cleans up what a crashed earlier run of the same test
// left there (mounts, loop devices, files); destroying it does the same, so
// no test leaves a mount or loop device behind, even when it fails.
// Not thread-safe.
#pragma once

#include <sys/stat.h>

#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace custos::storage {

class ScratchArea {
 public:
  // `name` becomes one path component (e.g. "Suite.Test").
  explicit ScratchArea(const std::string& name);
  ScratchArea(const ScratchArea&) = delete;
  ScratchArea& operator=(const ScratchArea&) = delete;
  ~ScratchArea();

  const std::string& root() const { return root_; }
  std::string Path(const std::string& relative) const { return root_ + "/" + relative; }
  // Whether setup succeeded; the message says why not.
  const Status& status() const { return status_; }

  // Unmounts everything mounted below root(), detaches loop devices of the
  // images in it and removes it.
  Status CleanUp();

 private:
  std::string root_;
  Status status_;
};

// The name of the running GoogleTest test as "Suite.Test".
std::string CurrentTestName();

// Whether the file holds `needle` anywhere, read in chunks that overlap by
// needle.size() - 1 bytes so no match across a chunk boundary is missed.
Result<bool> FileContains(const std::string& path, std::string_view needle);

// What a copy of a tree must keep, per entry: type and mode, owner,
// modification time and content (file bytes or link target).
struct TreeEntry {
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  timespec mtime{};
  std::string content;
  bool operator==(const TreeEntry& other) const;
};

// Every entry below `root` by relative path, without following links.
std::map<std::string, TreeEntry> SnapshotTree(const std::string& root);

}  // namespace custos::storage
