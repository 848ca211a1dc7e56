#include "net/flow_table.h"

#include <gtest/gtest.h>

#include "net/decoder.h"
#include "net/test_packets.h"

namespace custos::net {
namespace {
using testing::BuildFrame;
using testing::FrameSpec;

DecodedPacket Packet(bool reply, std::uint8_t flags, std::size_t payload = 0) {
  FrameSpec spec;
  spec.tcp_flags = flags;
  spec.payload.assign(payload, 'x');
  if (reply) {
    std::swap(spec.src_last, spec.dst_last);
    std::swap(spec.src_port, spec.dst_port);
  }
  auto frame = BuildFrame(spec);
  Decoder decoder;
  DecodedPacket packet;
  EXPECT_EQ(decoder.Decode(frame, packet), DecodeStatus::kDecoded);
  return packet;
}

TEST(FlowTable, CountsBothDirectionsInOneFlow) {
  std::vector<FlowRecord> ended;
  FlowTable table([&](const FlowRecord& record) { ended.push_back(record); });
  table.Add(Packet(false, 0x02), 1'000);
  table.Add(Packet(true, 0x12), 2'000);
  table.Add(Packet(false, 0x10, 100), 3'000);
  EXPECT_EQ(table.size(), 1u);
  table.Flush();
  ASSERT_EQ(ended.size(), 1u);
  const auto& flow = ended[0];
  EXPECT_EQ(flow.src.bytes[3], 1);
  EXPECT_EQ(flow.src_port, 40000);
  EXPECT_EQ(flow.to_dst.packets, 2u);
  EXPECT_EQ(flow.to_src.packets, 1u);
  EXPECT_EQ(flow.to_dst.bytes, 54u + 154u);
  EXPECT_EQ(flow.to_dst.tcp_flags, 0x12);
  EXPECT_EQ(flow.to_src.tcp_flags, 0x12);
  EXPECT_EQ(flow.first_us, 1'000u);
  EXPECT_EQ(flow.last_us, 3'000u);
  EXPECT_EQ(flow.end, FlowEnd::kFlushed);
}

TEST(FlowTable, EndsOnTcpCloseAndOnIdle) {
  std::vector<FlowRecord> ended;
  FlowTimeouts timeouts;
  timeouts.idle_us = 10'000;
  timeouts.tcp_closed_us = 1'000;
  FlowTable table([&](const FlowRecord& record) { ended.push_back(record); }, timeouts);
  table.Add(Packet(false, 0x11), 0);
  table.Add(Packet(true, 0x11), 100);
  table.Expire(500);
  EXPECT_TRUE(ended.empty());
  table.Expire(1'200);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].end, FlowEnd::kTcpClosed);
  table.Add(Packet(false, 0x02), 2'000);
  table.Expire(20'000);
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[1].end, FlowEnd::kIdle);
}

TEST(FlowTable, EvictsTheOldestWhenFull) {
  std::vector<FlowRecord> ended;
  FlowTable table([&](const FlowRecord& record) { ended.push_back(record); }, {}, 2);
  for (std::uint16_t port = 1; port <= 3; ++port) {
    auto packet = Packet(false, 0x02);
    packet.src_port = port;
    table.Add(packet, port * 1000);
  }
  EXPECT_EQ(table.size(), 2u);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].src_port, 1);
  EXPECT_EQ(ended[0].end, FlowEnd::kEvicted);
}

}  // namespace
}  // namespace custos::net
