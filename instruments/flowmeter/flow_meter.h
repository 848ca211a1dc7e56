// The flow meter's pipeline: frames in (from mirror0 or a pcap), decoded,
// fragments reassembled, counted into flows; finished flows go to the sink.
// Time is the frames' own, so a pcap gives the same flows every time.
#pragma once

#include <cstdint>
#include <functional>

#include "capture/pcap_source.h"
#include "net/decoder.h"
#include "net/flow_table.h"
#include "net/reassembly.h"

namespace custos::flowmeter {

struct MeterCounters {
  std::uint64_t frames = 0;
  std::uint64_t not_ip = 0;
  std::uint64_t anomalies = 0;
};

class FlowMeter {
 public:
  FlowMeter(net::FlowTable::Sink sink, net::FlowTimeouts timeouts = {});

  void Process(const capture::CapturedFrame& frame, capture::LinkKind link);
  // Lets time pass without packets (live capture): ends idle flows.
  void Tick(std::uint64_t now_us);
  // Ends every flow (end of a pcap, or shutdown).
  void Finish();

  const MeterCounters& counters() const { return counters_; }
  std::size_t open_flows() const { return table_.size(); }
  const net::Decoder& decoder() const { return decoder_; }
  const net::ReassemblyCounters& reassembly() const { return reassembler_.counters(); }

 private:
  net::Decoder decoder_;
  net::Reassembler reassembler_;
  net::FlowTable table_;
  MeterCounters counters_;
  std::uint64_t last_expire_us_ = 0;
};

}  // namespace custos::flowmeter
