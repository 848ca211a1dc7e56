// Fuzzes the sensor configuration parser: any text must give a config or an
// Error, never a crash, hang or exception.
#include <cstdint>
#include <string>

#include "sensor/sensor_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto config = custos::ParseSensorConfig(text, "/nonexistent/fuzz/sensor.yaml");
  if (!config.ok() && config.error().message.empty()) __builtin_trap();
  return 0;
}
