#include "net/decoder.h"

#include <gtest/gtest.h>

#include "net/test_packets.h"

namespace custos::net {
namespace {
using testing::BuildFrame;
using testing::FrameSpec;

TEST(Decoder, ReadsIpv4Tcp) {
  FrameSpec spec;
  spec.tcp_flags = 0x12;
  spec.payload = {'h', 'i'};
  auto frame = BuildFrame(spec);
  Decoder decoder;
  DecodedPacket packet;
  ASSERT_EQ(decoder.Decode(frame, packet), DecodeStatus::kDecoded);
  EXPECT_EQ(packet.src.version, 4);
  EXPECT_EQ(packet.src.bytes[3], 1);
  EXPECT_EQ(packet.dst.bytes[3], 2);
  EXPECT_EQ(packet.transport, Transport::kTcp);
  EXPECT_EQ(packet.src_port, 40000);
  EXPECT_EQ(packet.dst_port, 80);
  EXPECT_EQ(packet.tcp_flags, 0x12);
  EXPECT_EQ(packet.payload_length, 2u);
  EXPECT_EQ(frame[packet.payload_offset], 'h');
}

TEST(Decoder, ReadsVlanAndQinQTags) {
  FrameSpec spec;
  spec.vlans = {100, 200};
  spec.protocol = 17;
  auto frame = BuildFrame(spec);
  Decoder decoder;
  DecodedPacket packet;
  ASSERT_EQ(decoder.Decode(frame, packet), DecodeStatus::kDecoded);
  EXPECT_EQ(packet.vlan_count, 2);
  EXPECT_EQ(packet.vlan_ids[0], 100);
  EXPECT_EQ(packet.vlan_ids[1], 200);
  EXPECT_EQ(packet.transport, Transport::kUdp);
}

TEST(Decoder, WalksIpv6ExtensionHeaders) {
  FrameSpec spec;
  spec.ipv6 = true;
  spec.hop_by_hop = true;
  spec.protocol = 17;
  spec.dst_port = 53;
  spec.payload = {1, 2, 3};
  auto frame = BuildFrame(spec);
  Decoder decoder;
  DecodedPacket packet;
  ASSERT_EQ(decoder.Decode(frame, packet), DecodeStatus::kDecoded);
  EXPECT_EQ(packet.src.version, 6);
  EXPECT_EQ(packet.ip_protocol, 17);
  EXPECT_EQ(packet.dst_port, 53);
  EXPECT_EQ(packet.payload_length, 3u);
}

TEST(Decoder, LeavesOtherEthertypesAlone) {
  std::vector<std::uint8_t> arp(42, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  Decoder decoder;
  DecodedPacket packet;
  EXPECT_EQ(decoder.Decode(arp, packet), DecodeStatus::kNotIp);
  EXPECT_EQ(decoder.total_anomalies(), 0u);
}

TEST(Decoder, EveryTruncationIsCountedNeverRead) {
  for (bool ipv6 : {false, true}) {
    FrameSpec spec;
    spec.ipv6 = ipv6;
    spec.hop_by_hop = ipv6;
    spec.payload = {1, 2, 3, 4};
    auto frame = BuildFrame(spec);
    Decoder decoder;
    for (std::size_t cut = 0; cut < frame.size(); ++cut) {
      // A copy of exactly `cut` bytes, so AddressSanitizer sees any overread.
      std::vector<std::uint8_t> prefix(frame.begin(), frame.begin() + static_cast<long>(cut));
      DecodedPacket packet;
      EXPECT_EQ(decoder.Decode(prefix, packet), DecodeStatus::kAnomaly) << "cut at " << cut;
    }
    EXPECT_EQ(decoder.total_anomalies(), frame.size());
  }
}

TEST(Decoder, NamesTheLie) {
  FrameSpec spec;
  auto frame = BuildFrame(spec);
  Decoder decoder;
  DecodedPacket packet;
  auto bad_ihl = frame;
  bad_ihl[14] = 0x44;  // header of 16 bytes
  EXPECT_EQ(decoder.Decode(bad_ihl, packet), DecodeStatus::kAnomaly);
  EXPECT_EQ(decoder.count(Anomaly::kBadIpHeaderLength), 1u);
  auto long_total = frame;
  long_total[16] = 0x7f;  // claims far more than the frame holds
  EXPECT_EQ(decoder.Decode(long_total, packet), DecodeStatus::kAnomaly);
  EXPECT_EQ(decoder.count(Anomaly::kBadIpTotalLength), 1u);
  auto bad_offset = frame;
  bad_offset[14 + 20 + 12] = 0xf0;  // TCP header of 60 bytes in a 20-byte segment
  EXPECT_EQ(decoder.Decode(bad_offset, packet), DecodeStatus::kAnomaly);
  EXPECT_EQ(decoder.count(Anomaly::kBadTcpHeaderLength), 1u);
  auto version = frame;
  version[14] = 0x75;
  EXPECT_EQ(decoder.Decode(version, packet), DecodeStatus::kAnomaly);
  EXPECT_EQ(decoder.count(Anomaly::kBadIpVersion), 1u);
}

TEST(Decoder, AcceptsEthernetPadding) {
  FrameSpec spec;
  spec.protocol = 17;
  auto frame = BuildFrame(spec);
  frame.resize(60, 0);  // padded to the Ethernet minimum
  Decoder decoder;
  DecodedPacket packet;
  ASSERT_EQ(decoder.Decode(frame, packet), DecodeStatus::kDecoded);
  EXPECT_EQ(packet.payload_length, 0u);
}

}  // namespace
}  // namespace custos::net
