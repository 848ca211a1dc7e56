#include "net/flow_table.h"

namespace custos::net {
namespace {

constexpr std::uint8_t kFin = 0x01;
constexpr std::uint8_t kRst = 0x04;

bool HasPorts(std::uint8_t protocol) { return protocol == 6 || protocol == 17 || protocol == 132; }

}  // namespace

void FlowTable::Add(const DecodedPacket& packet, std::uint64_t now_us, std::uint32_t frames,
                    std::uint64_t frame_bytes) {
  if (packet.src.version == 0) return;
  std::uint8_t protocol = packet.ip_protocol;
  std::uint16_t src_port = HasPorts(protocol) ? packet.src_port : 0;
  std::uint16_t dst_port = HasPorts(protocol) ? packet.dst_port : 0;
  bool forward_is_a = std::tie(packet.src, src_port) <= std::tie(packet.dst, dst_port);
  FlowKey key{forward_is_a ? packet.src : packet.dst,
              forward_is_a ? packet.dst : packet.src,
              forward_is_a ? src_port : dst_port,
              forward_is_a ? dst_port : src_port,
              protocol,
              packet.vlan_ids[0]};
  auto found = flows_.find(key);
  if (found == flows_.end()) {
    if (flows_.size() >= max_flows_) {
      auto oldest = flows_.begin();
      for (auto it = flows_.begin(); it != flows_.end(); ++it) {
        if (it->second.record.last_us < oldest->second.record.last_us) oldest = it;
      }
      ++evicted_;
      End(oldest, FlowEnd::kEvicted);
    }
    Entry entry;
    entry.record = {packet.src, packet.dst,         src_port, dst_port,
                    protocol,   packet.vlan_ids[0], now_us,   now_us};
    found = flows_.emplace(key, entry).first;
  }
  Entry& entry = found->second;
  FlowRecord& record = entry.record;
  bool from_src = record.src == packet.src && record.src_port == src_port;
  FlowDirection& direction = from_src ? record.to_dst : record.to_src;
  direction.packets += frames;
  direction.bytes += frame_bytes != 0 ? frame_bytes : packet.frame_length;
  record.last_us = std::max(record.last_us, now_us);
  if (packet.transport == Transport::kTcp) {
    direction.tcp_flags |= packet.tcp_flags;
    if (packet.tcp_flags & kFin) entry.fins |= from_src ? 1 : 2;
    if ((packet.tcp_flags & kRst) || entry.fins == 3) entry.closed = true;
  }
}

void FlowTable::Expire(std::uint64_t now_us) {
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto next = std::next(it);
    const FlowRecord& record = it->second.record;
    std::uint64_t idle = now_us > record.last_us ? now_us - record.last_us : 0;
    if (it->second.closed && idle >= timeouts_.tcp_closed_us) {
      End(it, FlowEnd::kTcpClosed);
    } else if (idle >= timeouts_.idle_us) {
      End(it, FlowEnd::kIdle);
    } else if (now_us - record.first_us >= timeouts_.active_us) {
      End(it, FlowEnd::kActive);
    }
    it = next;
  }
}

void FlowTable::Flush() {
  while (!flows_.empty()) End(flows_.begin(), FlowEnd::kFlushed);
}

void FlowTable::End(std::map<FlowKey, Entry>::iterator it, FlowEnd why) {
  FlowRecord record = it->second.record;
  record.end = why;
  flows_.erase(it);
  if (sink_) sink_(record);
}

}  // namespace custos::net
