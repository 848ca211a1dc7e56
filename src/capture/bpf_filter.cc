#include "capture/bpf_filter.h"

#include <utility>

namespace custos::capture {

Result<BpfFilter> BpfFilter::Compile(const std::string& expression) {
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> dead(pcap_open_dead(DLT_EN10MB, 262144), pcap_close);
  if (!dead) return Error{"cannot compile capture filter: libpcap is out of memory"};
  BpfFilter filter;
  filter.expression_ = expression;
  if (pcap_compile(dead.get(), &filter.program_, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) !=
      0) {
    return Error{"capture filter \"" + expression + "\": " + pcap_geterr(dead.get())};
  }
  return filter;
}

BpfFilter::BpfFilter(BpfFilter&& other) noexcept
    : expression_(std::move(other.expression_)), program_(std::exchange(other.program_, {})) {}

BpfFilter& BpfFilter::operator=(BpfFilter&& other) noexcept {
  if (this != &other) {
    pcap_freecode(&program_);
    expression_ = std::move(other.expression_);
    program_ = std::exchange(other.program_, {});
  }
  return *this;
}

BpfFilter::~BpfFilter() { pcap_freecode(&program_); }

bool BpfFilter::Matches(std::span<const std::uint8_t> frame, std::uint32_t wire_length) const {
  pcap_pkthdr header{};
  header.caplen = static_cast<bpf_u_int32>(frame.size());
  header.len = wire_length;
  return pcap_offline_filter(&program_, &header, frame.data()) != 0;
}

}  // namespace custos::capture
