#include "sandbox/netns.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "common/unique_fd.h"

namespace custos {

Result<std::string> RunInNetns(const std::string& netns_path, std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"nsenter", "--net=" + netns_path, "--"});
  return RunChecked(argv);
}

Result<InterfaceStats> ReadInterfaceStats(const std::string& netns_path,
                                          const std::string& device) {
  auto output = RunInNetns(netns_path, {"ip", "-s", "-j", "link", "show", "dev", device});
  if (!output) return output.error();
  auto document = nlohmann::json::parse(*output, nullptr, false);
  if (!document.is_array() || document.empty() || !document[0].contains("stats64")) {
    return Error{"no statistics for " + device};
  }
  const auto& stats = document[0]["stats64"];
  return InterfaceStats{stats["rx"].value("packets", 0ull), stats["tx"].value("packets", 0ull),
                        stats["tx"].value("dropped", 0ull)};
}

Status PinNetns(pid_t pid, const std::string& path) {
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!file.valid()) return ErrnoError("cannot create " + path);
  std::string source = "/proc/" + std::to_string(pid) + "/ns/net";
  if (::mount(source.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoError("cannot pin " + source + " at " + path);
  }
  return {};
}

Status UnpinNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoError("cannot unmount " + path);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("cannot remove " + path);
  return {};
}

std::string NamedNetnsPath(const std::string& name) { return "/run/netns/" + name; }

bool NamedNetnsExists(const std::string& name) {
  struct stat info {};
  return ::stat(NamedNetnsPath(name).c_str(), &info) == 0;
}

Status CreateNamedNetns(const std::string& name) {
  auto result = RunChecked({"ip", "netns", "add", name});
  if (!result) return result.error();
  return {};
}

Status DeleteNamedNetns(const std::string& name) {
  if (!NamedNetnsExists(name)) return {};
  auto result = RunChecked({"ip", "netns", "delete", name});
  if (!result) return result.error();
  return {};
}

}  // namespace custos
