// capture: the capture engine. It reads the monitored traffic (live from
// the interface the platform moved into its namespace, or from a pcap file)
// and copies every frame to the tap end of each passive instrument's
// mirror link; it does no analysis. Tap ends are the interfaces named cm*
// in its namespace; it writes to them through AF_PACKET sockets opened with
// protocol 0, so it never reads them. Counters per consumer are printed and
// published as `capture` events each second.
//   settings: {"pcap": "/data/in.pcap", "trigger": "/data/go", "repeat_seconds": N}
//             replays the file when the trigger file appears (at once without a
//             trigger), again every N seconds if N > 0; without "pcap" it captures
//             CUSTOS_CAPTURE_INTERFACE.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "capture/pcap_source.h"
#include "custos/bus_client.h"
#include "custos/event.h"
#include "custos/instrument.h"

namespace {

struct Tap {
  int fd = -1;
  unsigned index = 0;  // the interface it was opened on
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
};

// Opens a send-only socket for every tap end not yet known.
// Opens a send-only socket for every tap end, re-opens it when a restarted
// passive instrument got a new link under the same name, and closes the
// ones that are gone.
void RefreshTaps(std::map<std::string, Tap>& taps) {
  std::map<std::string, unsigned> present;
  struct if_nameindex* names = ::if_nameindex();
  for (auto* item = names; item && item->if_index != 0; ++item) {
    if (std::string(item->if_name).rfind("cm", 0) == 0) present[item->if_name] = item->if_index;
  }
  if (names) ::if_freenameindex(names);
  for (auto it = taps.begin(); it != taps.end();) {
    auto found = present.find(it->first);
    if (found == present.end() || found->second != it->second.index) {
      ::close(it->second.fd);
      it = taps.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, index] : present) {
    if (taps.contains(name)) continue;
    // Protocol 0: the socket receives nothing, so the engine never reads a tap.
    int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_ifindex = static_cast<int>(index);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      std::printf("capture: cannot open tap %s\n", name.c_str());
      if (fd >= 0) ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    taps[name] = Tap{fd, index};
    std::printf("capture: feeding %s\n", name.c_str());
  }
  std::fflush(stdout);
}

void FanOut(std::map<std::string, Tap>& taps, std::span<const std::uint8_t> frame) {
  for (auto& [name, tap] : taps) {
    if (::send(tap.fd, frame.data(), frame.size(), MSG_DONTWAIT) ==
        static_cast<ssize_t>(frame.size())) {
      ++tap.delivered;
    } else {
      ++tap.dropped;
    }
  }
}

nlohmann::json Counters(const std::map<std::string, Tap>& taps, std::uint64_t received,
                        std::uint64_t kernel_drops) {
  auto consumers = nlohmann::json::object();
  for (const auto& [name, tap] : taps)
    consumers[name] = {{"delivered", tap.delivered}, {"dropped", tap.dropped}};
  return {{"received", received}, {"kernel_dropped", kernel_drops}, {"consumers", consumers}};
}

bool Exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

}  // namespace

int main() {
  custos::InstallStopHandlers();
  auto context = custos::InstrumentContext::Load();
  nlohmann::json settings = context ? context->settings : nlohmann::json::object();
  std::string pcap = settings.value("pcap", "");
  std::string trigger = settings.value("trigger", "");
  const char* interface = std::getenv("CUSTOS_CAPTURE_INTERFACE");

  std::map<std::string, Tap> taps;
  std::optional<custos::BusClient> bus;
  std::uint64_t received = 0;
  auto report = [&](std::uint64_t kernel_drops) {
    auto counters = Counters(taps, received, kernel_drops);
    std::printf("%s\n", nlohmann::json({{"capture", counters}}).dump().c_str());
    std::fflush(stdout);
    if (!bus) {
      if (auto connected = custos::BusClient::Connect(); connected)
        bus.emplace(std::move(*connected));
    }
    if (bus) {
      auto event = custos::MakeEvent("capture");
      event["capture"] = counters;
      if (!bus->Publish("capture", event.dump())) bus.reset();
    }
  };

  if (!pcap.empty()) {
    // Offline: wait for the trigger, replay once as fast as possible, then idle.
    while (!custos::StopRequested() && !trigger.empty() && !Exists(trigger)) {
      RefreshTaps(taps);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    RefreshTaps(taps);
    long repeat = settings.value("repeat_seconds", 0L);
    do {
      auto source = custos::capture::PcapSource::OpenFile(pcap);
      if (!source) {
        std::printf("capture: %s\n", source.error().message.c_str());
        return 1;
      }
      custos::capture::CapturedFrame frame;
      while (!custos::StopRequested()) {
        auto next = source->Next(frame);
        if (!next) std::printf("capture: %s\n", next.error().message.c_str());
        if (!next || !*next) break;
        ++received;
        FanOut(taps, frame.data);
      }
      report(0);
      for (long slept = 0; slept < repeat && !custos::StopRequested(); ++slept) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        RefreshTaps(taps);
      }
    } while (repeat > 0 && !custos::StopRequested());
    std::printf("REPLAY DONE\n");
    std::fflush(stdout);
    while (!custos::StopRequested()) ::pause();
    return 0;
  }

  if (interface == nullptr) {
    std::printf(
        "capture: no interface to capture (CUSTOS_CAPTURE_INTERFACE) and no pcap setting\n");
    return 1;
  }
  auto source = custos::capture::PcapSource::OpenLive(interface, 100);
  if (!source) {
    std::printf("capture: %s\n", source.error().message.c_str());
    return 1;
  }
  std::printf("capture: reading %s\n", interface);
  std::fflush(stdout);
  auto next_report = std::chrono::steady_clock::now();
  custos::capture::CapturedFrame frame;
  while (!custos::StopRequested()) {
    auto next = source->Next(frame);
    if (!next) {
      std::printf("capture: %s\n", next.error().message.c_str());
      return 1;
    }
    if (*next) {
      ++received;
      FanOut(taps, frame.data);
    }
    if (std::chrono::steady_clock::now() >= next_report) {
      RefreshTaps(taps);
      report(source->Dropped());
      next_report += std::chrono::seconds(1);
    }
  }
  report(source->Dropped());
  return 0;
}
