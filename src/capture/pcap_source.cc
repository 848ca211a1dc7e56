#include "capture/pcap_source.h"

#include <poll.h>

namespace custos::capture {

Result<LinkKind> PcapSource::LinkOf(pcap_t* handle, const std::string& name) {
  switch (pcap_datalink(handle)) {
    case DLT_EN10MB:
      return LinkKind::kEthernet;
    case DLT_RAW:
      return LinkKind::kRawIp;
    case DLT_NULL:
      return LinkKind::kLoopback;
    default:
      return Error{name + ": link type " + std::to_string(pcap_datalink(handle)) +
                   " is not supported (Ethernet, raw IP or loopback)"};
  }
}

Result<PcapSource> PcapSource::OpenFile(const std::string& path) {
  char error[PCAP_ERRBUF_SIZE] = {};
  pcap_t* handle =
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, error);
  if (handle == nullptr) return Error{"cannot read " + path + ": " + error};
  auto link = LinkOf(handle, path);
  if (!link) {
    pcap_close(handle);
    return link.error();
  }
  return PcapSource(handle, *link);
}

Result<PcapSource> PcapSource::OpenLive(const std::string& interface, int timeout_ms) {
  char error[PCAP_ERRBUF_SIZE] = {};
  pcap_t* handle = pcap_create(interface.c_str(), error);
  if (handle == nullptr) return Error{"cannot capture on " + interface + ": " + error};
  pcap_set_snaplen(handle, 262144);
  pcap_set_promisc(handle, 1);
  pcap_set_timeout(handle, timeout_ms);
  pcap_set_buffer_size(handle, 32 << 20);
  if (pcap_activate(handle) < 0) {
    std::string why = pcap_geterr(handle);
    pcap_close(handle);
    return Error{"cannot capture on " + interface + ": " + why};
  }
  auto link = LinkOf(handle, interface);
  if (!link) {
    pcap_close(handle);
    return link.error();
  }
  // Non-blocking, waited on with poll(): libpcap's own timeout does not wake
  // a quiet capture, and a signal must be able to stop the reader.
  if (pcap_setnonblock(handle, 1, error) != 0) {
    pcap_close(handle);
    return Error{"cannot capture on " + interface + ": " + error};
  }
  return PcapSource(handle, *link, timeout_ms);
}

Result<bool> PcapSource::Next(CapturedFrame& frame, bool wait) {
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  int status = pcap_next_ex(handle_.get(), &header, &data);
  if (status == 0 && timeout_ms_ >= 0 && wait) {
    pollfd entry{pcap_get_selectable_fd(handle_.get()), POLLIN, 0};
    if (::poll(&entry, 1, timeout_ms_) <= 0) return false;  // quiet, or interrupted by a signal
    status = pcap_next_ex(handle_.get(), &header, &data);
  }
  if (status == 1) {
    frame.timestamp_us = static_cast<std::uint64_t>(header->ts.tv_sec) * 1'000'000 +
                         static_cast<std::uint64_t>(header->ts.tv_usec);
    frame.wire_length = header->len;
    frame.data = std::span<const std::uint8_t>(data, header->caplen);
    return true;
  }
  if (status == 0 || status == PCAP_ERROR_BREAK) return false;  // timeout, or end of file
  return Error{std::string("capture failed: ") + pcap_geterr(handle_.get())};
}

std::span<const std::uint8_t> LinkPayload(std::span<const std::uint8_t> data, LinkKind link) {
  if (link != LinkKind::kLoopback) return data;
  return data.size() >= 4 ? data.subspan(4) : data.subspan(data.size());
}

std::uint64_t PcapSource::Dropped() const {
  pcap_stat stats{};
  if (pcap_stats(handle_.get(), &stats) != 0) return 0;
  return stats.ps_drop + stats.ps_ifdrop;
}

}  // namespace custos::capture
