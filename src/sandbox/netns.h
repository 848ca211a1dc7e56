// Network namespaces: running a command inside one, and pinning a
// container's namespace to a file so it outlives the container's processes
// (needed to hand an interface back after the instrument dies).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace custos {

// Runs argv with its network namespace switched to the one at netns_path.
Result<std::string> RunInNetns(const std::string& netns_path, std::vector<std::string> argv);

// An interface's kernel counters, read inside the namespace it lives in.
struct InterfaceStats {
  std::uint64_t rx_packets = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_dropped = 0;
};
Result<InterfaceStats> ReadInterfaceStats(const std::string& netns_path, const std::string& device);

// Bind-mounts /proc/<pid>/ns/net onto `path` (created if missing).
Status PinNetns(pid_t pid, const std::string& path);
// Unmounts and removes a pin; missing pins are not an error.
Status UnpinNetns(const std::string& path);

// A named namespace under /run/netns, as `ip netns add` makes it; removed
// (with every interface in it) by DeleteNamedNetns.
Status CreateNamedNetns(const std::string& name);
Status DeleteNamedNetns(const std::string& name);
std::string NamedNetnsPath(const std::string& name);
bool NamedNetnsExists(const std::string& name);

}  // namespace custos
