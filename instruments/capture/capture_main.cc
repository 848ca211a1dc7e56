// capture: the capture engine. It reads the monitored traffic (live from
// the interface the platform moved into its namespace, or from a pcap file)
// and hands every frame to the consumers, doing no analysis itself:
//  - the capture ring: one copy per frame into a sealed memfd that `ring`
//    instruments map read-only (src/capture/packet_ring.h);
//  - mirror links: a copy to the tap end (cm*) of each passive instrument's
//    veth pair, through send-only AF_PACKET sockets (tap_fanout.h).
// Counters per consumer are printed and published as `capture` events each
// second.
//   settings: {"pcap": "/data/in.pcap", "trigger": "/data/go", "repeat_seconds": N,
//              "loops": N, "pace": "fast"|"original", "ring_slots": 16384,
//              "ring_slot_bytes": 2048}
//   Replays the file (`loops` times back to back) when the trigger file appears
//   (at once without a trigger), again every N seconds if N > 0; without "pcap"
//   it captures CUSTOS_CAPTURE_INTERFACE. ring_slots 0 turns the ring off.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "capture/packet_ring.h"
#include "capture/pcap_source.h"
#include "common/files.h"
#include "custos/bus_client.h"
#include "custos/event.h"
#include "custos/instrument.h"
#include "tap_fanout.h"

namespace {

using custos::capture::CapturedFrame;
using custos::capture::RingWriter;
using custos::capture::TapFanout;

constexpr const char* kTapInfoDir = "/run/custos/taps";
constexpr int kWakeEvery = 64;  // frames between wake-ups of sleeping ring readers

bool Exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

class Engine {
 public:
  Engine(std::optional<RingWriter> ring) : ring_(std::move(ring)), taps_(kTapInfoDir) {}

  // Hands one frame to every consumer. `lossless`: a file can wait for the
  // ring's slowest reader; a live wire cannot.
  void Deliver(const CapturedFrame& frame, bool lossless) {
    ++received_;
    if (ring_) {
      if (lossless) ring_->WaitForRoom(1000);
      if (!ring_->Write(frame.data, frame.wire_length, frame.timestamp_us)) ++truncated_;
      if (++since_wake_ >= kWakeEvery) {
        ring_->WakeSleepers();
        since_wake_ = 0;
      }
    }
    taps_.Add(frame.data, frame.wire_length);
  }

  // Ends a batch: queued tap frames go out, sleeping ring readers wake.
  void Flush() {
    taps_.Flush();
    if (ring_) ring_->WakeSleepers();
    since_wake_ = 0;
  }

  // Waits (bounded) until every ring reader has read all that was written.
  bool WaitUntilDrained(std::chrono::milliseconds limit) {
    if (!ring_) return true;
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!ring_->Drained()) {
      if (std::chrono::steady_clock::now() >= deadline || custos::StopRequested()) return false;
      ring_->WakeSleepers();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
  }

  void RefreshTaps() { taps_.Refresh(); }

  nlohmann::json Counters(std::uint64_t kernel_drops) const {
    nlohmann::json counters = {
        {"received", received_}, {"kernel_dropped", kernel_drops}, {"consumers", taps_.Counters()}};
    if (ring_) {
      auto readers = nlohmann::json::object();
      for (int slot = 0; slot < ring_->consumers(); ++slot) {
        const auto& cursor = ring_->cursor(slot);
        if (cursor.attached.load(std::memory_order_relaxed) == 0) continue;
        std::string name = "slot-" + std::to_string(slot);
        auto info =
            custos::ReadFile(std::string(kTapInfoDir) + "/ring-" + std::to_string(slot) + ".json");
        if (info) {
          auto read =
              custos::ReadSetting(nlohmann::json::parse(*info, nullptr, false), "instrument", name);
          if (read) name = *read;
        }
        // The reader's own counts, from its cursor page.
        readers[name] = {{"slot", slot},
                         {"delivered", cursor.delivered.load(std::memory_order_relaxed)},
                         {"dropped", cursor.dropped.load(std::memory_order_relaxed)},
                         {"filtered", cursor.filtered.load(std::memory_order_relaxed)}};
      }
      counters["ring"] = {
          {"written", ring_->written()}, {"truncated", truncated_}, {"readers", readers}};
    }
    return counters;
  }

 private:
  std::optional<RingWriter> ring_;
  TapFanout taps_;
  std::uint64_t received_ = 0;
  std::uint64_t truncated_ = 0;
  int since_wake_ = 0;
};

class Reporter {
 public:
  void Report(const nlohmann::json& counters) {
    std::printf("%s\n", nlohmann::json({{"capture", counters}}).dump().c_str());
    std::fflush(stdout);
    if (!bus_) {
      if (auto connected = custos::BusClient::Connect(); connected)
        bus_.emplace(std::move(*connected));
    }
    if (bus_) {
      auto event = custos::MakeEvent("capture");
      event["capture"] = counters;
      if (!bus_->Publish("capture", event.dump())) bus_.reset();
    }
  }

