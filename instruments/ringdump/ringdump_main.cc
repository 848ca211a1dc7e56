// ringdump: reads the capture ring (network mode `ring`) and writes every
// frame it gets to a pcap file in its persistent storage. It opens no socket:
// its manifest has seccomp refuse them. Counters are printed every second.
//   ringdump [--file NAME]    write /data/NAME (default ring.pcap)
//   ringdump --count          only count frames (for benchmarks)
#include <pcap/pcap.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>

#include "custos/capture_ring.h"
#include "custos/instrument.h"

namespace {

void PrintCounters(const custos::CaptureRing& ring) {
  auto counters = ring.counters();
  std::printf("ringdump: %llu delivered, %llu dropped, %llu filtered\n",
              static_cast<unsigned long long>(counters.delivered),
              static_cast<unsigned long long>(counters.dropped),
              static_cast<unsigned long long>(counters.filtered));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringdump: capture ring to pcap"};
  std::string file = "ring.pcap";
  bool count_only = false;
  app.add_option("--file", file, "pcap file name in /data");
  app.add_flag("--count", count_only, "only count frames");
  CLI11_PARSE(app, argc, argv);
  custos::InstallStopHandlers();

  auto ring = custos::CaptureRing::Open();
  if (!ring) {
    std::fprintf(stderr, "ringdump: %s\n", ring.error().message.c_str());
    return 1;
  }
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> dead(pcap_open_dead(DLT_EN10MB, 262144), pcap_close);
  std::unique_ptr<pcap_dumper_t, void (*)(pcap_dumper_t*)> dumper(nullptr, pcap_dump_close);
  if (!count_only) {
    const char* data = std::getenv("CUSTOS_DATA");
    std::string path = std::string(data != nullptr ? data : "/data") + "/" + file;
    dumper.reset(pcap_dump_open(dead.get(), path.c_str()));
    if (!dumper) {
      std::fprintf(stderr, "ringdump: cannot write %s: %s\n", path.c_str(),
                   pcap_geterr(dead.get()));
      return 1;
    }
  }
  std::printf("ringdump: reading the capture ring%s\n", count_only ? " (counting only)" : "");
  std::fflush(stdout);
  auto next_report = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  custos::RingPacket packet;
  while (!custos::StopRequested()) {
    bool got = ring->Next(packet, 200);
    if (got && dumper) {
      pcap_pkthdr header{};
      header.ts.tv_sec = static_cast<time_t>(packet.timestamp_us / 1'000'000);
      header.ts.tv_usec = static_cast<suseconds_t>(packet.timestamp_us % 1'000'000);
      header.caplen = static_cast<bpf_u_int32>(packet.data.size());
      header.len = packet.wire_length;
      pcap_dump(reinterpret_cast<u_char*>(dumper.get()), &header, packet.data.data());
    }
    if (!got || std::chrono::steady_clock::now() >= next_report) {
      if (dumper) pcap_dump_flush(dumper.get());
      if (std::chrono::steady_clock::now() >= next_report) {
        PrintCounters(*ring);
        next_report += std::chrono::seconds(1);
      }
    }
  }
  PrintCounters(*ring);
  return 0;
}
