// Fuzzes the fleet channel's message parser (what a possibly compromised
// sensor sends fleetd): any bytes parse to a message or an error, never a
// crash; what parses keeps the limits the protocol sets.
#include <cstdint>
#include <string>
#include <variant>

#include "fleet/channel_messages.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto message = custos::fleet::ParseSensorMessage(input);
  if (!message.ok()) return 0;
  if (const auto* events = std::get_if<custos::fleet::EventsMessage>(&*message)) {
    if (events->events.empty() || events->events.size() > custos::fleet::kMaxBatchEvents) {
      __builtin_trap();
    }
    std::uint64_t previous = 0;
    for (const auto& event : events->events) {
      if (event.seq <= previous) __builtin_trap();
      previous = event.seq;
    }
  }
  return 0;
}