 private:
  std::optional<custos::BusClient> bus_;
};

struct Settings {
  std::string pcap;  // empty: capture live
  std::string trigger;
  long repeat_seconds = 0;
  long loops = 1;
  std::string pace = "fast";
  std::uint64_t ring_slots = 16384;
  std::uint32_t ring_slot_bytes = 2048;
};

custos::Result<Settings> ReadSettings(const nlohmann::json& json) {
  using custos::ReadSettingInto;
  Settings settings;
  CUSTOS_TRY(ReadSettingInto(json, "pcap", settings.pcap));
  CUSTOS_TRY(ReadSettingInto(json, "trigger", settings.trigger));
  CUSTOS_TRY(ReadSettingInto(json, "repeat_seconds", settings.repeat_seconds));
  CUSTOS_TRY(ReadSettingInto(json, "loops", settings.loops));
  CUSTOS_TRY(ReadSettingInto(json, "pace", settings.pace));
  CUSTOS_TRY(ReadSettingInto(json, "ring_slots", settings.ring_slots));
  CUSTOS_TRY(ReadSettingInto(json, "ring_slot_bytes", settings.ring_slot_bytes));
  if (settings.pace != "fast" && settings.pace != "original")
    return custos::Error{"setting pace must be \"fast\" or \"original\", not \"" + settings.pace +
                         "\""};
  settings.loops = std::max(1L, settings.loops);
  return settings;
}

int Replay(Engine& engine, Reporter& reporter, const Settings& settings) {
  const std::string& pcap = settings.pcap;
  const std::string& trigger = settings.trigger;
  const long repeat = settings.repeat_seconds;
  const long loops = settings.loops;
  const bool original_pace = settings.pace == "original";
  while (!custos::StopRequested() && !trigger.empty() && !Exists(trigger)) {
    engine.RefreshTaps();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  engine.RefreshTaps();
  do {
    auto started = std::chrono::steady_clock::now();
    std::uint64_t frames = 0;
    for (long loop = 0; loop < loops && !custos::StopRequested(); ++loop) {
      auto source = custos::capture::PcapSource::OpenFile(pcap);
      if (!source) {
        std::printf("capture: %s\n", source.error().message.c_str());
        return 1;
      }
      CapturedFrame frame;
      std::optional<std::uint64_t> first_us;
      auto loop_start = std::chrono::steady_clock::now();
      while (!custos::StopRequested()) {
        auto next = source->Next(frame);
        if (!next) std::printf("capture: %s\n", next.error().message.c_str());
        if (!next || !*next) break;
        if (original_pace) {
          // Each frame leaves as long after the first as it was recorded.
          if (!first_us) first_us = frame.timestamp_us;
          auto due = loop_start + std::chrono::microseconds(frame.timestamp_us >= *first_us
                                                                ? frame.timestamp_us - *first_us
                                                                : 0);
          if (due > std::chrono::steady_clock::now()) {
            engine.Flush();
            std::this_thread::sleep_until(due);
          }
        }
        engine.Deliver(frame, true);
        ++frames;
      }
    }
    engine.Flush();
    bool drained = engine.WaitUntilDrained(std::chrono::seconds(10));
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    reporter.Report(engine.Counters(0));
    std::printf("REPLAY DONE %s\n",
                nlohmann::json({{"frames", frames}, {"seconds", seconds}, {"drained", drained}})
                    .dump()
                    .c_str());
    std::fflush(stdout);
    for (long slept = 0; slept < repeat && !custos::StopRequested(); ++slept) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      engine.RefreshTaps();
    }
  } while (repeat > 0 && !custos::StopRequested());
  while (!custos::StopRequested()) ::pause();
  return 0;
}

int Live(Engine& engine, Reporter& reporter, const std::string& interface) {
  auto source = custos::capture::PcapSource::OpenLive(interface, 10);
  if (!source) {
    std::printf("capture: %s\n", source.error().message.c_str());
    return 1;
  }
  std::printf("capture: reading %s\n", interface.c_str());
  std::fflush(stdout);
  engine.RefreshTaps();
  auto next_report = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  CapturedFrame frame;
  while (!custos::StopRequested()) {
    // Take what is queued without waiting; flush before sleeping on the socket.
    auto next = source->Next(frame, false);
    if (next && !*next) {
      engine.Flush();
      next = source->Next(frame, true);
    }
    if (!next) {
      std::printf("capture: %s\n", next.error().message.c_str());
      return 1;
    }
    if (*next) engine.Deliver(frame, false);
    if (std::chrono::steady_clock::now() >= next_report) {
      engine.Flush();
      engine.RefreshTaps();
      reporter.Report(engine.Counters(source->Dropped()));
      next_report += std::chrono::seconds(1);
    }
  }
  engine.Flush();
  reporter.Report(engine.Counters(source->Dropped()));
  return 0;
}

}  // namespace

int main() {
  custos::InstallStopHandlers();
  auto context = custos::InstrumentContext::Load();
  auto settings = ReadSettings(context ? context->settings : nlohmann::json::object());
  if (!settings) {
    std::printf("capture: %s\n", settings.error().message.c_str());
    return 1;
  }
  std::optional<RingWriter> ring;
  if (settings->ring_slots > 0) {
    auto created = RingWriter::Create(settings->ring_slots, settings->ring_slot_bytes);
    if (!created) {
      std::printf("capture: ring: %s\n", created.error().message.c_str());
      return 1;
    }
    ring.emplace(std::move(*created));
  }
  Engine engine(std::move(ring));
  Reporter reporter;
  if (!settings->pcap.empty()) return Replay(engine, reporter, *settings);
  const char* interface = std::getenv("CUSTOS_CAPTURE_INTERFACE");
  if (interface == nullptr) {
    std::printf(
        "capture: no interface to capture (CUSTOS_CAPTURE_INTERFACE) and no pcap setting\n");
    return 1;
  }
  return Live(engine, reporter, interface);
}
