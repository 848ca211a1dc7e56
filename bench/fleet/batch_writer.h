// The text of the channel's events messages, made fast enough to flood.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace custos::fleetbench {

// Builds `events` messages by appending text: the flood phase makes tens of
// megabytes of them a second, on the same two cores as fleetd.
class BatchWriter {
 public:
  explicit BatchWriter(std::size_t event_bytes) {
    // The body's fixed part is about 110 bytes; the rest is padding.
    pad_.assign(event_bytes > 110 ? event_bytes - 110 : 1, 'x');
  }

  std::string Build(std::uint64_t batch, std::uint64_t first_seq, std::size_t count) const;

 private:
  std::string pad_;
};

}  // namespace custos::fleetbench
