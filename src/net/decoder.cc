#include "net/decoder.h"

namespace custos::net {
namespace {

constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherIpv6 = 0x86dd;
constexpr std::uint16_t kEtherVlan = 0x8100;
constexpr std::uint16_t kEtherQinQ = 0x88a8;
constexpr std::uint16_t kEtherQinQOld = 0x9100;

std::uint16_t U16(std::span<const std::uint8_t> data, std::size_t at) {
  return static_cast<std::uint16_t>((data[at] << 8) | data[at + 1]);
}

std::uint32_t U32(std::span<const std::uint8_t> data, std::size_t at) {
  return (std::uint32_t{data[at]} << 24) | (std::uint32_t{data[at + 1]} << 16) |
         (std::uint32_t{data[at + 2]} << 8) | data[at + 3];
}

bool IsIpv6ExtensionHeader(std::uint8_t next) {
  return next == 0 || next == 43 || next == 60 || next == 135 || next == 139 || next == 140;
}

}  // namespace

std::string_view AnomalyName(Anomaly anomaly) {
  switch (anomaly) {
    case Anomaly::kTruncatedEthernet:
      return "truncated_ethernet";
    case Anomaly::kTooManyVlanTags:
      return "too_many_vlan_tags";
    case Anomaly::kTruncatedIp:
      return "truncated_ip";
    case Anomaly::kBadIpVersion:
      return "bad_ip_version";
    case Anomaly::kBadIpHeaderLength:
      return "bad_ip_header_length";
    case Anomaly::kBadIpTotalLength:
      return "bad_ip_total_length";
    case Anomaly::kTruncatedExtensionHeader:
      return "truncated_extension_header";
    case Anomaly::kTruncatedTcp:
      return "truncated_tcp";
    case Anomaly::kBadTcpHeaderLength:
      return "bad_tcp_header_length";
    case Anomaly::kTruncatedUdp:
      return "truncated_udp";
    case Anomaly::kBadUdpLength:
      return "bad_udp_length";
    case Anomaly::kTruncatedIcmp:
      return "truncated_icmp";
    case Anomaly::kCount:
      break;
  }
  return "unknown";
}

std::uint64_t Decoder::total_anomalies() const {
  std::uint64_t total = 0;
  for (auto count : anomalies_) total += count;
  return total;
}

DecodeStatus Decoder::Fail(Anomaly anomaly) {
  ++anomalies_[static_cast<std::size_t>(anomaly)];
  return DecodeStatus::kAnomaly;
}

DecodeStatus Decoder::Decode(std::span<const std::uint8_t> frame, DecodedPacket& packet) {
  packet = DecodedPacket{};
  packet.frame_length = static_cast<std::uint32_t>(frame.size());
  if (frame.size() < 14) return Fail(Anomaly::kTruncatedEthernet);
  std::size_t offset = 12;
  std::uint16_t type = U16(frame, offset);
  while (type == kEtherVlan || type == kEtherQinQ || type == kEtherQinQOld) {
    if (packet.vlan_count == 2) return Fail(Anomaly::kTooManyVlanTags);
    if (frame.size() < offset + 6) return Fail(Anomaly::kTruncatedEthernet);
    packet.vlan_ids[packet.vlan_count++] = U16(frame, offset + 2) & 0x0fff;
    offset += 4;
    type = U16(frame, offset);
  }
  offset += 2;
  if (type != kEtherIpv4 && type != kEtherIpv6) return DecodeStatus::kNotIp;
  return DecodeIpAt(frame, offset, packet);
}

DecodeStatus Decoder::DecodeRawIp(std::span<const std::uint8_t> frame, DecodedPacket& packet) {
  packet = DecodedPacket{};
  packet.frame_length = static_cast<std::uint32_t>(frame.size());
  return DecodeIpAt(frame, 0, packet);
}

DecodeStatus Decoder::DecodeReassembled(std::span<const std::uint8_t> transport,
                                        DecodedPacket& packet) {
  packet.is_fragment = false;
  // Offsets now refer to the reassembled payload, not to a frame.
  return DecodeTransport(transport, 0, transport.size(), packet);
}

DecodeStatus Decoder::DecodeIpAt(std::span<const std::uint8_t> frame, std::size_t offset,
                                 DecodedPacket& packet) {
  if (frame.size() < offset + 1) return Fail(Anomaly::kTruncatedIp);
  std::uint8_t version = frame[offset] >> 4;
  if (version == 4) return DecodeIpv4(frame, offset, packet);
  if (version == 6) return DecodeIpv6(frame, offset, packet);
  return Fail(Anomaly::kBadIpVersion);
}

DecodeStatus Decoder::DecodeIpv4(std::span<const std::uint8_t> frame, std::size_t offset,
                                 DecodedPacket& packet) {
  if (frame.size() < offset + 20) return Fail(Anomaly::kTruncatedIp);
  std::size_t header = (frame[offset] & 0x0f) * 4u;
  if (header < 20) return Fail(Anomaly::kBadIpHeaderLength);
  std::size_t total = U16(frame, offset + 2);
  if (total < header) return Fail(Anomaly::kBadIpTotalLength);
  // Ethernet pads short frames, so the frame may be longer than the datagram, never shorter.
  if (frame.size() < offset + total) return Fail(Anomaly::kBadIpTotalLength);
  packet.ip_length = static_cast<std::uint32_t>(total);
  packet.src.version = packet.dst.version = 4;
  for (int i = 0; i < 4; ++i) {
    packet.src.bytes[i] = frame[offset + 12 + i];
    packet.dst.bytes[i] = frame[offset + 16 + i];
  }
  packet.ip_protocol = frame[offset + 9];
  std::uint16_t fragment = U16(frame, offset + 6);
  packet.more_fragments = (fragment & 0x2000) != 0;
  packet.fragment_offset = (fragment & 0x1fffu) * 8u;
  if (packet.more_fragments || packet.fragment_offset != 0) {
    packet.is_fragment = true;
    packet.fragment_id = U16(frame, offset + 4);
    packet.fragment_payload_offset = static_cast<std::uint32_t>(offset + header);
    packet.fragment_payload_length = static_cast<std::uint32_t>(total - header);
    return DecodeStatus::kDecoded;
  }
  return DecodeTransport(frame, offset + header, offset + total, packet);
}

DecodeStatus Decoder::DecodeIpv6(std::span<const std::uint8_t> frame, std::size_t offset,
                                 DecodedPacket& packet) {
  if (frame.size() < offset + 40) return Fail(Anomaly::kTruncatedIp);
  std::size_t payload = U16(frame, offset + 4);
  if (frame.size() < offset + 40 + payload) return Fail(Anomaly::kBadIpTotalLength);
  std::size_t end = offset + 40 + payload;
  packet.ip_length = static_cast<std::uint32_t>(40 + payload);
  packet.src.version = packet.dst.version = 6;
  for (int i = 0; i < 16; ++i) {
    packet.src.bytes[i] = frame[offset + 8 + i];
    packet.dst.bytes[i] = frame[offset + 24 + i];
  }
  std::uint8_t next = frame[offset + 6];
  std::size_t at = offset + 40;
  // Walk the extension headers; each says how long it is, which is checked.
  for (int hops = 0; IsIpv6ExtensionHeader(next) || next == 44; ++hops) {
    if (hops > 16 || at + 8 > end) return Fail(Anomaly::kTruncatedExtensionHeader);
    if (next == 44) {  // fragment header: fixed 8 bytes
      std::uint16_t fragment = U16(frame, at + 2);
      packet.fragment_offset = (fragment & 0xfff8u);
      packet.more_fragments = (fragment & 1) != 0;
      packet.fragment_id = U32(frame, at + 4);
      std::uint8_t inner = frame[at];
      at += 8;
      if (packet.more_fragments || packet.fragment_offset != 0) {
        packet.is_fragment = true;
        packet.ip_protocol = inner;
        packet.fragment_payload_offset = static_cast<std::uint32_t>(at);
        packet.fragment_payload_length = static_cast<std::uint32_t>(end - at);
        return DecodeStatus::kDecoded;
      }
      next = inner;
      continue;
    }
    std::size_t length = next == 51 ? (frame[at + 1] + 2u) * 4u : (frame[at + 1] + 1u) * 8u;
    if (at + length > end) return Fail(Anomaly::kTruncatedExtensionHeader);
    next = frame[at];
    at += length;
  }
  packet.ip_protocol = next;
  return DecodeTransport(frame, at, end, packet);
}

DecodeStatus Decoder::DecodeTransport(std::span<const std::uint8_t> frame, std::size_t offset,
                                      std::size_t end, DecodedPacket& packet) {
  std::size_t available = end - offset;
  switch (packet.ip_protocol) {
    case 6: {
      if (available < 20) return Fail(Anomaly::kTruncatedTcp);
      std::size_t header = (frame[offset + 12] >> 4) * 4u;
      if (header < 20 || header > available) return Fail(Anomaly::kBadTcpHeaderLength);
      packet.transport = Transport::kTcp;
      packet.src_port = U16(frame, offset);
      packet.dst_port = U16(frame, offset + 2);
      packet.tcp_flags = frame[offset + 13];
      packet.payload_offset = static_cast<std::uint32_t>(offset + header);
      packet.payload_length = static_cast<std::uint32_t>(available - header);
      return DecodeStatus::kDecoded;
    }
    case 17: {
      if (available < 8) return Fail(Anomaly::kTruncatedUdp);
      std::size_t length = U16(frame, offset + 4);
      if (length < 8 || length > available) return Fail(Anomaly::kBadUdpLength);
      packet.transport = Transport::kUdp;
      packet.src_port = U16(frame, offset);
      packet.dst_port = U16(frame, offset + 2);
      packet.payload_offset = static_cast<std::uint32_t>(offset + 8);
      packet.payload_length = static_cast<std::uint32_t>(length - 8);
      return DecodeStatus::kDecoded;
    }
    case 1:
    case 58: {
      if (available < 4) return Fail(Anomaly::kTruncatedIcmp);
      packet.transport = packet.ip_protocol == 1 ? Transport::kIcmp : Transport::kIcmpV6;
      packet.src_port = frame[offset];
      packet.dst_port = frame[offset + 1];
      packet.payload_offset = static_cast<std::uint32_t>(offset + 4);
      packet.payload_length = static_cast<std::uint32_t>(available - 4);
      return DecodeStatus::kDecoded;
    }
    default:
      packet.transport = Transport::kOther;
      packet.payload_offset = static_cast<std::uint32_t>(offset);
      packet.payload_length = static_cast<std::uint32_t>(available);
      return DecodeStatus::kDecoded;
  }
}

}  // namespace custos::net
