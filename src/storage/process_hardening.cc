#include "storage/process_hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>

namespace custos::storage {

Status HardenProcess(const HardeningOptions& options) {
  if (options.disable_core_dumps) {
    rlimit none{0, 0};
    if (::setrlimit(RLIMIT_CORE, &none) != 0) return ErrnoError("setrlimit(RLIMIT_CORE, 0)");
  }
  if (options.non_dumpable && ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    return ErrnoError("prctl(PR_SET_DUMPABLE, 0)");
  return {};
}

}  // namespace custos::storage
