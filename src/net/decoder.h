// Decodes Ethernet (with 802.1Q VLAN and 802.1ad QinQ tags), IPv4, IPv6
// (with extension headers), TCP, UDP and ICMP from hostile input. Every length
// is checked against what is really there; a packet that lies is counted
// under the anomaly that names the lie and skipped, never read past its end.
// A Decoder holds only counters; one per thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "net/packet.h"

namespace custos::net {

enum class Anomaly : std::uint8_t {
  kTruncatedEthernet,
  kTooManyVlanTags,
  kTruncatedIp,
  kBadIpVersion,
  kBadIpHeaderLength,
  kBadIpTotalLength,
  kTruncatedExtensionHeader,
  kTruncatedTcp,
  kBadTcpHeaderLength,
  kTruncatedUdp,
  kBadUdpLength,
  kTruncatedIcmp,
  kCount,
};

std::string_view AnomalyName(Anomaly anomaly);

enum class DecodeStatus {
  kDecoded,  // Ethernet through transport as far as present
  kNotIp,    // a valid frame carrying something else (ARP, LLDP, ...)
  kAnomaly,  // counted and skipped
};

class Decoder {
 public:
  DecodeStatus Decode(std::span<const std::uint8_t> frame, DecodedPacket& packet);
  // Decodes a frame that starts with the IP header (raw IP link types).
  DecodeStatus DecodeRawIp(std::span<const std::uint8_t> frame, DecodedPacket& packet);
  // Decodes the transport header of a reassembled datagram: `transport` is
  // the datagram's payload, `packet` keeps its addresses and protocol.
  DecodeStatus DecodeReassembled(std::span<const std::uint8_t> transport, DecodedPacket& packet);

  std::uint64_t count(Anomaly anomaly) const {
    return anomalies_[static_cast<std::size_t>(anomaly)];
  }
  std::uint64_t total_anomalies() const;

 private:
  DecodeStatus Fail(Anomaly anomaly);
  DecodeStatus DecodeIpAt(std::span<const std::uint8_t> frame, std::size_t offset,
                          DecodedPacket& packet);
  DecodeStatus DecodeIpv4(std::span<const std::uint8_t> frame, std::size_t offset,
                          DecodedPacket& packet);
  DecodeStatus DecodeIpv6(std::span<const std::uint8_t> frame, std::size_t offset,
                          DecodedPacket& packet);
  DecodeStatus DecodeTransport(std::span<const std::uint8_t> frame, std::size_t offset,
                               std::size_t end, DecodedPacket& packet);

  std::array<std::uint64_t, static_cast<std::size_t>(Anomaly::kCount)> anomalies_{};
};

}  // namespace custos::net
