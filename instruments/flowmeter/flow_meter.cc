#include "flow_meter.h"

namespace custos::flowmeter {

FlowMeter::FlowMeter(net::FlowTable::Sink sink, net::FlowTimeouts timeouts)
    : table_(std::move(sink), timeouts) {}

void FlowMeter::Process(const capture::CapturedFrame& frame, capture::LinkKind link) {
  ++counters_.frames;
  auto data = capture::LinkPayload(frame.data, link);
  net::DecodedPacket packet;
  auto status = link == capture::LinkKind::kEthernet ? decoder_.Decode(data, packet)
                                                     : decoder_.DecodeRawIp(data, packet);
  // Bytes are counted as on the wire, even when the capture was cut short.
  packet.frame_length = frame.wire_length;
  if (status == net::DecodeStatus::kNotIp) {
    ++counters_.not_ip;
  } else if (status == net::DecodeStatus::kAnomaly) {
    ++counters_.anomalies;
  } else if (packet.is_fragment) {
    if (auto whole = reassembler_.Add(packet, data, frame.timestamp_us)) {
      if (decoder_.DecodeReassembled(whole->payload, packet) == net::DecodeStatus::kDecoded) {
        table_.Add(packet, frame.timestamp_us, whole->frames, whole->frame_bytes);
      } else {
        ++counters_.anomalies;
      }
    }
  } else {
    table_.Add(packet, frame.timestamp_us);
  }
  // Expire about once a second of capture time, not on every frame.
  if (frame.timestamp_us >= last_expire_us_ + 1'000'000) {
    table_.Expire(frame.timestamp_us);
    reassembler_.Expire(frame.timestamp_us);
    last_expire_us_ = frame.timestamp_us;
  }
}

void FlowMeter::Tick(std::uint64_t now_us) {
  table_.Expire(now_us);
  reassembler_.Expire(now_us);
}

void FlowMeter::Finish() { table_.Flush(); }

}  // namespace custos::flowmeter
