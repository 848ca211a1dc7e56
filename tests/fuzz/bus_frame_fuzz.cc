// Fuzzes the bus wire parser: any bytes decode to frames, a wait for more, or
// an error; whatever decodes re-encodes to the very same bytes.
#include <cstdint>
#include <string>

#include "bus/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  custos::bus::Frame frame;
  while (!input.empty()) {
    auto result = custos::bus::DecodeFrame(input, 4096, frame);
    if (result.status != custos::bus::DecodeStatus::kFrame) break;
    if (result.consumed == 0 || result.consumed > input.size()) __builtin_trap();
    std::string again;
    custos::bus::EncodeFrame(frame, again);
    if (again != input.substr(0, result.consumed)) __builtin_trap();
    input.remove_prefix(result.consumed);
  }
  return 0;
}
