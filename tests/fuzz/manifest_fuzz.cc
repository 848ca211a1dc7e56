// Fuzzes the instrument manifest parser.
#include <cstdint>
#include <string>

#include "sensor/sensor_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto manifest = custos::ParseManifestText(text, "/nonexistent/fuzz/manifest.yaml");
  if (manifest.ok() && manifest->executable.empty()) __builtin_trap();
  return 0;
}
