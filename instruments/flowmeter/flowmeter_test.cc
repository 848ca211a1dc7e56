// The flow meter against a reference: for every capture in the shared
// corpus, tshark decodes each frame and this test adds them up per
// conversation; the flow meter's records must agree on packets and bytes in
// each direction. Captures with IP fragments or tunnels are left out (tshark
// attributes their frames differently) and counted as such.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <tuple>

#include "common/process.h"
#include "flow_eve.h"
#include "flow_meter.h"

namespace custos::flowmeter {
namespace {
namespace fs = std::filesystem;

// (lower endpoint, higher endpoint, protocol) -> packets and bytes from lower, from higher.
using Endpoint = std::pair<std::string, std::uint16_t>;
using Key = std::tuple<Endpoint, Endpoint, int>;
struct Totals {
  std::uint64_t packets_up = 0, bytes_up = 0, packets_down = 0, bytes_down = 0;
  bool operator==(const Totals&) const = default;
};
using Conversations = std::map<Key, Totals>;

void Count(Conversations& table, Endpoint src, Endpoint dst, int protocol, std::uint64_t packets,
           std::uint64_t bytes, std::uint64_t packets_back = 0, std::uint64_t bytes_back = 0) {
  bool up = src <= dst;
  Key key{up ? src : dst, up ? dst : src, protocol};
  auto& totals = table[key];
  (up ? totals.packets_up : totals.packets_down) += packets;
  (up ? totals.bytes_up : totals.bytes_down) += bytes;
  (up ? totals.packets_down : totals.packets_up) += packets_back;
  (up ? totals.bytes_down : totals.bytes_up) += bytes_back;
}

Conversations Ours(const std::string& pcap) {
  Conversations table;
  net::FlowTimeouts forever{~0ull, ~0ull, ~0ull};
  FlowMeter meter(
      [&](const net::FlowRecord& flow) {
        Count(table, {FormatIp(flow.src), flow.src_port}, {FormatIp(flow.dst), flow.dst_port},
              flow.protocol, flow.to_dst.packets, flow.to_dst.bytes, flow.to_src.packets,
              flow.to_src.bytes);
      },
      forever);
  auto source = capture::PcapSource::OpenFile(pcap);
  EXPECT_TRUE(source.ok()) << source.error().message;
  capture::CapturedFrame frame;
  while (source && *source->Next(frame)) meter.Process(frame, source->link());
  meter.Finish();
  return table;
}

// Returns false when the capture holds what this comparison leaves out.
bool Reference(const std::string& pcap, Conversations& table) {
  auto output = RunChecked({"tshark", "-n",
                            "-r",     pcap,
                            "-T",     "fields",
                            "-E",     "separator=|",
                            "-E",     "occurrence=f",
                            "-e",     "frame.len",
                            "-e",     "ip.src",
                            "-e",     "ip.dst",
                            "-e",     "ipv6.src",
                            "-e",     "ipv6.dst",
                            "-e",     "ip.proto",
                            "-e",     "ipv6.nxt",
                            "-e",     "tcp.srcport",
                            "-e",     "tcp.dstport",
                            "-e",     "udp.srcport",
                            "-e",     "udp.dstport",
                            "-e",     "ip.flags.mf",
                            "-e",     "ip.frag_offset",
                            "-e",     "ipv6.fragment",
                            "-e",     "ip.version"});
  EXPECT_TRUE(output.ok()) << output.error().message;
  if (!output) return false;
  std::istringstream lines(*output);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::stringstream fields(line);
    for (std::string field; std::getline(fields, field, '|');) f.push_back(field);
    f.resize(15);
    if (f[11] == "1" || (!f[12].empty() && f[12] != "0") || !f[13].empty())
      return false;  // fragments
    bool v4 = !f[1].empty();
    if (!v4 && f[3].empty()) continue;  // not IP
    int protocol = v4 ? std::stoi(f[5]) : -1;
    if (!v4) protocol = !f[7].empty() ? 6 : !f[9].empty() ? 17 : std::stoi(f[6]);
    std::uint16_t sport = 0, dport = 0;
    if (protocol == 6 && !f[7].empty()) sport = std::stoi(f[7]), dport = std::stoi(f[8]);
    if (protocol == 17 && !f[9].empty()) sport = std::stoi(f[9]), dport = std::stoi(f[10]);
    Count(table, {v4 ? f[1] : f[3], sport}, {v4 ? f[2] : f[4], dport}, protocol, 1,
          std::stoull(f[0]));
  }
  return true;
}

TEST(FlowMeter, AgreesWithTsharkOnEveryCorpusCapture) {
  fs::path corpus = CUSTOS_CORPUS;
  ASSERT_TRUE(fs::exists(corpus)) << "the shared corpus is missing at " << corpus;
  int compared = 0, left_out = 0;
  for (const auto& entry : fs::recursive_directory_iterator(corpus)) {
    if (entry.path().extension() != ".pcap") continue;
    Conversations reference;
    if (!Reference(entry.path(), reference)) {
      ++left_out;
      continue;
    }
    ++compared;
    auto ours = Ours(entry.path());
    EXPECT_EQ(ours.size(), reference.size()) << entry.path();
    for (const auto& [key, totals] : reference) {
      auto found = ours.find(key);
      const auto& [a, b, protocol] = key;
      std::string name = entry.path().parent_path().filename().string() + " " + a.first + ":" +
                         std::to_string(a.second) + " <-> " + b.first + ":" +
                         std::to_string(b.second) + " proto " + std::to_string(protocol);
      if (found == ours.end()) {
        ADD_FAILURE() << "no flow for " << name;
        continue;
      }
      EXPECT_EQ(found->second.packets_up, totals.packets_up) << name;
      EXPECT_EQ(found->second.packets_down, totals.packets_down) << name;
      EXPECT_EQ(found->second.bytes_up, totals.bytes_up) << name;
      EXPECT_EQ(found->second.bytes_down, totals.bytes_down) << name;
    }
  }
  std::printf("compared %d captures with tshark, left out %d (fragments)\n", compared, left_out);
  EXPECT_GE(compared, 30);
}

TEST(FlowMeter, FlowEventsAreEveShaped) {
  net::FlowRecord flow;
  flow.src.version = flow.dst.version = 4;
  flow.src.bytes = {198, 18, 0, 1};
  flow.dst.bytes = {198, 18, 0, 2};
  flow.src_port = 40000;
  flow.dst_port = 443;
  flow.protocol = 6;
  flow.first_us = 1'700'000'000'000'000;
  flow.last_us = flow.first_us + 2'500'000;
  flow.to_dst = {3, 200, 0x1b};
  flow.to_src = {2, 150, 0x12};
  flow.end = net::FlowEnd::kTcpClosed;
  auto event = FlowToEve(flow);
  EXPECT_EQ(event["event_type"], "flow");
  EXPECT_EQ(event["src_ip"], "198.18.0.1");
  EXPECT_EQ(event["dest_port"], 443);
  EXPECT_EQ(event["proto"], "TCP");
  EXPECT_EQ(event["flow"]["pkts_toserver"], 3);
  EXPECT_EQ(event["flow"]["bytes_toclient"], 150);
  EXPECT_EQ(event["flow"]["reason"], "closed");
  EXPECT_EQ(event["flow"]["age"], 2);
  EXPECT_EQ(event["tcp"]["tcp_flags_ts"], "1b");
  EXPECT_EQ(event["timestamp"], "2023-11-14T22:13:20.000000+0000");
}

}  // namespace
}  // namespace custos::flowmeter
