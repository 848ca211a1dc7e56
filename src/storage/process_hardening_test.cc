#include "storage/process_hardening.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace custos::storage {
namespace {

// Runs in a child so the test binary itself stays dumpable.
int HardenedChildExitCode(const HardeningOptions& options) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!HardenProcess(options)) ::_exit(10);
    rlimit core{};
    ::getrlimit(RLIMIT_CORE, &core);
    int dumpable = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    int code = 0;
    if (options.disable_core_dumps && (core.rlim_cur != 0 || core.rlim_max != 0)) code |= 1;
    if (options.non_dumpable && dumpable != 0) code |= 2;
    if (!options.non_dumpable && dumpable != 1) code |= 4;
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ProcessHardeningTest, NoCoreFilesAndNotDumpable) { EXPECT_EQ(HardenedChildExitCode({}), 0); }

TEST(ProcessHardeningTest, DumpableFlagIsOptional) {
  EXPECT_EQ(HardenedChildExitCode({.disable_core_dumps = true, .non_dumpable = false}), 0);
}

}  // namespace
}  // namespace custos::storage
