// Gives each instrument its own host uid range, stable across restarts (its
// persistent files are owned by it). Ranges are 65536 wide, from uid_base;
// the assignment is kept in <data_root>/uid-slots.json.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/result.h"

namespace custos {

inline constexpr std::uint32_t kUidRangeSize = 65536;

class UidSlots {
 public:
  UidSlots(std::string file, std::uint64_t uid_base);
  Status Load();
  // The first host uid of the instrument's range, assigning one if new.
  Result<std::uint32_t> HostUidFor(const std::string& instrument);

 private:
  std::string file_;
  std::uint64_t uid_base_;
  std::map<std::string, std::uint32_t> slots_;
};

}  // namespace custos
