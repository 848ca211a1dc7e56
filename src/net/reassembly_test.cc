#include "net/reassembly.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "net/decoder.h"
#include "net/test_packets.h"

namespace custos::net {
namespace {
using testing::BuildFragments;
using testing::FrameSpec;

FrameSpec UdpSpec() {
  FrameSpec spec;
  spec.protocol = 17;
  spec.dst_port = 53;
  spec.payload.assign(100, 0x5a);
  return spec;
}

std::optional<Reassembled> Feed(Reassembler& reassembler,
                                const std::vector<std::vector<std::uint8_t>>& frames,
                                DecodedPacket& last) {
  Decoder decoder;
  std::optional<Reassembled> result;
  for (const auto& frame : frames) {
    EXPECT_EQ(decoder.Decode(frame, last), DecodeStatus::kDecoded);
    EXPECT_TRUE(last.is_fragment);
    auto whole = reassembler.Add(last, frame, 1000);
    if (whole) result = whole;
  }
  return result;
}

TEST(Reassembler, RebuildsADatagramInAnyOrder) {
  auto frames = BuildFragments(UdpSpec(), 32, 7);
  ASSERT_EQ(frames.size(), 4u);
  std::reverse(frames.begin(), frames.end());
  Reassembler reassembler;
  DecodedPacket packet;
  auto whole = Feed(reassembler, frames, packet);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(whole->payload.size(), 108u);
  EXPECT_EQ(whole->frames, 4u);
  Decoder decoder;
  ASSERT_EQ(decoder.DecodeReassembled(whole->payload, packet), DecodeStatus::kDecoded);
  EXPECT_EQ(packet.dst_port, 53);
  EXPECT_EQ(packet.payload_length, 100u);
  EXPECT_EQ(reassembler.in_flight(), 0u);
}

TEST(Reassembler, DropsOverlappingFragments) {
  auto frames = BuildFragments(UdpSpec(), 32, 9);
  auto overlapping = BuildFragments(UdpSpec(), 48, 9);  // same id, other cut points
  std::vector<std::vector<std::uint8_t>> mixed{frames[0], overlapping[1], frames[1], frames[2],
                                               frames[3]};
  Reassembler reassembler;
  DecodedPacket packet;
  EXPECT_FALSE(Feed(reassembler, mixed, packet).has_value());
  EXPECT_EQ(reassembler.counters().overlapping, 1u);
  EXPECT_EQ(reassembler.counters().reassembled, 0u);
}

TEST(Reassembler, ForgetsDatagramsThatNeverFinish) {
  auto frames = BuildFragments(UdpSpec(), 32, 11);
  frames.pop_back();
  Reassembler reassembler(16, 1000);
  DecodedPacket packet;
  EXPECT_FALSE(Feed(reassembler, frames, packet).has_value());
  reassembler.Expire(5000);
  EXPECT_EQ(reassembler.in_flight(), 0u);
  EXPECT_EQ(reassembler.counters().timed_out, 1u);
}

TEST(Reassembler, BoundsDatagramsInFlight) {
  Reassembler reassembler(8);
  DecodedPacket packet;
  for (std::uint16_t id = 0; id < 20; ++id) {
    auto frames = BuildFragments(UdpSpec(), 32, id);
    frames.pop_back();
    Feed(reassembler, frames, packet);
  }
  EXPECT_LE(reassembler.in_flight(), 8u);
  EXPECT_EQ(reassembler.counters().evicted, 12u);
}

}  // namespace
}  // namespace custos::net
