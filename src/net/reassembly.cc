#include "net/reassembly.h"

namespace custos::net {

std::optional<Reassembled> Reassembler::Add(const DecodedPacket& packet,
                                            std::span<const std::uint8_t> frame,
                                            std::uint64_t now_us) {
  ++counters_.fragments;
  Key key{packet.src, packet.dst, packet.fragment_id, packet.ip_protocol};
  std::uint32_t offset = packet.fragment_offset;
  std::uint32_t length = packet.fragment_payload_length;
  if (std::uint64_t{offset} + length > 65535) {
    ++counters_.oversized;
    datagrams_.erase(key);
    return std::nullopt;
  }
  auto found = datagrams_.find(key);
  if (found == datagrams_.end()) {
    if (datagrams_.size() >= max_datagrams_) {
      // Make room by dropping the oldest; a flood of fragments costs bounded memory.
      auto oldest = datagrams_.begin();
      for (auto it = datagrams_.begin(); it != datagrams_.end(); ++it) {
        if (it->second.first_us < oldest->second.first_us) oldest = it;
      }
      datagrams_.erase(oldest);
      ++counters_.evicted;
    }
    found = datagrams_.emplace(key, Datagram{}).first;
    found->second.first_us = now_us;
  }
  Datagram& datagram = found->second;
  if (datagram.poisoned) return std::nullopt;
  ++datagram.frames;
  datagram.frame_bytes += packet.frame_length;

  // Any overlap with what is there, or a second "last" fragment that
  // disagrees, means two readings of the same bytes: refuse them all.
  std::uint32_t end = offset + length;
  auto next = datagram.pieces.lower_bound(offset);
  bool overlaps = (next != datagram.pieces.end() && next->first < end);
  if (next != datagram.pieces.begin()) {
    auto previous = std::prev(next);
    if (previous->first + previous->second.size() > offset) overlaps = true;
  }
  if (!packet.more_fragments) {
    if (datagram.total && *datagram.total != end) overlaps = true;
    datagram.total = end;
  }
  if (datagram.total && end > *datagram.total) overlaps = true;
  if (overlaps || (length == 0 && packet.more_fragments)) {
    datagram.poisoned = true;
    datagram.pieces.clear();
    ++counters_.overlapping;
    return std::nullopt;
  }
  auto data = frame.subspan(packet.fragment_payload_offset, length);
  datagram.pieces.emplace(offset, std::vector<std::uint8_t>(data.begin(), data.end()));

  if (!datagram.total) return std::nullopt;
  std::uint32_t covered = 0;
  for (const auto& [piece_offset, bytes] : datagram.pieces) {
    if (piece_offset != covered) return std::nullopt;  // a hole remains
    covered += static_cast<std::uint32_t>(bytes.size());
  }
  if (covered != *datagram.total) return std::nullopt;
  Reassembled whole;
  whole.payload.reserve(covered);
  for (const auto& [piece_offset, bytes] : datagram.pieces) {
    whole.payload.insert(whole.payload.end(), bytes.begin(), bytes.end());
  }
  whole.frames = datagram.frames;
  whole.frame_bytes = datagram.frame_bytes;
  datagrams_.erase(found);
  ++counters_.reassembled;
  return whole;
}

void Reassembler::Expire(std::uint64_t now_us) {
  for (auto it = datagrams_.begin(); it != datagrams_.end();) {
    if (now_us - it->second.first_us > timeout_us_) {
      if (!it->second.poisoned) ++counters_.timed_out;
      it = datagrams_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace custos::net
