// Drives an OCI runtime binary (runc, or crun where the host's cgroups allow)
// through its command line. All containers live under one runtime state
// directory of the sensor's own, so nothing else on the host is touched.
// Not thread-safe: the sensor's event loop owns it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace custos {

class OciRuntime {
 public:
  OciRuntime(std::string binary, std::string state_root);

  // `runc create`: sets up the container and leaves its init waiting for
  // Start. The init's stdout/stderr go to output_fd. Returns the init's pid.
  // `pass_fds` reach the container's process as descriptors 3, 4, ...
  Result<pid_t> Create(const std::string& id, const std::string& bundle, int output_fd,
                       const std::vector<int>& pass_fds = {});
  Status Start(const std::string& id);
  // `runc run --detach`: create and start in one call.
  Result<pid_t> Run(const std::string& id, const std::string& bundle, int output_fd,
                    const std::vector<int>& pass_fds = {});
  Status Kill(const std::string& id, int signal);
  // Removes the container's state and cgroup; `force` kills it first.
  Status Delete(const std::string& id, bool force);
  Result<std::vector<std::string>> List();

  const std::string& binary() const { return binary_; }

 private:
  std::vector<std::string> Command(std::initializer_list<std::string> args) const;
  Result<pid_t> Launch(const std::string& verb, const std::string& id, const std::string& bundle,
                       int output_fd, const std::vector<int>& pass_fds);

  std::string binary_;
  std::string state_root_;
};

}  // namespace custos
