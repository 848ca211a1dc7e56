// The capture engine feeding passive instruments in real containers: it
// replays a corpus capture into the mirror links, Debian's tcpdump (a
// passive instrument, unchanged) must write exactly the same frames, and
// the flow meter must account for every one of them in its flow events.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "capture/pcap_source.h"
#include "common/process.h"
#include "sandbox/netns.h"
#include "sandbox/nftables.h"
#include "tests/system/harness.h"

namespace custos::testing {
namespace {
namespace fs = std::filesystem;

const char* kInput = "tcp-rst-unacked-stream-07-http";

std::vector<std::vector<std::uint8_t>> Frames(const std::string& path) {
  std::vector<std::vector<std::uint8_t>> frames;
  auto source = capture::PcapSource::OpenFile(path);
  if (!source) return frames;
  capture::CapturedFrame frame;
  while (*source->Next(frame)) frames.emplace_back(frame.data.begin(), frame.data.end());
  return frames;
}

// Debian's tcpdump as a passive instrument named `dump`, writing /data/out.pcap.
std::string Tcpdump() {
  return "  - name: dump\n    manifest: " + std::string(CUSTOS_TEST_DATA) +
         "/tcpdump/manifest.yaml" +
         "\n    network: passive\n    args: [-i, mirror0, -n, -U, -Z, root, -w, /data/out.pcap]\n";
}

// ringdump, a capture ring reader, writing /data/ring.pcap.
std::string RingDump(const std::string& name, const std::string& filter = "") {
  std::string entry =
      "  - name: " + name + "\n    manifest: " + ManifestOf("ringdump") + "\n    network: ring\n";
  if (!filter.empty()) entry += "    capture_filter: '" + filter + "'\n";
  return entry;
}

// What Debian's tcpdump reading the file itself counts for `filter`.
std::size_t TcpdumpCount(const std::string& pcap, const std::string& filter) {
  auto result = RunChecked({"tcpdump", "-r", pcap, "-n", filter});
  if (!result) return 0;
  // One line per frame, after the one that names the file (on stderr, captured too).
  std::size_t lines = static_cast<std::size_t>(std::count(result->begin(), result->end(), '\n'));
  return result->find("reading from file") != std::string::npos ? lines - 1 : lines;
}

std::string CorpusCapture() {
  for (const auto& entry :
       fs::directory_iterator(std::string(CUSTOS_CORPUS) + "/suricata-verify/" + kInput)) {
    if (entry.path().extension() == ".pcap") return entry.path();
  }
  return "";
}

// Waits until `path` holds at least `count` frames; returns what it holds.
std::vector<std::vector<std::uint8_t>> WaitForFrames(const std::string& path, std::size_t count) {
  std::vector<std::vector<std::uint8_t>> frames;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    frames = Frames(path);
    if (frames.size() >= count) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return frames;
}

// The capture engine on the monitored interface wire0.
std::string EngineOnWire() {
  return "  - name: capture\n    manifest: " + ManifestOf("capture") +
         "\n    network: capture\n    interface: wire0\n";
}

constexpr const char* kTcpdumpPolicy =
    "allowed_capabilities: [CAP_NET_RAW, CAP_SETUID, CAP_SETGID]";
constexpr const char* kWirePolicy =
    "allowed_capabilities: [CAP_NET_RAW, CAP_SETUID, CAP_SETGID]\nactive_interfaces: [wire0]";

// The monitored "wire" in the test host: wire0 goes to the capture engine,
// traffic enters at wire1. No IPv6, so the kernel adds no frames of its own.
void MakeWire(const TestNetns& host) {
  host.Run({"ip", "link", "add", "wire0", "type", "veth", "peer", "name", "wire1"});
  for (const char* end : {"wire0", "wire1"}) {
    host.Run({"sysctl", "-q", "-w", std::string("net.ipv6.conf.") + end + ".disable_ipv6=1"});
  }
  host.Run({"ip", "link", "set", "wire1", "up"});
}

TEST(Capture, TcpdumpGetsEveryFrameAndFlowsAccountForThem) {
  std::string pcap;
  for (const auto& entry :
       fs::directory_iterator(std::string(CUSTOS_CORPUS) + "/suricata-verify/" + kInput)) {
    if (entry.path().extension() == ".pcap") pcap = entry.path();
  }
  ASSERT_FALSE(pcap.empty()) << "corpus capture missing";
  auto input = Frames(pcap);
  ASSERT_GT(input.size(), 5u);

  std::string instruments =
      "  - name: capture\n    manifest: " + ManifestOf("capture") +
      "\n    network: capture\n    bus: {publish: [capture]}\n"
      "    settings: {pcap: /data/in.pcap, trigger: /data/go}\n" +
      Tcpdump() + "  - name: flows\n    manifest: " + ManifestOf("flowmeter") +
      "\n    network: passive\n    bus: {publish: [flow]}\n    settings: {idle_timeout_seconds: "
      "1}\n";
  SensorUnderTest sensor("cap", instruments, "", kTcpdumpPolicy);
  fs::create_directories(sensor.PersistentDir("capture"));
  fs::copy_file(pcap, sensor.PersistentDir("capture") + "/in.pcap");
  sensor.Start();
  sensor.WaitForLog("dump", "listening on mirror0");
  sensor.WaitForLog("flows", "metering mirror0");
  std::string log = sensor.WaitForLog("capture", "feeding");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    log = sensor.Log("capture");
    if (log.find("feeding", log.find("feeding") + 1) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::ofstream(sensor.PersistentDir("capture") + "/go") << "go\n";
  log = sensor.WaitForLog("capture", "REPLAY DONE");
  EXPECT_NE(log.find(R"("received":)" + std::to_string(input.size())), std::string::npos) << log;
  EXPECT_EQ(log.find(R"("dropped":0)"), log.find(R"("dropped":)"))
      << "a consumer lost frames: " << log;

  // tcpdump wrote the very frames of the input, in order.
  std::string out = sensor.PersistentDir("dump") + "/out.pcap";
  std::vector<std::vector<std::uint8_t>> captured;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    captured = Frames(out);
    if (captured.size() >= input.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(captured.size(), input.size()) << sensor.Log("dump");
  for (std::size_t i = 0; i < input.size(); ++i) EXPECT_EQ(captured[i], input[i]) << "frame " << i;

  // The flow meter's flow events count every frame.
  std::uint64_t packets = 0;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && packets < input.size()) {
    packets = 0;
    // Kept in a variable: a range-for over a member of a temporary would dangle.
    auto reply = sensor.Request({{"command", "events"}, {"topic", "flow"}, {"limit", 1000}});
    for (const auto& event : reply["events"]) {
      auto flow = nlohmann::json::parse(event["event"].get<std::string>())["flow"];
      packets +=
          flow["pkts_toserver"].get<std::uint64_t>() + flow["pkts_toclient"].get<std::uint64_t>();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(packets, input.size())
      << sensor.Log("flows") << sensor.InstrumentStatus("flows").dump();
  sensor.Stop();
}

TEST(Capture, LiveWireReachesTcpdumpAndNothingLeavesTheMonitoredInterface) {
  std::string pcap;
  for (const auto& entry :
       fs::directory_iterator(std::string(CUSTOS_CORPUS) + "/suricata-verify/" + kInput)) {
    if (entry.path().extension() == ".pcap") pcap = entry.path();
  }
  auto input = Frames(pcap);
  ASSERT_GT(input.size(), 5u);
  SensorUnderTest sensor("wire", EngineOnWire() + Tcpdump() + RingDump("ring"), "", kWirePolicy);
  const auto& host = sensor.host();
  MakeWire(host);
  sensor.Start();
  sensor.WaitForLog("dump", "listening on mirror0");
  sensor.WaitForLog("ring", "reading the capture ring");
  sensor.WaitForLog("capture", "feeding");
  host.Run({"tcpreplay", "-q", "-i", "wire1", pcap});

  std::string out = sensor.PersistentDir("dump") + "/out.pcap";
  std::vector<std::vector<std::uint8_t>> captured;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    captured = Frames(out);
    if (captured.size() >= input.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(captured.size(), input.size()) << sensor.Log("capture") << sensor.Log("dump");
  // The platform's own count of what crossed each mirror link agrees.
  auto dump = sensor.InstrumentStatus("dump");
  EXPECT_EQ(dump["mirror"]["delivered"], input.size()) << dump.dump();
  EXPECT_EQ(dump["mirror"]["dropped"], 0) << dump.dump();
  for (std::size_t i = 0; i < input.size(); ++i) EXPECT_EQ(captured[i], input[i]) << "frame " << i;
  // The ring reader got the same frames from shared memory.
  auto from_ring = WaitForFrames(sensor.PersistentDir("ring") + "/ring.pcap", input.size());
  EXPECT_EQ(from_ring, input) << sensor.Log("ring");
  auto ring = sensor.InstrumentStatus("ring");
  EXPECT_EQ(ring["ring"]["delivered"], input.size()) << ring.dump();
  EXPECT_EQ(ring["ring"]["dropped"], 0) << ring.dump();
  // Whatever reached the wire from the sensor side would arrive at wire1.
  EXPECT_EQ(InterfaceCounter(host.path(), "wire1", "rx_packets"), 0u);
  auto engine = sensor.InstrumentStatus("capture");
  std::string engine_netns = "/proc/" + std::to_string(engine["pid"].get<int>()) + "/ns/net";
  auto guarded = DroppedPackets(engine_netns, "out_monitored");
  ASSERT_TRUE(guarded.ok()) << guarded.error().message;
  sensor.Stop();
  // wire0 is handed back to the sensor's namespace.
  EXPECT_NE(host.Run({"ip", "-o", "link", "show", "wire0"}).find("wire0"), std::string::npos);
}

TEST(Capture, RingReadersGetEveryFrameTheirFilterPassesAndCannotWriteTheRing) {
  std::string pcap = CorpusCapture();
  ASSERT_FALSE(pcap.empty()) << "corpus capture missing";
  auto input = Frames(pcap);
  // The capture's frames carry a VLAN tag.
  const std::string kSyn = "vlan and tcp[tcpflags] & tcp-syn != 0";
  std::size_t syns = TcpdumpCount(pcap, kSyn);
  ASSERT_GT(syns, 0u);
  ASSERT_LT(syns, input.size());
  std::string hostile = "  - name: evil\n    manifest: " + ManifestOf("hostile-ring") +
                        "\n    network: ring\n    args: [ring]\n";
  std::string instruments = "  - name: capture\n    manifest: " + ManifestOf("capture") +
                            "\n    network: capture\n    bus: {publish: [capture]}\n"
                            "    settings: {pcap: /data/in.pcap, trigger: /data/go}\n" +
                            RingDump("all") + RingDump("syn", kSyn) + hostile +
                            "  - name: mirsyn\n    manifest: " + std::string(CUSTOS_TEST_DATA) +
                            "/tcpdump/manifest.yaml\n    network: passive\n    capture_filter: '" +
                            kSyn +
                            "'\n    args: [-i, mirror0, -n, -U, -Z, root, -w, /data/out.pcap]\n";
  SensorUnderTest sensor("ring", instruments, "", kTcpdumpPolicy);
  fs::create_directories(sensor.PersistentDir("capture"));
  fs::copy_file(pcap, sensor.PersistentDir("capture") + "/in.pcap");
  sensor.Start();
  sensor.WaitForLog("all", "reading the capture ring");
  sensor.WaitForLog("syn", "reading the capture ring");
  sensor.WaitForLog("mirsyn", "listening on mirror0");
  sensor.WaitForLog("capture", "with filter");
  std::string attacks = sensor.WaitForLog("evil", "socketpair");
  for (const char* probe :
       {"ring_map_writable", "ring_mprotect_writable", "ring_reopen_and_write", "ring_truncate",
        "socket_unix", "socket_inet", "socket_packet", "socket_netlink", "socketpair"}) {
    std::string line = std::string("\"probe\":\"") + probe + "\",\"blocked\":true";
    EXPECT_NE(attacks.find(line), std::string::npos) << probe << " not blocked:\n" << attacks;
  }
  std::ofstream(sensor.PersistentDir("capture") + "/go") << "go\n";
  std::string log = sensor.WaitForLog("capture", "REPLAY DONE");
  EXPECT_NE(log.find(R"("drained":true)"), std::string::npos) << log;

  auto all = WaitForFrames(sensor.PersistentDir("all") + "/ring.pcap", input.size());
  EXPECT_EQ(all, input) << sensor.Log("all");
  auto syn = WaitForFrames(sensor.PersistentDir("syn") + "/ring.pcap", syns);
  EXPECT_EQ(syn.size(), syns) << sensor.Log("syn");
  auto status = sensor.InstrumentStatus("syn");
  EXPECT_EQ(status["ring"]["delivered"], input.size()) << status.dump();
  EXPECT_EQ(status["ring"]["filtered"], input.size() - syns) << status.dump();
  EXPECT_EQ(status["ring"]["dropped"], 0) << status.dump();
  // The engine applied the same filter to the passive instrument's mirror link.
  auto mirrored = WaitForFrames(sensor.PersistentDir("mirsyn") + "/out.pcap", syns);
  EXPECT_EQ(mirrored, syn) << sensor.Log("mirsyn");
  EXPECT_NE(log.find(R"("filtered":)" + std::to_string(input.size() - syns)), std::string::npos)
      << log;
  // The engine's own event names each reader.
  EXPECT_NE(log.find(R"("syn":{"delivered":)" + std::to_string(input.size())), std::string::npos)
      << log;
  sensor.Stop();
}

// Frames and bytes per conversation ("a <-> b", endpoints sorted), as tshark's
// conversation statistics count them: the reference for the flow meter.
using Conversations = std::map<std::string, std::pair<std::uint64_t, std::uint64_t>>;

std::string ConversationKey(std::string a, std::string b) {
  if (b < a) std::swap(a, b);
  return a + " <-> " + b;
}

Conversations TsharkConversations(const std::string& pcap) {
  Conversations conversations;
  auto output = RunChecked({"tshark", "-r", pcap, "-q", "-z", "conv,tcp", "-z", "conv,udp"});
  if (!output) {
    ADD_FAILURE() << output.error().message;
    return conversations;
  }
  std::regex line(
      R"((\S+)\s+<->\s+(\S+)\s+\d+\s+\d+ bytes\s+\d+\s+\d+ bytes\s+(\d+)\s+(\d+) bytes)");
  std::istringstream lines(*output);
  for (std::string text; std::getline(lines, text);) {
    std::smatch match;
    if (!std::regex_search(text, match, line)) continue;
    auto& totals = conversations[ConversationKey(match[1], match[2])];
    totals.first += std::stoull(match[3]);
    totals.second += std::stoull(match[4]);
  }
  return conversations;
}

Conversations FlowConversations(const SensorUnderTest& sensor) {
  Conversations conversations;
  auto reply = sensor.Request({{"command", "events"}, {"topic", "flow"}, {"limit", 1000}});
  for (const auto& event : reply["events"]) {
    auto eve = nlohmann::json::parse(event["event"].get<std::string>());
    auto endpoint = [&](const char* ip, const char* port) {
      return eve[ip].get<std::string>() + ":" + std::to_string(eve[port].get<int>());
    };
    const auto& flow = eve["flow"];
    auto& totals = conversations[ConversationKey(endpoint("src_ip", "src_port"),
                                                 endpoint("dest_ip", "dest_port"))];
    totals.first +=
        flow["pkts_toserver"].get<std::uint64_t>() + flow["pkts_toclient"].get<std::uint64_t>();
    totals.second +=
        flow["bytes_toserver"].get<std::uint64_t>() + flow["bytes_toclient"].get<std::uint64_t>();
  }
  return conversations;
}

TEST(Capture, LiveWireFlowsMatchTsharkConversations) {
  Conversations expected;
  std::vector<std::string> inputs;
  // Small Ethernet captures (tshark writes "kB" instead of bytes above 10,000).
  for (const char* name : {"dns-eve-type-filtering/test.pcap",
                           "bug-8278-krb5-03/baseline.2.flows.pcap", "tcp-fastopen-01/tfo.pcap"}) {
    inputs.push_back(std::string(CUSTOS_CORPUS) + "/suricata-verify/" + name);
    for (const auto& [key, totals] : TsharkConversations(inputs.back())) expected[key] = totals;
  }
  ASSERT_EQ(expected.size(), 12u);
  std::string flows = "  - name: flows\n    manifest: " + ManifestOf("flowmeter") +
                      "\n    network: passive\n    bus: {publish: [flow]}\n"
                      "    settings: {idle_timeout_seconds: 1}\n";
  SensorUnderTest sensor("wireflow", EngineOnWire() + flows, "", kWirePolicy);
  const auto& host = sensor.host();
  MakeWire(host);
  sensor.Start();
  sensor.WaitForLog("flows", "metering mirror0");
  sensor.WaitForLog("capture", "feeding");
  for (const auto& input : inputs)
    host.Run({"tcpreplay", "-q", "--topspeed", "-i", "wire1", input});
  Conversations metered;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    metered = FlowConversations(sensor);
    if (metered == expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(metered, expected) << sensor.Log("flows") << sensor.Log("capture");
  sensor.Stop();
}

TEST(Capture, ReplayAtTheRecordedPaceTakesAsLongAsTheCapture) {
  // Two frames recorded one second apart.
  std::string pcap =
      std::string(CUSTOS_CORPUS) + "/suricata-verify/detection_filter-distinct-srcport/input.pcap";
  auto input = Frames(pcap);
  ASSERT_EQ(input.size(), 2u);
  std::string instruments =
      "  - name: capture\n    manifest: " + ManifestOf("capture") +
      "\n    network: capture\n"
      "    settings: {pcap: /data/in.pcap, trigger: /data/go, pace: original}\n" +
      RingDump("all");
  SensorUnderTest sensor("pace", instruments);
  fs::create_directories(sensor.PersistentDir("capture"));
  fs::copy_file(pcap, sensor.PersistentDir("capture") + "/in.pcap");
  sensor.Start();
  sensor.WaitForLog("all", "reading the capture ring");
  std::ofstream(sensor.PersistentDir("capture") + "/go") << "go\n";
  std::string log = sensor.WaitForLog("capture", "REPLAY DONE");
  auto at = log.find("REPLAY DONE ");
  auto done = nlohmann::json::parse(log.substr(at + 12, log.find('\n', at) - at - 12));
  EXPECT_GE(done["seconds"].get<double>(), 1.0) << log;
  EXPECT_LT(done["seconds"].get<double>(), 3.0) << log;
  EXPECT_EQ(WaitForFrames(sensor.PersistentDir("all") + "/ring.pcap", 2), input);
  sensor.Stop();
}

TEST(Capture, HostilePassiveTransmitReachesNeitherWireNorNeighbours) {
  std::string hostile = "  - name: tx\n    manifest: " + ManifestOf("hostile") +
                        "\n    network: passive\n    args: [transmit, '200']\n";
  SensorUnderTest sensor("wiretx", EngineOnWire() + Tcpdump() + hostile, "", kWirePolicy);
  const auto& host = sensor.host();
  MakeWire(host);
  sensor.Start();
  sensor.WaitForLog("dump", "listening on mirror0");
  sensor.WaitForLog("tx", "TRANSMITTED");
  // Lift its egress guard, as a kernel bug might, and have it transmit again.
  auto tx = sensor.InstrumentStatus("tx");
  std::string tx_netns = "/proc/" + std::to_string(tx["pid"].get<int>()) + "/ns/net";
  auto removed =
      RunInNetns(tx_netns, {"nft", "delete", "chain", "netdev", kGuardTable, "out_mirror0"});
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  ASSERT_EQ(::kill(tx["pid"].get<int>(), SIGUSR1), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string log;
  while (std::chrono::steady_clock::now() < deadline) {
    log = sensor.Log("tx");
    if (log.find("TRANSMITTED", log.find("TRANSMITTED") + 1) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The tap end's ingress guard, in the engine's namespace, dropped what crossed.
  auto engine = sensor.InstrumentStatus("capture");
  std::string engine_netns = "/proc/" + std::to_string(engine["pid"].get<int>()) + "/ns/net";
  auto dropped = DroppedPackets(engine_netns, "in_" + tx["mirror_host_end"].get<std::string>());
  ASSERT_TRUE(dropped.ok()) << dropped.error().message;
  EXPECT_GE(*dropped, 400u);
  EXPECT_EQ(InterfaceCounter(host.path(), "wire1", "rx_packets"), 0u)
      << "something reached the wire";
  EXPECT_EQ(Frames(sensor.PersistentDir("dump") + "/out.pcap").size(), 0u)
      << "a neighbour saw the frames";
  sensor.Stop();
}

}  // namespace
}  // namespace custos::testing
