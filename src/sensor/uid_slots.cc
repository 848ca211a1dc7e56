#include "sensor/uid_slots.h"

#include <nlohmann/json.hpp>
#include <set>

#include "common/files.h"

namespace custos {

UidSlots::UidSlots(std::string file, std::uint64_t uid_base)
    : file_(std::move(file)), uid_base_(uid_base) {}

Status UidSlots::Load() {
  auto text = ReadFile(file_);
  if (!text) return {};  // first run: nothing assigned yet
  auto document = nlohmann::json::parse(*text, nullptr, false);
  if (!document.is_object()) return Error{file_ + " is not a JSON object; fix or remove it"};
  for (const auto& [name, slot] : document.items()) {
    if (!slot.is_number_unsigned() || slot.get<std::uint64_t>() > 65535) {
      return Error{file_ + ": slot of '" + name + "' is not a number from 0 to 65535"};
    }
    slots_[name] = slot.get<std::uint32_t>();
  }
  return {};
}

Result<std::uint32_t> UidSlots::HostUidFor(const std::string& instrument) {
  auto found = slots_.find(instrument);
  if (found == slots_.end()) {
    std::set<std::uint32_t> used;
    for (const auto& [name, slot] : slots_) used.insert(slot);
    std::uint32_t slot = 0;
    while (used.contains(slot)) ++slot;
    slots_[instrument] = slot;
    CUSTOS_TRY(WriteFileAtomic(file_, nlohmann::json(slots_).dump(1), 0600));
    found = slots_.find(instrument);
  }
  std::uint64_t uid = uid_base_ + static_cast<std::uint64_t>(found->second) * kUidRangeSize;
  if (uid + kUidRangeSize > 0xFFFFFFFFull)
    return Error{"uid range for " + instrument + " overflows"};
  return static_cast<std::uint32_t>(uid);
}

}  // namespace custos
