// Fuzzes the duration and size parsers and the ldd output parser.
#include <cstdint>
#include <string>

#include "common/units.h"
#include "sandbox/rootfs.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto duration = custos::ParseDuration(text);
  if (duration.ok() && duration->count() < 0) __builtin_trap();
  (void)custos::ParseSize(text);
  for (const auto& path : custos::ParseLddOutput(text)) {
    if (path.empty() || path.front() != '/') __builtin_trap();
  }
  return 0;
}
