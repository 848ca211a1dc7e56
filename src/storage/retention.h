// Deletes what an instrument stored longer ago than its retention period.
// The directory is the instrument's own and may hold hostile symlinks, so the
// walk never follows a link and works relative to directory descriptors.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace custos {

struct SweepReport {
  std::uint64_t deleted = 0;
  std::uint64_t kept = 0;
};

// Removes every non-directory entry below `root` whose modification time is
// before `cutoff` (symlinks themselves, never their targets), and then every
// directory left empty that is itself older than the cutoff. `root` stays.
Result<SweepReport> SweepExpired(const std::string& root,
                                 std::chrono::system_clock::time_point cutoff);

}  // namespace custos
