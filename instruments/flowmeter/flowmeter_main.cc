// flowmeter: a passive instrument that turns the mirrored traffic into flow
// records (packets, bytes, start, end, TCP flags per direction) and
// publishes each finished flow as an EVE `flow` event on the bus.
//   flowmeter                 read mirror0 until SIGTERM (the instrument)
//   flowmeter --pcap FILE     read a capture and print flow events, one per line
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <optional>

#include "custos/bus_client.h"
#include "custos/instrument.h"
#include "flow_eve.h"
#include "flow_meter.h"

namespace {

int Offline(const std::string& path) {
  auto source = custos::capture::PcapSource::OpenFile(path);
  if (!source) {
    std::fprintf(stderr, "flowmeter: %s\n", source.error().message.c_str());
    return 1;
  }
  custos::flowmeter::FlowMeter meter([](const custos::net::FlowRecord& flow) {
    std::printf("%s\n", custos::flowmeter::FlowToEve(flow).dump().c_str());
  });
  custos::capture::CapturedFrame frame;
  for (;;) {
    auto next = source->Next(frame);
    if (!next) {
      std::fprintf(stderr, "flowmeter: %s\n", next.error().message.c_str());
      return 1;
    }
    if (!*next) break;
    meter.Process(frame, source->link());
  }
  meter.Finish();
  return 0;
}

int Live(const std::string& interface) {
  auto context = custos::InstrumentContext::Load();
  long idle = context ? context->settings.value("idle_timeout_seconds", 60L) : 60L;
  auto source = custos::capture::PcapSource::OpenLive(interface);
  if (!source) {
    std::fprintf(stderr, "flowmeter: %s\n", source.error().message.c_str());
    return 1;
  }
  std::optional<custos::BusClient> bus;
  std::uint64_t unpublished = 0;
  std::uint64_t published = 0;
  std::uint64_t next_report_us = 0;
  custos::net::FlowTimeouts timeouts;
  timeouts.idle_us = static_cast<std::uint64_t>(idle) * 1'000'000;
  custos::flowmeter::FlowMeter meter(
      [&](const custos::net::FlowRecord& flow) {
        if (!bus) {
          if (auto connected = custos::BusClient::Connect(); connected)
            bus.emplace(std::move(*connected));
        }
        if (!bus || !bus->Publish("flow", custos::flowmeter::FlowToEve(flow).dump())) {
          ++unpublished;  // counted, and reported
          bus.reset();
        } else {
          ++published;
        }
      },
      timeouts);
  std::printf("flowmeter: metering %s\n", interface.c_str());
  std::fflush(stdout);
  custos::capture::CapturedFrame frame;
  while (!custos::StopRequested()) {
    auto next = source->Next(frame);
    if (!next) {
      std::fprintf(stderr, "flowmeter: %s\n", next.error().message.c_str());
      return 1;
    }
    if (*next) {
      meter.Process(frame, source->link());
    } else {
      // Live timestamps are the capture's clock, so quiet time ends idle flows too.
      auto now_us =
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
      meter.Tick(now_us);
      if (now_us >= next_report_us) {
        std::printf("flowmeter: %llu frames, %zu flows open, %llu published\n",
                    static_cast<unsigned long long>(meter.counters().frames), meter.open_flows(),
                    static_cast<unsigned long long>(published));
        std::fflush(stdout);
        next_report_us = now_us + 5'000'000;
      }
    }
  }
  meter.Finish();
  std::printf("flowmeter: %llu frames, %llu anomalies, %llu flows unpublished, %llu kernel drops\n",
              static_cast<unsigned long long>(meter.counters().frames),
              static_cast<unsigned long long>(meter.counters().anomalies),
              static_cast<unsigned long long>(unpublished),
              static_cast<unsigned long long>(source->Dropped()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flowmeter: flow records from mirrored traffic"};
  std::string pcap;
  std::string interface = "mirror0";
  app.add_option("--pcap", pcap, "read this capture and print flow events");
  app.add_option("--interface", interface, "capture here (default mirror0)");
  CLI11_PARSE(app, argc, argv);
  custos::InstallStopHandlers();
  return pcap.empty() ? Live(interface) : Offline(pcap);
}
