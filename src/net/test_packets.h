// Builds frames for the net tests: Ethernet, optional VLAN tags, IPv4 or
// IPv6 (optionally with a hop-by-hop header or as a fragment), TCP or UDP.
#pragma once

#include <cstdint>
#include <vector>

namespace custos::net::testing {

struct FrameSpec {
  bool ipv6 = false;
  std::vector<std::uint16_t> vlans;
  std::uint8_t protocol = 6;  // 6 TCP, 17 UDP, 1 ICMP
  std::uint16_t src_port = 40000;
  std::uint16_t dst_port = 80;
  std::uint8_t tcp_flags = 0x02;
  std::vector<std::uint8_t> payload;
  bool hop_by_hop = false;    // IPv6 only
  std::uint8_t src_last = 1;  // last byte of the source address
  std::uint8_t dst_last = 2;
};

inline void Put16(std::vector<std::uint8_t>& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}

inline std::vector<std::uint8_t> TransportBytes(const FrameSpec& spec) {
  std::vector<std::uint8_t> out;
  Put16(out, spec.src_port);
  Put16(out, spec.dst_port);
  if (spec.protocol == 6) {
    out.insert(out.end(), 8, 0);  // seq, ack
    out.push_back(5 << 4);
    out.push_back(spec.tcp_flags);
    out.insert(out.end(), 6, 0);  // window, checksum, urgent
  } else if (spec.protocol == 17) {
    Put16(out, static_cast<std::uint16_t>(8 + spec.payload.size()));
    Put16(out, 0);
  }
  out.insert(out.end(), spec.payload.begin(), spec.payload.end());
  return out;
}

inline std::vector<std::uint8_t> EthernetHeader(const FrameSpec& spec) {
  std::vector<std::uint8_t> out(12, 0xaa);
  for (std::size_t i = 0; i < spec.vlans.size(); ++i) {
    Put16(out, i == 0 && spec.vlans.size() > 1 ? 0x88a8 : 0x8100);
    Put16(out, spec.vlans[i]);
  }
  Put16(out, spec.ipv6 ? 0x86dd : 0x0800);
  return out;
}

// An IPv4 header for `payload_size` bytes, optionally a fragment.
inline std::vector<std::uint8_t> Ipv4Header(const FrameSpec& spec, std::size_t payload_size,
                                            std::uint16_t id = 0, std::uint16_t offset_bytes = 0,
                                            bool more = false) {
  std::vector<std::uint8_t> out{0x45, 0};
  Put16(out, static_cast<std::uint16_t>(20 + payload_size));
  Put16(out, id);
  Put16(out, static_cast<std::uint16_t>((more ? 0x2000 : 0) | (offset_bytes / 8)));
  out.push_back(64);
  out.push_back(spec.protocol);
  Put16(out, 0);
  for (std::uint8_t b : {std::uint8_t{198}, std::uint8_t{18}, std::uint8_t{0}, spec.src_last})
    out.push_back(b);
  for (std::uint8_t b : {std::uint8_t{198}, std::uint8_t{18}, std::uint8_t{0}, spec.dst_last})
    out.push_back(b);
  return out;
}

inline std::vector<std::uint8_t> BuildFrame(const FrameSpec& spec) {
  auto frame = EthernetHeader(spec);
  auto transport = TransportBytes(spec);
  if (!spec.ipv6) {
    auto ip = Ipv4Header(spec, transport.size());
    frame.insert(frame.end(), ip.begin(), ip.end());
  } else {
    std::size_t extension = spec.hop_by_hop ? 8 : 0;
    frame.push_back(0x60);
    frame.insert(frame.end(), 3, 0);
    Put16(frame, static_cast<std::uint16_t>(transport.size() + extension));
    frame.push_back(spec.hop_by_hop ? 0 : spec.protocol);
    frame.push_back(64);
    for (int side = 0; side < 2; ++side) {
      frame.push_back(0x20);
      frame.push_back(0x01);
      frame.insert(frame.end(), 13, 0);
      frame.push_back(side == 0 ? spec.src_last : spec.dst_last);
    }
    if (spec.hop_by_hop) {
      frame.push_back(spec.protocol);
      frame.push_back(0);  // 8 bytes in all
      frame.insert(frame.end(), 6, 0);
    }
  }
  frame.insert(frame.end(), transport.begin(), transport.end());
  return frame;
}

// Splits the transport bytes of `spec` into IPv4 fragments of `piece` bytes.
inline std::vector<std::vector<std::uint8_t>> BuildFragments(const FrameSpec& spec,
                                                             std::size_t piece, std::uint16_t id) {
  auto transport = TransportBytes(spec);
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::size_t at = 0; at < transport.size(); at += piece) {
    std::size_t size = std::min(piece, transport.size() - at);
    auto frame = EthernetHeader(spec);
    auto ip =
        Ipv4Header(spec, size, id, static_cast<std::uint16_t>(at), at + size < transport.size());
    frame.insert(frame.end(), ip.begin(), ip.end());
    frame.insert(frame.end(), transport.begin() + static_cast<long>(at),
                 transport.begin() + static_cast<long>(at + size));
    frames.push_back(frame);
  }
  return frames;
}

}  // namespace custos::net::testing
