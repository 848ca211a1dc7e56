// A capture filter in tcpdump's language (pcap-filter(7)), compiled once
// with libpcap for Ethernet frames and run on each frame in user space.
// Used by the capture engine per mirror link, by the SDK's ring reader, and
// by sensord to refuse a configuration whose filter does not compile.
// Not thread-safe: one per thread.
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"

namespace custos::capture {

class BpfFilter {
 public:
  // The error names the expression and what libpcap found wrong with it.
  static Result<BpfFilter> Compile(const std::string& expression);
  BpfFilter(BpfFilter&& other) noexcept;
  BpfFilter& operator=(BpfFilter&& other) noexcept;
  BpfFilter(const BpfFilter&) = delete;
  BpfFilter& operator=(const BpfFilter&) = delete;
  ~BpfFilter();

  bool Matches(std::span<const std::uint8_t> frame, std::uint32_t wire_length) const;
  const std::string& expression() const { return expression_; }

 private:
  BpfFilter() = default;
  std::string expression_;
  bpf_program program_{};
};

}  // namespace custos::capture
