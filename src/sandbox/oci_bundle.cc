#include "sandbox/oci_bundle.h"

#include <cmath>

#include "common/files.h"
#include "sandbox/seccomp_profile.h"

namespace custos {
namespace {

nlohmann::json Mount(const std::string& destination, const std::string& type,
                     const std::string& source, std::vector<std::string> options) {
  return {{"destination", destination}, {"type", type}, {"source", source}, {"options", options}};
}

nlohmann::json BindMountJson(const std::string& source, const std::string& destination,
                             bool read_only) {
  std::vector<std::string> options{"rbind", "nosuid", "nodev"};
  options.push_back(read_only ? "ro" : "rw");
  return Mount(destination, "bind", source, options);
}

nlohmann::json Mounts(const ContainerSpec& spec) {
  auto mounts = nlohmann::json::array();
  mounts.push_back(Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  mounts.push_back(
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  mounts.push_back(Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  // Transient storage: gone when the container's mount namespace goes.
  mounts.push_back(Mount(
      "/tmp", "tmpfs", "tmpfs",
      {"nosuid", "nodev", "mode=1777", "size=" + std::to_string(spec.tmpfs_bytes / 1024) + "k"}));
  for (const auto& mount : spec.mounts) {
    mounts.push_back(BindMountJson(mount.source, mount.destination, mount.read_only));
  }
  return mounts;
}

nlohmann::json Capabilities(const ContainerSpec& spec) {
  auto list = nlohmann::json(spec.capabilities);
  return {{"bounding", list},
          {"effective", list},
          {"permitted", list},
          {"inheritable", nlohmann::json::array()},
          {"ambient", nlohmann::json::array()}};
}

nlohmann::json Resources(const ContainerSpec& spec) {
  constexpr std::int64_t kPeriod = 100'000;
  auto quota = static_cast<std::int64_t>(std::llround(spec.cpus * kPeriod));
  auto memory = static_cast<std::int64_t>(spec.memory_bytes);
  return {{"memory", {{"limit", memory}, {"swap", memory}}},
          {"pids", {{"limit", static_cast<std::int64_t>(spec.pids)}}},
          {"cpu", {{"quota", quota}, {"period", kPeriod}}},
          {"devices", {{{"allow", false}, {"access", "rwm"}}}}};
}

}  // namespace

nlohmann::json BuildOciConfig(const ContainerSpec& spec) {
  nlohmann::json process = {
      {"terminal", false},
      {"user", {{"uid", 0}, {"gid", 0}}},
      {"args", spec.args},
      {"env", spec.env},
      {"cwd", "/"},
      {"capabilities", Capabilities(spec)},
      {"rlimits",
       {{{"type", "RLIMIT_NOFILE"}, {"hard", spec.open_files}, {"soft", spec.open_files}},
        {{"type", "RLIMIT_CORE"}, {"hard", 0}, {"soft", 0}}}},
      {"noNewPrivileges", true},
      {"oomScoreAdj", 500}};
  auto id_map = nlohmann::json::array(
      {{{"containerID", 0}, {"hostID", spec.host_uid}, {"size", spec.uid_count}}});
  nlohmann::json linux_section = {
      {"namespaces",
       {{{"type", "pid"}},
        {{"type", "network"}},
        {{"type", "ipc"}},
        {{"type", "uts"}},
        {{"type", "mount"}},
        {{"type", "user"}},
        {{"type", "cgroup"}}}},
      {"uidMappings", id_map},
      {"gidMappings", id_map},
      {"resources", Resources(spec)},
      {"cgroupsPath", spec.cgroup_path},
      {"seccomp", InstrumentSeccompProfile(spec.sockets)},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        "/sys/devices/virtual/powercap", "/sys/kernel"}},
      {"readonlyPaths",
       {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}};
  return {{"ociVersion", "1.0.2"},
          {"process", process},
          {"root", {{"path", spec.rootfs}, {"readonly", true}}},
          {"hostname", spec.hostname},
          {"mounts", Mounts(spec)},
          {"linux", linux_section}};
}

Status WriteOciBundle(const ContainerSpec& spec, const std::string& bundle_dir) {
  // The runtime mounts from inside the user namespace, where it cannot create
  // directories in the root-owned root filesystem; make the mount points here.
  for (const auto& mount : Mounts(spec)) {
    std::string destination = mount["destination"];
    if (destination.rfind("/dev/", 0) == 0) continue;  // inside the /dev tmpfs
    CUSTOS_TRY(MakeDirectories(spec.rootfs + destination, 0755));
  }
  return WriteFileAtomic(bundle_dir + "/config.json", BuildOciConfig(spec).dump(1), 0600);
}

}  // namespace custos
