// A decoded packet: what the decoders found in one frame, as offsets and
// values, never pointers into memory that may go away. Plain data.
#pragma once

#include <array>
#include <cstdint>

namespace custos::net {

struct IpAddress {
  std::uint8_t version = 0;              // 4 or 6
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first four

  auto operator<=>(const IpAddress&) const = default;
};

enum class Transport : std::uint8_t {
  kNone = 0,
  kIcmp = 1,
  kTcp = 6,
  kUdp = 17,
  kIcmpV6 = 58,
  kOther = 255
};

struct DecodedPacket {
  std::uint32_t frame_length = 0;  // bytes on the wire
  std::uint16_t vlan_ids[2] = {0, 0};
  std::uint8_t vlan_count = 0;
  IpAddress src;
  IpAddress dst;
  std::uint8_t ip_protocol = 0;  // the transport protocol number after extension headers
  std::uint32_t ip_length = 0;   // the IP datagram's length (header + payload)
  bool is_fragment = false;      // a fragment; transport fields are not set
  std::uint32_t fragment_id = 0;
  std::uint32_t fragment_offset = 0;  // bytes
  bool more_fragments = false;
  std::uint32_t fragment_payload_offset = 0;  // where the fragment's data starts in the frame
  std::uint32_t fragment_payload_length = 0;
  Transport transport = Transport::kNone;
  std::uint16_t src_port = 0;  // ICMP: type in src_port, code in dst_port
  std::uint16_t dst_port = 0;
  std::uint8_t tcp_flags = 0;
  std::uint32_t payload_offset = 0;  // application payload in the frame
  std::uint32_t payload_length = 0;
};

}  // namespace custos::net
