// A simulated sensor: its identity from enrollment and its spool's seqs,
// which every phase of the bench continues.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "bench/fleet/net.h"
#include "crypto/key.h"

namespace custos::fleetbench {

// A sensor's identity and its spool's counters, kept across phases (seqs
// only grow). Touched only by the io_context of the channel that runs it.
struct Sensor {
  std::string id;
  std::optional<crypto::KeyPair> key;
  std::unique_ptr<ssl::context> tls;
  tcp::endpoint channel;
  // As a new spool does (docs/fleet-protocol.md): the first seq is the time
  // in microseconds, so seqs are large and differ between sensors.
  std::uint64_t first_seq =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  std::uint64_t next_seq = first_seq;
  std::uint64_t acked = first_seq - 1;  // highest seq the fleet acknowledged
  std::uint64_t next_batch = 1;

  std::uint64_t acknowledged() const { return acked + 1 - first_seq; }
};

}  // namespace custos::fleetbench
