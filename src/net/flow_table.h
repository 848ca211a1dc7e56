// Flows keyed on the five-tuple (and VLAN tags), both directions in one
// record: packets, bytes (frame bytes, as on the wire), first and last seen,
// and TCP flags per direction. Flows end on idle timeout, on an active
// timeout for long ones, or shortly after TCP FIN from both sides or RST.
// The number of flows is bounded; the oldest is ended early when full.
// Single-threaded; time comes from the packets, so a pcap replays exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "net/packet.h"

namespace custos::net {

struct FlowKey {
  IpAddress a;  // the lower (address, port) endpoint, so both directions meet
  IpAddress b;
  std::uint16_t a_port = 0;
  std::uint16_t b_port = 0;
  std::uint8_t protocol = 0;
  std::uint16_t vlan = 0;

  auto operator<=>(const FlowKey&) const = default;
};

struct FlowDirection {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint8_t tcp_flags = 0;  // OR of every packet's flags
};

enum class FlowEnd { kIdle, kActive, kTcpClosed, kEvicted, kFlushed };

struct FlowRecord {
  // The endpoint that sent the first packet seen is the source.
  IpAddress src;
  IpAddress dst;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint8_t protocol = 0;
  std::uint16_t vlan = 0;
  std::uint64_t first_us = 0;
  std::uint64_t last_us = 0;
  FlowDirection to_dst;  // src -> dst
  FlowDirection to_src;  // dst -> src
  FlowEnd end = FlowEnd::kIdle;
};

struct FlowTimeouts {
  std::uint64_t idle_us = 60'000'000;
  std::uint64_t active_us = 1'800'000'000;
  std::uint64_t tcp_closed_us = 5'000'000;
};

class FlowTable {
 public:
  using Sink = std::function<void(const FlowRecord&)>;

  FlowTable(Sink sink, FlowTimeouts timeouts = {}, std::size_t max_flows = 1'000'000)
      : sink_(std::move(sink)), timeouts_(timeouts), max_flows_(max_flows) {}

  // Counts one packet (or `frames` frames of a reassembled datagram).
  void Add(const DecodedPacket& packet, std::uint64_t now_us, std::uint32_t frames = 1,
           std::uint64_t frame_bytes = 0);
  // Ends flows whose time is up; call as time passes.
  void Expire(std::uint64_t now_us);
  // Ends every flow (at the end of a capture or at shutdown).
  void Flush();

  std::size_t size() const { return flows_.size(); }
  std::uint64_t evicted() const { return evicted_; }

 private:
  struct Entry {
    FlowRecord record;
    std::uint8_t fins = 0;  // bit 0: src sent FIN, bit 1: dst sent FIN
    bool closed = false;
  };
  void End(std::map<FlowKey, Entry>::iterator it, FlowEnd why);

  Sink sink_;
  FlowTimeouts timeouts_;
  std::size_t max_flows_;
  std::map<FlowKey, Entry> flows_;
  std::uint64_t evicted_ = 0;
};

}  // namespace custos::net
