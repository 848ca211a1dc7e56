// IPv4 and IPv6 fragment reassembly. Fragments are kept per (addresses, id,
// protocol) until the datagram is whole, then handed back as its transport
// payload. Hostile input is expected: overlapping fragments (the classic
// evasion) poison the whole datagram, which is counted and dropped; sizes
// past 64 KiB, too many datagrams in flight and fragments that never finish
// are bounded and counted. Single-threaded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "net/packet.h"

namespace custos::net {

struct ReassemblyCounters {
  std::uint64_t fragments = 0;
  std::uint64_t reassembled = 0;
  std::uint64_t overlapping = 0;  // datagrams dropped for overlapping fragments
  std::uint64_t oversized = 0;    // past 65535 bytes
  std::uint64_t timed_out = 0;
  std::uint64_t evicted = 0;  // dropped because too many were in flight
};

struct Reassembled {
  std::vector<std::uint8_t> payload;  // the transport header and data
  std::uint32_t frames = 0;           // fragments it was built from
  std::uint64_t frame_bytes = 0;      // their frame lengths, summed
};

class Reassembler {
 public:
  explicit Reassembler(std::size_t max_datagrams = 4096, std::uint64_t timeout_us = 30'000'000)
      : max_datagrams_(max_datagrams), timeout_us_(timeout_us) {}

  // Adds the fragment described by `packet` (from `frame`); returns the
  // whole datagram once its last piece arrived.
  std::optional<Reassembled> Add(const DecodedPacket& packet, std::span<const std::uint8_t> frame,
                                 std::uint64_t now_us);
  // Drops datagrams not finished within the timeout.
  void Expire(std::uint64_t now_us);

  const ReassemblyCounters& counters() const { return counters_; }
  std::size_t in_flight() const { return datagrams_.size(); }

 private:
  using Key = std::tuple<IpAddress, IpAddress, std::uint32_t, std::uint8_t>;
  struct Datagram {
    std::map<std::uint32_t, std::vector<std::uint8_t>> pieces;  // by offset
    std::optional<std::uint32_t> total;                         // known once the last fragment came
    std::uint64_t first_us = 0;
    std::uint32_t frames = 0;
    std::uint64_t frame_bytes = 0;
    bool poisoned = false;  // overlapping: ignore the rest until it times out
  };

  std::size_t max_datagrams_;
  std::uint64_t timeout_us_;
  std::map<Key, Datagram> datagrams_;
  ReassemblyCounters counters_;
};

}  // namespace custos::net
