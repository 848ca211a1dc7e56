// flowmeter: an instrument that turns the mirrored traffic into flow
// records (packets, bytes, start, end, TCP flags per direction) and
// publishes each finished flow as an EVE `flow` event on the bus. In active
// mode it can also export them as IPFIX to a collector (setting `ipfix`).
//   flowmeter                 read mirror0 (passive) or the active interface
//                             until SIGTERM (the instrument)
//   flowmeter --pcap FILE     read a capture and print flow events, one per line
#include <net/if.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <optional>

#include "custos/bus_client.h"
#include "custos/instrument.h"
#include "flow_eve.h"
#include "flow_meter.h"
#include "ipfix_exporter.h"

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

// In active mode sensord moves one interface in and does not say its name:
// it is the only one besides loopback.
custos::Result<std::string> ActiveInterface() {
  std::vector<std::string> found;
  if (auto* names = ::if_nameindex()) {
    for (auto* name = names; name->if_index != 0; ++name)
      if (std::string(name->if_name) != "lo") found.push_back(name->if_name);
    ::if_freenameindex(names);
  }
  if (found.size() != 1) {
    return custos::Error{"active mode: expected one interface besides lo, found " +
                         std::to_string(found.size()) + "; name it with --interface"};
  }
  return found[0];
}

// The IPFIX exporter when the settings ask for one; an Error names the bad setting.
custos::Result<std::optional<custos::flowmeter::IpfixOptions>> IpfixSettings(
    const custos::Result<custos::InstrumentContext>& context, const std::string& interface) {
  if (!context) return std::optional<custos::flowmeter::IpfixOptions>();
  auto options = custos::flowmeter::IpfixOptionsFromSettings(context->settings);
  if (!options || !*options) return options;
  if (!context->network.empty() && context->network != "active") {
    return custos::Error{std::string("setting ipfix: needs network mode active; in mode ") +
                         context->network + " nothing the instrument sends leaves it"};
  }
  if (context->network == "active") {
    // The interface has no address and no routes: send on it alone, from
    // an address the operator gives (else the source would be 0.0.0.0).
    if ((*options)->source.empty())
      return custos::Error{"setting ipfix_source: is required in active mode"};
    (*options)->interface = interface;
  }
  return options;
}

int Live(std::string interface) {
  auto context = custos::InstrumentContext::Load();
  long idle = 60;
  if (context) {
    auto read = custos::ReadSettingInto(context->settings, "idle_timeout_seconds", idle);
    if (!read || idle <= 0) {
      std::fprintf(
          stderr, "flowmeter: %s\n",
          read ? "setting idle_timeout_seconds must be more than 0" : read.error().message.c_str());
      return 1;
    }
  }
  if (interface.empty() && context && context->network == "active") {
    auto found = ActiveInterface();
    if (!found) {
      std::fprintf(stderr, "flowmeter: %s\n", found.error().message.c_str());
      return 1;
    }
    interface = *found;
  }
  if (interface.empty()) interface = "mirror0";
  auto ipfix_options = IpfixSettings(context, interface);
  if (!ipfix_options) {
    std::fprintf(stderr, "flowmeter: %s\n", ipfix_options.error().message.c_str());
    return 1;
  }
  auto source = custos::capture::PcapSource::OpenLive(interface);
  if (!source) {
    std::fprintf(stderr, "flowmeter: %s\n", source.error().message.c_str());
    return 1;
  }
  std::optional<custos::flowmeter::IpfixExporter> ipfix;
  if (*ipfix_options) {
    auto opened = custos::flowmeter::IpfixExporter::Open(std::move(**ipfix_options));
    if (!opened) {
      std::fprintf(stderr, "flowmeter: %s\n", opened.error().message.c_str());
      return 1;
    }
    ipfix.emplace(std::move(*opened));
  }
  auto ipfix_summary = [&] { return ipfix ? std::string(", ") + ipfix->Summary() : std::string(); };
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
        if (ipfix) ipfix->Add(flow);
      },
      timeouts);
  std::printf("flowmeter: metering %s%s\n", interface.c_str(), ipfix ? ", exporting IPFIX" : "");
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
      if (ipfix) ipfix->Tick();
    } else {
      // Live timestamps are the capture's clock, so quiet time ends idle flows too.
      auto now_us =
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
      meter.Tick(now_us);
      if (ipfix) ipfix->Tick();
      if (now_us >= next_report_us) {
        std::printf("flowmeter: %llu frames, %zu flows open, %llu published%s\n",
                    static_cast<unsigned long long>(meter.counters().frames), meter.open_flows(),
                    static_cast<unsigned long long>(published), ipfix_summary().c_str());
        std::fflush(stdout);
        next_report_us = now_us + 5'000'000;
      }
    }
  }
  meter.Finish();
  if (ipfix) ipfix->Flush();
  std::printf(
      "flowmeter: %llu frames, %llu anomalies, %llu flows unpublished, %llu kernel drops%s\n",
      static_cast<unsigned long long>(meter.counters().frames),
      static_cast<unsigned long long>(meter.counters().anomalies),
      static_cast<unsigned long long>(unpublished),
      static_cast<unsigned long long>(source->Dropped()), ipfix_summary().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flowmeter: flow records from mirrored traffic"};
  std::string pcap;
  std::string interface;
  app.add_option("--pcap", pcap, "read this capture and print flow events");
  app.add_option("--interface", interface,
                 "capture here (default: mirror0, or in active mode the one interface)");
  CLI11_PARSE(app, argc, argv);
  custos::InstallStopHandlers();
  return pcap.empty() ? Live(interface) : Offline(pcap);
}
