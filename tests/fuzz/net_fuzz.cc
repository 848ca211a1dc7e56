// Fuzzes the packet path as the flow meter drives it: the input is a series
// of frames (u16 length, bytes); each is decoded, fragments are reassembled
// and decoded again, and everything lands in the flow table. Hostile frames
// must be counted and skipped, never crash or read out of bounds.
#include <cstdint>
#include <span>
#include <vector>

#include "net/decoder.h"
#include "net/flow_table.h"
#include "net/reassembly.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  custos::net::Decoder decoder;
  custos::net::Reassembler reassembler(64, 1000);
  std::uint64_t flows = 0;
  custos::net::FlowTable table([&](const custos::net::FlowRecord&) { ++flows; }, {}, 64);
  std::uint64_t now = 0;
  while (size >= 2) {
    std::size_t length = (data[0] << 8) | data[1];
    data += 2;
    size -= 2;
    if (length > size) length = size;
    // Copied, so an overread of the frame is caught by AddressSanitizer.
    std::vector<std::uint8_t> frame(data, data + length);
    data += length;
    size -= length;
    now += 100;
    custos::net::DecodedPacket packet;
    if (decoder.Decode(frame, packet) != custos::net::DecodeStatus::kDecoded) continue;
    if (packet.is_fragment) {
      auto whole = reassembler.Add(packet, frame, now);
      if (!whole) continue;
      if (decoder.DecodeReassembled(whole->payload, packet) != custos::net::DecodeStatus::kDecoded)
        continue;
      table.Add(packet, now, whole->frames, whole->frame_bytes);
    } else {
      table.Add(packet, now);
    }
    table.Expire(now);
    reassembler.Expire(now);
  }
  table.Flush();
  return 0;
}
