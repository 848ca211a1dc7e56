#include "sandbox/cgroup_stats.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace custos {
namespace {

constexpr const char* kRoot = "/sys/fs/cgroup";

std::optional<std::uint64_t> ReadNumber(const std::string& file) {
  std::ifstream in(file);
  std::uint64_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

std::optional<std::uint64_t> ReadKey(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value) {
    if (name == key) return value;
  }
  return std::nullopt;
}

bool IsDirectory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool UnifiedOnly() {
  struct stat info {};
  return ::stat("/sys/fs/cgroup/cgroup.controllers", &info) == 0;
}

std::vector<std::string> Hierarchies(const std::string& cgroup_path) {
  if (UnifiedOnly()) return {std::string(kRoot) + cgroup_path};
  std::vector<std::string> paths;
  for (const char* controller :
       {"memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "net_cls",
        "net_prio", "perf_event", "hugetlb", "rdma", "misc", "systemd", "unified"}) {
    paths.push_back(std::string(kRoot) + "/" + controller + cgroup_path);
  }
  return paths;
}

}  // namespace

std::optional<std::uint64_t> CgroupMemoryBytes(const std::string& cgroup_path) {
  if (UnifiedOnly()) return ReadNumber(std::string(kRoot) + cgroup_path + "/memory.current");
  return ReadNumber(std::string(kRoot) + "/memory" + cgroup_path + "/memory.usage_in_bytes");
}

std::optional<std::uint64_t> CgroupOomKills(const std::string& cgroup_path) {
  if (UnifiedOnly())
    return ReadKey(std::string(kRoot) + cgroup_path + "/memory.events", "oom_kill");
  return ReadKey(std::string(kRoot) + "/memory" + cgroup_path + "/memory.oom_control", "oom_kill");
}

bool CgroupExists(const std::string& cgroup_path) {
  for (const auto& path : Hierarchies(cgroup_path)) {
    if (IsDirectory(path)) return true;
  }
  return false;
}

void RemoveEmptyCgroup(const std::string& cgroup_path) {
  for (const auto& path : Hierarchies(cgroup_path)) ::rmdir(path.c_str());
}

}  // namespace custos
