// Finds the host files an executable needs to run: the binary itself, its
// shared libraries and the dynamic loader. The instrument's root filesystem
// is assembled from copies of exactly these (see AssembleRootfs).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace custos {

class RootfsResolver {
 public:
  // Paths (absolute, symlinks resolved to what the loader opens) of the
  // executable and every library it loads. Results are cached per path and
  // modification time, so repeated starts do not run the loader again.
  Result<std::vector<std::string>> FilesFor(const std::string& executable);

 private:
  struct Entry {
    long long mtime_ns = 0;
    std::vector<std::string> files;
  };
  std::map<std::string, Entry> cache_;
};

// Copies `files` (host paths) into `rootfs` at the same paths, following
// symlinks, root-owned and not writable by others. A copy whose source has
// not changed since is kept, so restarts cost little. Copies rather than bind
// mounts, because the runtime mounts from inside the container's user
// namespace, which cannot reach host paths below a private directory.
struct RootfsFile {
  std::string source;       // host path
  std::string destination;  // absolute path inside the root filesystem
};
Status AssembleRootfs(const std::vector<RootfsFile>& files, const std::string& rootfs);

// The executable lives here inside the container, whatever its host path:
// a host path below /tmp or /data would be hidden by the storage mounts.
std::string ExecutableInRootfs(const std::string& host_path);
// Where the platform mounts things; files may not be placed below them.
bool IsReservedPath(const std::string& path);

// Parses the output of `ldd` into library paths (exposed for tests and fuzzing).
std::vector<std::string> ParseLddOutput(const std::string& output);

}  // namespace custos
