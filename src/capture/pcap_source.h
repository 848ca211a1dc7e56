// Reads frames from a pcap or pcapng file, or live from an interface, with
// libpcap. The link type says where the IP header starts; Ethernet, raw IP
// and BSD loopback are understood. Not thread-safe.
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "custos/result.h"

namespace custos::capture {

struct CapturedFrame {
  std::uint64_t timestamp_us = 0;
  std::uint32_t wire_length = 0;       // as on the wire (may exceed what was captured)
  std::span<const std::uint8_t> data;  // valid until the next call to Next()
};

enum class LinkKind { kEthernet, kRawIp, kLoopback };

// The part of a frame where the link's payload (Ethernet or IP) starts:
// loopback captures carry a 4-byte address family first.
std::span<const std::uint8_t> LinkPayload(std::span<const std::uint8_t> data, LinkKind link);

class PcapSource {
 public:
  static Result<PcapSource> OpenFile(const std::string& path);
  // Promiscuous, whole frames. Frames arrive in blocks of the kernel's
  // TPACKET_V3 ring, handed over when full or `timeout_ms` after the first
  // frame; `timeout_ms` also bounds each waiting Next(). (Immediate mode
  // would fall back to TPACKET_V2, whose fixed slots of the snap length
  // leave room for only ~128 frames on an interface with offloads.)
  static Result<PcapSource> OpenLive(const std::string& interface, int timeout_ms = 200);

  // True and a frame; false at the end of a file or when a live read timed out.
  // With `wait` false, a live read returns false at once when nothing is queued.
  Result<bool> Next(CapturedFrame& frame, bool wait = true);
  LinkKind link() const { return link_; }
  // Kernel drops for a live capture.
  std::uint64_t Dropped() const;

 private:
  struct Closer {
    void operator()(pcap_t* handle) const { pcap_close(handle); }
  };
  PcapSource(pcap_t* handle, LinkKind link, int timeout_ms = -1)
      : handle_(handle), link_(link), timeout_ms_(timeout_ms) {}
  static Result<LinkKind> LinkOf(pcap_t* handle, const std::string& name);

  std::unique_ptr<pcap_t, Closer> handle_;
  LinkKind link_;
  int timeout_ms_;  // live captures: how long Next() waits; -1 for files
};

}  // namespace custos::capture
