// Benchmarks the capture path on a monitored "wire" (a veth pair in a test
// namespace): a generator puts paced UDP frames on one end, the capture
// engine of a real sensor reads the other and feeds 1, 2 or 4 readers of its
// capture ring (ringdump --count, in their own containers). Beside it, in the
// same run, Debian's tcpdump alone reads the same wire. For each setup the
// rate is raised until a trial loses a frame (any reader short of what was
// sent), then narrowed down; the figure printed is the highest rate at which
// every reader got every frame. Also: a pcap file replayed to 2 readers as
// fast as they all keep up.
//   BENCH capture_pps_<N>consumers[_1500B] <pps> pps   (and .peer for tcpdump)
//   BENCH capture_pcap_pps_2consumers <pps> pps
#include <fcntl.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "common/files.h"
#include "common/process.h"
#include "common/unique_fd.h"
#include "tests/system/harness.h"

namespace custos::testing {
namespace {
namespace fs = std::filesystem;

constexpr double kTrialSeconds = 2.0;
constexpr const char* kWirePolicy =
    "allowed_capabilities: [CAP_NET_RAW]\nactive_interfaces: [wire0]";

struct Trial {
  bool lossless = false;
  double offered_pps = 0;  // what the generator managed
  std::string detail;
};

// wire0 (monitored) and wire1 (traffic enters) in the test host; no IPv6, so
// the kernel adds no frames of its own.
void MakeWire(const TestNetns& host) {
  host.Run({"ip", "link", "add", "wire0", "type", "veth", "peer", "name", "wire1"});
  for (const char* end : {"wire0", "wire1"})
    host.Run({"sysctl", "-q", "-w", std::string("net.ipv6.conf.") + end + ".disable_ipv6=1"});
  host.Run({"ip", "link", "set", "wire1", "up"});
}

// Sends `count` frames at `rate` on wire1; returns the rate achieved.
double Generate(const TestNetns& host, double rate, std::uint64_t count, std::size_t size) {
  std::string output = host.Run({CUSTOS_WIRE_GENERATOR, "--interface", "wire1", "--rate",
                                 std::to_string(static_cast<long>(rate)), "--count",
                                 std::to_string(count), "--size", std::to_string(size)});
  auto result = nlohmann::json::parse(output, nullptr, false);
  return result.is_object() ? result.value("pps", 0.0) : 0.0;
}

std::uint64_t FramesFor(double rate) {
  return std::max<std::uint64_t>(20000, static_cast<std::uint64_t>(rate * kTrialSeconds));
}

// Raises the rate until a trial loses frames, then bisects; returns the
// highest lossless rate (0 if even the first failed).
double HighestLosslessRate(const std::string& name, const std::function<Trial(double)>& trial) {
  double good = 0;
  double bad = 0;
  for (double rate = 50000; rate <= 4'000'000; rate *= 2) {
    Trial result = trial(rate);
    std::printf("  %s at %.0f pps: %s (offered %.0f pps) %s\n", name.c_str(), rate,
                result.lossless ? "lossless" : "LOST FRAMES", result.offered_pps,
                result.detail.c_str());
    std::fflush(stdout);
    if (!result.lossless) {
      bad = rate;
      break;
    }
    good = rate;
    if (result.offered_pps < 0.9 * rate) {
      std::printf("  %s: the generator cannot offer more; the figure is a lower bound\n",
                  name.c_str());
      return std::min(good, result.offered_pps);
    }
  }
  for (int step = 0; step < 4 && bad > 0; ++step) {
    double middle = (good + bad) / 2;
    Trial result = trial(middle);
    std::printf("  %s at %.0f pps: %s (offered %.0f pps) %s\n", name.c_str(), middle,
                result.lossless ? "lossless" : "LOST FRAMES", result.offered_pps,
                result.detail.c_str());
    std::fflush(stdout);
    // A rate counts only if the generator really offered it.
    if (result.lossless && result.offered_pps >= 0.9 * middle) {
      good = std::max(good, std::min(middle, result.offered_pps));
    } else {
      bad = middle;
    }
  }
  return good;
}

std::string RingReaders(int readers) {
  std::string yaml = "  - name: capture\n    manifest: " + ManifestOf("capture") +
                     "\n    network: capture\n    interface: wire0\n"
                     "    limits: {memory: 256M, cpus: 2}\n";
  for (int i = 0; i < readers; ++i) {
    yaml += "  - name: reader" + std::to_string(i) + "\n    manifest: " + ManifestOf("ringdump") +
            "\n    network: ring\n    args: [--count]\n    limits: {cpus: 2}\n";
  }
  return yaml;
}

double RingRate(int readers, std::size_t size) {
  SensorUnderTest sensor("cbench", RingReaders(readers), "", kWirePolicy);
  MakeWire(sensor.host());
  sensor.Start();
  sensor.WaitForLog("capture", "reading wire0");
  for (int i = 0; i < readers; ++i)
    sensor.WaitForLog("reader" + std::to_string(i), "reading the capture ring");
  auto counts = [&](const char* counter) {
    std::vector<std::uint64_t> values;
    for (int i = 0; i < readers; ++i) {
      auto status = sensor.InstrumentStatus("reader" + std::to_string(i));
      values.push_back(status["ring"].value(counter, std::uint64_t{0}));
    }
    return values;
  };
  auto trial = [&](double rate) {
    std::uint64_t frames = FramesFor(rate);
    auto before = counts("delivered");
    Trial result;
    result.offered_pps = Generate(sensor.host(), rate, frames, size);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    std::vector<std::uint64_t> after;
    for (;;) {
      after = counts("delivered");
      bool all = true;
      for (int i = 0; i < readers; ++i) all = all && after[i] - before[i] >= frames;
      if (all || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    result.lossless = true;
    for (int i = 0; i < readers; ++i) {
      std::uint64_t got = after[i] - before[i];
      if (got != frames) {
        result.lossless = false;
        result.detail += "reader" + std::to_string(i) + " got " + std::to_string(got) + "/" +
                         std::to_string(frames) + " ";
      }
    }
    return result;
  };
  std::string name = std::to_string(readers) + " ring readers, " + std::to_string(size) + "B";
  double rate = HighestLosslessRate(name, trial);
  sensor.Stop();
  return rate;
}

// tcpdump alone on wire0, writing to /dev/null with the engine's buffer size.
double TcpdumpRate(std::size_t size) {
  TestNetns host;
  MakeWire(host);
  host.Run({"ip", "link", "set", "wire0", "up"});
  auto trial = [&](double rate) {
    std::uint64_t frames = FramesFor(rate);
    std::string log = "/tmp/custos-bench-tcpdump-" + std::to_string(::getpid()) + ".log";
    custos::UniqueFd output(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    Trial result;
    auto pid = SpawnProcess({"nsenter", "--net=" + host.path(), "tcpdump", "-i", "wire0", "-n",
                             "-B", "32768", "-w", "/dev/null"},
                            output.get(), output.get());
    if (!pid) {
      result.detail = pid.error().message;
      return result;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto text_of = [&] {
      auto text = ReadFile(log);
      return text ? *text : std::string();
    };
    while (text_of().find("listening on") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    result.offered_pps = Generate(host, rate, frames, size);
    // tcpdump gets the last block of its ring when the block times out (1 s).
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    ::kill(*pid, SIGINT);
    int status = 0;
    ::waitpid(*pid, &status, 0);
    std::string text = text_of();
    fs::remove(log);
    std::smatch captured, dropped;
    std::regex_search(text, captured, std::regex(R"((\d+) packets captured)"));
    std::regex_search(text, dropped, std::regex(R"((\d+) packets dropped by kernel)"));
    std::uint64_t got = captured.empty() ? 0 : std::stoull(captured[1]);
    std::uint64_t lost = dropped.empty() ? 0 : std::stoull(dropped[1]);
    result.lossless = got == frames && lost == 0;
    if (!result.lossless)
      result.detail = "tcpdump got " + std::to_string(got) + "/" + std::to_string(frames) +
                      ", kernel dropped " + std::to_string(lost);
    return result;
  };
  double rate = HighestLosslessRate("tcpdump alone, " + std::to_string(size) + "B", trial);
  return rate;
}

// A file of `frames` 64-byte UDP frames, as the generator sends them.
void WritePcap(const std::string& path, std::uint64_t frames) {
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> dead(pcap_open_dead(DLT_EN10MB, 65535), pcap_close);
  pcap_dumper_t* dumper = pcap_dump_open(dead.get(), path.c_str());
  std::uint8_t frame[64] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, 0x45};
  for (std::uint64_t i = 0; i < frames; ++i) {
    pcap_pkthdr header{};
    header.ts.tv_sec = static_cast<time_t>(i / 1000);
    header.caplen = header.len = sizeof frame;
    frame[40] = static_cast<std::uint8_t>(i);
    pcap_dump(reinterpret_cast<u_char*>(dumper), &header, frame);
  }
  pcap_dump_close(dumper);
}

double PcapRate(int readers) {
  std::string yaml = "  - name: capture\n    manifest: " + ManifestOf("capture") +
                     "\n    network: capture\n    limits: {memory: 256M, cpus: 2}\n"
                     "    settings: {pcap: /data/in.pcap, trigger: /data/go, loops: 20}\n";
  for (int i = 0; i < readers; ++i) {
    yaml += "  - name: reader" + std::to_string(i) + "\n    manifest: " + ManifestOf("ringdump") +
            "\n    network: ring\n    args: [--count]\n    limits: {cpus: 2}\n";
  }
  SensorUnderTest sensor("cbpcap", yaml);
  fs::create_directories(sensor.PersistentDir("capture"));
  WritePcap(sensor.PersistentDir("capture") + "/in.pcap", 100000);
  sensor.Start();
  for (int i = 0; i < readers; ++i)
    sensor.WaitForLog("reader" + std::to_string(i), "reading the capture ring");
  std::ofstream(sensor.PersistentDir("capture") + "/go") << "go\n";
  std::string log = sensor.WaitForLog("capture", "REPLAY DONE", std::chrono::seconds(120));
  auto at = log.find("REPLAY DONE ");
  auto done =
      nlohmann::json::parse(log.substr(at + 12, log.find('\n', at) - at - 12), nullptr, false);
  double rate = 0;
  if (done.is_object() && done.value("drained", false)) {
    auto frames = done.value("frames", std::uint64_t{0});
    rate = static_cast<double>(frames) / done.value("seconds", 1.0);
    for (int i = 0; i < readers; ++i) {
      auto status = sensor.InstrumentStatus("reader" + std::to_string(i));
      if (status["ring"].value("delivered", std::uint64_t{0}) != frames ||
          status["ring"].value("dropped", std::uint64_t{1}) != 0) {
        std::printf("  pcap replay: reader%d lost frames: %s\n", i, status["ring"].dump().c_str());
        rate = 0;
      }
    }
  } else {
    std::printf("  pcap replay did not finish cleanly: %s\n", log.c_str());
  }
  sensor.Stop();
  return rate;
}

void Print(const std::string& name, double value) {
  std::printf("BENCH %s %.0f pps\n", name.c_str(), value);
  std::fflush(stdout);
}

}  // namespace
}  // namespace custos::testing

int main(int argc, char** argv) {
  CLI::App app{"capture bench: ring readers vs tcpdump alone on a veth wire"};
  bool quick = false;
  app.add_flag("--quick", quick, "64-byte frames only");
  CLI11_PARSE(app, argc, argv);
  using namespace custos::testing;
  Print("capture_pcap_pps_2consumers", PcapRate(2));
  std::vector<std::size_t> sizes{64};
  if (!quick) sizes.push_back(1500);
  for (std::size_t size : sizes) {
    std::string suffix = size == 64 ? "" : "_" + std::to_string(size) + "B";
    double peer = TcpdumpRate(size);
    for (int readers : {1, 2, 4}) {
      double rate = RingRate(readers, size);
      Print("capture_pps_" + std::to_string(readers) + "consumers" + suffix, rate);
      if (readers == 4) Print("capture_pps_4consumers" + suffix + ".peer", peer);
    }
  }
  return 0;
}
