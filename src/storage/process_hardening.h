// Process-wide settings that keep key material in sensord's memory out of
// core dumps and away from debuggers of the same uid. Call once, early in
// main, before any key is fetched; affects the whole process (all threads).
//
// What it covers:
//  - RLIMIT_CORE 0 (soft and hard): a crash writes no core file, so no key
//    lands on disk through one (SecretBytes also marks its pages
//    MADV_DONTDUMP, which covers a core_pattern pipe handler too).
//  - PR_SET_DUMPABLE 0: no core dump at all, /proc/<pid>/{mem,environ,maps,
//    fd,...} become root-owned, and ptrace attach needs CAP_SYS_PTRACE, so a
//    non-root process running as the same uid cannot read our memory.
// What it does not cover: root with CAP_SYS_PTRACE (or /dev/mem, kernel
// modules), a kernel compromise, or cold-boot attacks on RAM. The flag is
// reset on execve, so programs sensord starts (runc, ip) are not covered;
// they never hold keys.
#pragma once

#include "common/result.h"

namespace custos::storage {

struct HardeningOptions {
  bool disable_core_dumps = true;  // RLIMIT_CORE 0
  bool non_dumpable = true;        // prctl(PR_SET_DUMPABLE, 0)
};

Status HardenProcess(const HardeningOptions& options = {});

}  // namespace custos::storage
