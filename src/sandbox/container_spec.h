// What the sandbox needs to know to run one container: a plain description,
// free of sensor configuration, that the OCI bundle writer turns into a
// config.json. Built by the sensor's supervisor for each instrument.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace custos {

struct BindMount {
  std::string source;       // host path
  std::string destination;  // path inside the container
  bool read_only = true;
};

struct ContainerSpec {
  std::string id;  // runtime container id, unique on the host
  std::string hostname;
  std::vector<std::string> args;  // args[0]: executable, same path as on the host
  std::vector<std::string> env;
  std::string rootfs;  // absolute path; mounted read-only
  std::vector<BindMount> mounts;
  std::uint64_t tmpfs_bytes = 64ull << 20;  // transient storage at /tmp
  std::uint32_t host_uid = 0;               // container uid 0 maps here
  std::uint32_t uid_count = 65536;
  std::vector<std::string> capabilities;  // everything else is dropped
  bool sockets = true;                    // false: seccomp refuses socket() and socketpair()
  std::uint64_t memory_bytes = 256ull << 20;
  std::uint64_t pids = 64;
  double cpus = 1.0;
  std::uint64_t open_files = 1024;
  std::string cgroup_path;  // e.g. /custos/<sensor>/<instrument>
};

}  // namespace custos
