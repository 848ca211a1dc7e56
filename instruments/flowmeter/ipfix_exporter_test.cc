// IPFIX export against a reference: the flows the meter makes of every
// corpus capture go to a real UDP socket on 127.0.0.1; the datagrams that
// arrive are written to a pcap and decoded by Debian's tshark, whose reading
// of every record must equal the FlowRecord it came from. Also: templates at
// start and after the refresh period, batching under the message size, the
// batch delay, send errors, the settings' validation (in the library and in
// the real binary), and sending from an interface without an address, as in
// active mode (in two network namespaces; needs root).
#include "ipfix_exporter.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/process.h"
#include "flow_eve.h"
#include "flow_meter.h"

namespace custos::flowmeter {
namespace {
namespace fs = std::filesystem;

constexpr std::uint16_t kIpfixPort = 4739;

class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/custos-ipfix-XXXXXX";
    if (::mkdtemp(name) != nullptr) path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct Datagram {
  std::vector<std::uint8_t> bytes;
  sockaddr_in from{};
};

// A UDP socket that keeps what arrives.
class Collector {
 public:
  explicit Collector(const std::string& ip = "127.0.0.1", std::uint16_t port = 0)
      : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    EXPECT_TRUE(fd_.valid());
    int buffer = 16 << 20;  // room for a whole corpus between drains
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &address.sin_addr);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
        << std::strerror(errno);
    socklen_t length = sizeof address;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    address_ = ip + ":" + std::to_string(ntohs(address.sin_port));
  }
  const std::string& address() const { return address_; }

  // Whatever is queued now: loopback delivers during send(), so after a
  // flush everything sent is here.
  std::vector<Datagram> Drain() { return Receive(0, 0); }
  // Waits up to `timeout_ms` until `count` datagrams came.
  std::vector<Datagram> Receive(std::size_t count, int timeout_ms) {
    std::vector<Datagram> got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      Datagram datagram;
      datagram.bytes.resize(65536);
      socklen_t length = sizeof datagram.from;
      auto n = ::recvfrom(fd_.get(), datagram.bytes.data(), datagram.bytes.size(), MSG_DONTWAIT,
                          reinterpret_cast<sockaddr*>(&datagram.from), &length);
      if (n >= 0) {
        datagram.bytes.resize(static_cast<std::size_t>(n));
        got.push_back(std::move(datagram));
        continue;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (got.size() >= count || left <= 0) return got;
      pollfd entry{fd_.get(), POLLIN, 0};
      ::poll(&entry, 1, static_cast<int>(left));
    }
  }

 private:
  UniqueFd fd_;
  std::string address_;
};

std::uint16_t Checksum(const std::uint8_t* data, std::size_t length) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < length; i += 2) sum += (data[i] << 8) | data[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// Each datagram as a raw IPv4/UDP packet from 127.0.0.1:40000 to port 4739.
void WritePcap(const fs::path& path, const std::vector<Datagram>& datagrams) {
  pcap_t* dead = ::pcap_open_dead(DLT_RAW, 65535);
  ASSERT_NE(dead, nullptr);
  pcap_dumper_t* dumper = ::pcap_dump_open(dead, path.c_str());
  ASSERT_NE(dumper, nullptr) << ::pcap_geterr(dead);
  long second = 1'700'000'000;
  for (const auto& datagram : datagrams) {
    std::vector<std::uint8_t> packet(28);
    auto total = static_cast<std::uint16_t>(28 + datagram.bytes.size());
    std::uint8_t ip[20] = {0x45,
                           0,
                           static_cast<std::uint8_t>(total >> 8),
                           static_cast<std::uint8_t>(total),
                           0,
                           0,
                           0x40,
                           0,
                           64,
                           17,
                           0,
                           0,
                           127,
                           0,
                           0,
                           1,
                           127,
                           0,
                           0,
                           1};
    auto sum = Checksum(ip, sizeof ip);
    ip[10] = static_cast<std::uint8_t>(sum >> 8);
    ip[11] = static_cast<std::uint8_t>(sum);
    std::copy(std::begin(ip), std::end(ip), packet.begin());
    auto udp_length = static_cast<std::uint16_t>(8 + datagram.bytes.size());
    std::uint8_t udp[8] = {40000 >> 8,
                           40000 & 0xff,
                           kIpfixPort >> 8,
                           kIpfixPort & 0xff,
                           static_cast<std::uint8_t>(udp_length >> 8),
                           static_cast<std::uint8_t>(udp_length),
                           0,
                           0};  // no checksum, allowed for UDP over IPv4
    std::copy(std::begin(udp), std::end(udp), packet.begin() + 20);
    packet.insert(packet.end(), datagram.bytes.begin(), datagram.bytes.end());
    pcap_pkthdr header{};
    header.ts.tv_sec = second++;
    header.caplen = header.len = static_cast<bpf_u_int32>(packet.size());
    ::pcap_dump(reinterpret_cast<u_char*>(dumper), &header, packet.data());
  }
  ::pcap_dump_close(dumper);
  ::pcap_close(dead);
}

// What tshark read in one message. A flow's fields are keyed by tshark's
// field name, with "reverse." in front for RFC 5103 reverse elements.
struct DecodedMessage {
  std::map<std::string, std::string> header;
  int templates = 0;
  std::vector<std::map<std::string, std::string>> flows;
};

std::string Attribute(const std::string& line, const std::string& name) {
  std::string key = " " + name + "=\"";
  auto at = line.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  return line.substr(at, line.find('"', at) - at);
}

std::vector<DecodedMessage> Decode(const fs::path& pcap) {
  auto output = RunChecked({"env", "LC_ALL=C", "TZ=UTC", "tshark", "-n", "-r", pcap.string(), "-d",
                            "udp.port==4739,cflow", "-T", "pdml"});
  EXPECT_TRUE(output.ok()) << output.error().message;
  std::vector<DecodedMessage> messages;
  if (!output) return messages;
  EXPECT_EQ(output->find("_ws.malformed"), std::string::npos) << "tshark found malformed packets";
  std::istringstream lines(*output);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("<packet>") != std::string::npos) {
      messages.emplace_back();
      continue;
    }
    if (messages.empty()) continue;
    auto& message = messages.back();
    auto name = Attribute(line, "name");
    auto show = Attribute(line, "show");
    if (name.empty() && show.rfind("Flow ", 0) == 0) {
      message.flows.emplace_back();
    } else if (name == "cflow.template_id") {
      ++message.templates;
    } else if (name.rfind("cflow.", 0) == 0) {
      if (!message.flows.empty()) {
        bool reverse = Attribute(line, "showname").find("(Reverse") != std::string::npos;
        message.flows.back()[(reverse ? "reverse." : "") + name] = show;
      } else {
        message.header[name] = show;
      }
    }
  }
  return messages;
}

// "Nov 14, 2023 22:13:20.123000000 UTC" to milliseconds since 1970.
std::uint64_t Milliseconds(const std::string& text) {
  std::tm parts{};
  const char* rest = ::strptime(text.c_str(), "%b %d, %Y %H:%M:%S", &parts);
  EXPECT_NE(rest, nullptr) << text;
  if (rest == nullptr) return 0;
  EXPECT_EQ(std::string(rest).substr(10), " UTC") << text;
  return static_cast<std::uint64_t>(::timegm(&parts)) * 1000 +
         std::stoull(std::string(rest + 1, 3));
}

std::uint64_t Number(const std::map<std::string, std::string>& fields, const std::string& name) {
  auto found = fields.find(name);
  EXPECT_NE(found, fields.end()) << "tshark shows no " << name;
  return found == fields.end() ? ~0ull : std::stoull(found->second, nullptr, 0);
}

std::string Text(const std::map<std::string, std::string>& fields, const std::string& name) {
  auto found = fields.find(name);
  EXPECT_NE(found, fields.end()) << "tshark shows no " << name;
  return found == fields.end() ? "" : found->second;
}

std::uint64_t EndReason(net::FlowEnd end) {
  switch (end) {
    case net::FlowEnd::kIdle:
      return 1;
    case net::FlowEnd::kActive:
      return 2;
    case net::FlowEnd::kTcpClosed:
      return 3;
    case net::FlowEnd::kFlushed:
      return 4;
    case net::FlowEnd::kEvicted:
      return 5;
  }
  return 0;
}

void ExpectSame(const std::map<std::string, std::string>& got, const net::FlowRecord& flow,
                const std::string& where) {
  SCOPED_TRACE(where);
  bool v6 = flow.src.version == 6;
  EXPECT_EQ(Text(got, v6 ? "cflow.srcaddrv6" : "cflow.srcaddr"), FormatIp(flow.src));
  EXPECT_EQ(Text(got, v6 ? "cflow.dstaddrv6" : "cflow.dstaddr"), FormatIp(flow.dst));
  EXPECT_EQ(Number(got, "cflow.srcport"), flow.src_port);
  EXPECT_EQ(Number(got, "cflow.dstport"), flow.dst_port);
  EXPECT_EQ(Number(got, "cflow.protocol"), flow.protocol);
  EXPECT_EQ(Number(got, "cflow.vlanid"), flow.vlan);
  EXPECT_EQ(Number(got, "cflow.layer2_octet_delta_count"), flow.to_dst.bytes);
  EXPECT_EQ(Number(got, "cflow.packets"), flow.to_dst.packets);
  EXPECT_EQ(Number(got, "cflow.tcpflags"), flow.to_dst.tcp_flags);
  EXPECT_EQ(Number(got, "reverse.cflow.layer2_octet_delta_count"), flow.to_src.bytes);
  EXPECT_EQ(Number(got, "reverse.cflow.packets"), flow.to_src.packets);
  EXPECT_EQ(Number(got, "reverse.cflow.tcpflags"), flow.to_src.tcp_flags);
  EXPECT_EQ(Milliseconds(Text(got, "cflow.abstimestart")), flow.first_us / 1000);
  EXPECT_EQ(Milliseconds(Text(got, "cflow.abstimeend")), flow.last_us / 1000);
  EXPECT_EQ(Number(got, "cflow.flow_end_reason"), EndReason(flow.end));
}

std::uint64_t NowSeconds() { return static_cast<std::uint64_t>(std::time(nullptr)); }

TEST(IpfixExporter, TsharkReadsEveryCorpusFlowAsTheMeterMadeIt) {
  fs::path corpus = CUSTOS_CORPUS;
  ASSERT_TRUE(fs::exists(corpus)) << "the shared corpus is missing at " << corpus;
  std::vector<fs::path> captures;
  for (const auto& entry : fs::recursive_directory_iterator(corpus))
    if (entry.path().extension() == ".pcap") captures.push_back(entry.path());
  std::sort(captures.begin(), captures.end());
  ASSERT_GE(captures.size(), 30u);

  Collector collector;
  IpfixOptions options;
  options.collector = collector.address();
  options.observation_domain = 7;
  auto started = NowSeconds();
  auto exporter = IpfixExporter::Open(options);
  ASSERT_TRUE(exporter.ok()) << exporter.error().message;
  std::vector<net::FlowRecord> expected;
  std::vector<Datagram> received = collector.Drain();
  for (const auto& capture : captures) {
    FlowMeter meter([&](const net::FlowRecord& flow) {
      expected.push_back(flow);
      exporter->Add(flow);
    });
    auto source = capture::PcapSource::OpenFile(capture);
    ASSERT_TRUE(source.ok()) << source.error().message;
    capture::CapturedFrame frame;
    while (*source->Next(frame)) meter.Process(frame, source->link());
    meter.Finish();
    auto more = collector.Drain();
    received.insert(received.end(), more.begin(), more.end());
  }
  exporter->Flush();
  auto more = collector.Drain();
  received.insert(received.end(), more.begin(), more.end());
  auto finished = NowSeconds();
  const auto& counters = exporter->counters();
  EXPECT_EQ(counters.send_errors, 0u) << counters.last_error;
  EXPECT_EQ(counters.records, expected.size());
  EXPECT_EQ(counters.messages, received.size());
  EXPECT_LT(received.size(), expected.size() / 4) << "records are not batched";

  TempDir dir;
  auto pcap = dir.path() / "ipfix.pcap";
  WritePcap(pcap, received);
  auto messages = Decode(pcap);
  ASSERT_EQ(messages.size(), received.size());
  std::size_t next = 0;
  std::size_t ipv6 = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& message = messages[i];
    std::string where = "message " + std::to_string(i);
    EXPECT_LE(received[i].bytes.size(), 1400u) << where;
    EXPECT_EQ(Number(message.header, "cflow.version"), 10u) << where;
    EXPECT_EQ(Number(message.header, "cflow.len"), received[i].bytes.size()) << where;
    EXPECT_EQ(Number(message.header, "cflow.sequence"), next) << where;
    EXPECT_EQ(Number(message.header, "cflow.od_id"), 7u) << where;
    auto export_time = Number(message.header, "cflow.exporttime");
    EXPECT_GE(export_time, started) << where;
    EXPECT_LE(export_time, finished) << where;
    // Templates went out at start; the run is shorter than the refresh period.
    EXPECT_EQ(message.templates, i == 0 ? 2 : 0) << where;
    for (const auto& flow : message.flows) {
      ASSERT_LT(next, expected.size());
      ipv6 += expected[next].src.version == 6;
      ExpectSame(flow, expected[next], where + " record " + std::to_string(next));
      ++next;
    }
  }
  EXPECT_EQ(next, expected.size()) << "tshark read fewer records than were sent";
  EXPECT_GT(ipv6, 0u) << "the corpus gave no IPv6 flow: the IPv6 template went untested";
  std::printf("%zu captures: %zu flows (%zu IPv6) in %zu IPFIX messages, all read back by tshark\n",
              captures.size(), expected.size(), ipv6, messages.size());
}

net::FlowRecord SampleFlow(bool ipv6, std::uint16_t port) {
  net::FlowRecord flow;
  flow.src.version = flow.dst.version = ipv6 ? 6 : 4;
  if (ipv6) {
    flow.src.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    flow.dst.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  } else {
    flow.src.bytes = {198, 18, 0, 1};
    flow.dst.bytes = {198, 18, 0, 2};
  }
  flow.src_port = port;
  flow.dst_port = 443;
  flow.protocol = 6;
  flow.vlan = 12;
  flow.first_us = 1'700'000'000'123'456;
  flow.last_us = flow.first_us + 2'500'000;
  flow.to_dst = {3, 200, 0x1b};
  flow.to_src = {2, 150, 0x12};
  flow.end = net::FlowEnd::kTcpClosed;
  return flow;
}

TEST(IpfixExporter, TemplatesAgainAfterTheRefreshPeriodAndBatchesWaitAtMostTheDelay) {
  Collector collector;
  std::uint64_t now = 1'700'000'000'000;
  IpfixOptions options;
  options.collector = collector.address();
  options.clock_ms = [&] { return now; };
  auto exporter = IpfixExporter::Open(options);
  ASSERT_TRUE(exporter.ok()) << exporter.error().message;
  auto received = collector.Drain();
  ASSERT_EQ(received.size(), 1u) << "no templates at start";

  exporter->Add(SampleFlow(false, 1000));
  now += 999;
  exporter->Tick();
  EXPECT_TRUE(collector.Drain().empty()) << "sent before the batch delay was up";
  now += 1;
  exporter->Tick();
  auto batch = collector.Drain();
  EXPECT_EQ(batch.size(), 1u) << "not sent when the batch delay was up";
  received.insert(received.end(), batch.begin(), batch.end());

  now += 29'000;  // 30 s after the templates
  exporter->Add(SampleFlow(true, 1001));
  exporter->Add(SampleFlow(false, 1002));
  exporter->Flush();
  batch = collector.Drain();
  received.insert(received.end(), batch.begin(), batch.end());

  // The clock set back an hour: the waiting batch goes at once, and the
  // templates go again rather than an hour late.
  exporter->Add(SampleFlow(false, 1003));
  now -= 3'600'000;
  exporter->Tick();
  exporter->Add(SampleFlow(false, 1004));
  exporter->Flush();
  batch = collector.Drain();
  received.insert(received.end(), batch.begin(), batch.end());

  TempDir dir;
  WritePcap(dir.path() / "refresh.pcap", received);
  auto messages = Decode(dir.path() / "refresh.pcap");
  ASSERT_EQ(messages.size(), 5u);
  std::vector<int> templates;
  std::vector<std::size_t> flows;
  for (const auto& message : messages) {
    templates.push_back(message.templates);
    flows.push_back(message.flows.size());
  }
  EXPECT_EQ(templates, (std::vector<int>{2, 0, 2, 0, 2}));
  EXPECT_EQ(flows, (std::vector<std::size_t>{0, 1, 2, 1, 1}));
  EXPECT_EQ(Number(messages[1].header, "cflow.exporttime"), 1'700'000'001u);
  EXPECT_EQ(Number(messages[2].header, "cflow.exporttime"), 1'700'000'030u);
  EXPECT_EQ(Number(messages[2].header, "cflow.sequence"), 1u);
  EXPECT_EQ(Number(messages[1].header, "cflow.od_id"), 1u);
  ASSERT_EQ(messages[2].flows.size(), 2u);
  ExpectSame(messages[1].flows[0], SampleFlow(false, 1000), "IPv4 after the delay");
  ExpectSame(messages[2].flows[0], SampleFlow(true, 1001), "IPv6 after the refresh");
  ExpectSame(messages[2].flows[1], SampleFlow(false, 1002), "IPv4 beside IPv6");
}

TEST(IpfixExporter, MessagesStayUnderTheLimit) {
  Collector collector;
  std::uint64_t now = 1'700'000'000'000;
  IpfixOptions options;
  options.collector = collector.address();
  options.clock_ms = [&] { return now; };
  auto exporter = IpfixExporter::Open(options);
  ASSERT_TRUE(exporter.ok()) << exporter.error().message;
  collector.Drain();
  for (std::uint16_t i = 0; i < 100; ++i) exporter->Add(SampleFlow(i % 3 == 0, i));
  exporter->Flush();
  auto received = collector.Drain();
  ASSERT_GE(received.size(), 2u);
  for (std::size_t i = 0; i < received.size(); ++i) {
    EXPECT_LE(received[i].bytes.size(), 1400u);
    if (i + 1 < received.size()) {
      EXPECT_GT(received[i].bytes.size(), 1400u - 90 - 4)
          << "a message left room for another record";
    }
  }
  EXPECT_EQ(exporter->counters().records, 100u);

  options.max_message_bytes = 200;
  EXPECT_FALSE(IpfixExporter::Open(options).ok()) << "a limit smaller than the templates";
}

TEST(IpfixExporter, SendErrorsAreCountedAndLostRecordsAdvanceTheSequence) {
  std::string address;
  {
    Collector gone;  // a port that was free a moment ago
    address = gone.address();
  }
  IpfixOptions options;
  options.collector = address;
  auto exporter = IpfixExporter::Open(options);
  ASSERT_TRUE(exporter.ok()) << exporter.error().message;
  // The templates went to a closed port; the kernel reports it on the next send.
  exporter->Add(SampleFlow(false, 1));
  exporter->Add(SampleFlow(false, 2));
  auto before = std::chrono::steady_clock::now();
  exporter->Flush();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::milliseconds(100));
  EXPECT_EQ(exporter->counters().send_errors, 1u);
  EXPECT_EQ(exporter->counters().records_dropped, 2u);
  EXPECT_NE(exporter->Summary().find("1 send errors (2 records lost, last: Connection refused)"),
            std::string::npos)
      << exporter->Summary();

  auto port = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  Collector collector("127.0.0.1", port);
  exporter->Add(SampleFlow(false, 3));
  exporter->Flush();
  auto received = collector.Drain();
  ASSERT_EQ(received.size(), 1u);
  const auto& bytes = received[0].bytes;
  std::uint32_t sequence = (bytes[8] << 24) | (bytes[9] << 16) | (bytes[10] << 8) | bytes[11];
  EXPECT_EQ(sequence, 2u) << "the collector cannot see that two records were lost";
  EXPECT_EQ(exporter->counters().records, 1u);
}

TEST(IpfixSettings, BadValuesAreRefusedByName) {
  struct Case {
    const char* settings;
    const char* error;
  };
  const Case cases[] = {
      {R"({"ipfix": "198.18.0.9"})", "setting ipfix: '198.18.0.9' is not a collector address"},
      {R"({"ipfix": "198.18.0.9:0"})",
       "setting ipfix: '198.18.0.9:0' is not a collector address: the port must be 1 to 65535"},
      {R"({"ipfix": "198.18.0.9:65536"})", "'198.18.0.9:65536' is not a collector address"},
      {R"({"ipfix": "198.18.0.9:47x"})", "'198.18.0.9:47x' is not a collector address"},
      {R"({"ipfix": "198.18.0.300:4739"})", "'198.18.0.300' is not an IPv4 address"},
      {R"({"ipfix": "collector.example:4739"})", "names are not resolved"},
      {R"({"ipfix": "2001:db8::9:4739"})", "needs brackets"},
      {R"({"ipfix": "[2001:db8::9]"})", "'[2001:db8::9]' is not a collector address"},
      {R"({"ipfix": "[2001:db8::zz]:4739"})", "'2001:db8::zz' is not an IPv6 address"},
      {R"({"ipfix": 4739})", "setting ipfix: '4739' is not text"},
      {R"({"ipfix": ""})", "setting ipfix: '' is not a collector address"},
      {R"({"ipfix": "198.18.0.9:4739", "ipfix_source": "2001:db8::8"})",
       "setting ipfix_source: '2001:db8::8' is not of the collector's address family"},
      {R"({"ipfix": "198.18.0.9:4739", "ipfix_source": "sensor"})",
       "setting ipfix_source: 'sensor' is not an address"},
      {R"({"ipfix_source": "198.18.0.8"})", "ipfix_source: is set but ipfix is not"},
      {R"({"ipfix": "198.18.0.9:4739", "ipfix_domain_id": -1})",
       "setting ipfix_domain_id: '-1' is not a whole number"},
      {R"({"ipfix": "198.18.0.9:4739", "ipfix_domain_id": 4294967296})",
       "setting ipfix_domain_id: '4294967296'"},
  };
  for (const auto& [settings, error] : cases) {
    auto options = IpfixOptionsFromSettings(nlohmann::json::parse(settings));
    ASSERT_FALSE(options.ok()) << settings;
    EXPECT_NE(options.error().message.find(error), std::string::npos)
        << settings << " gave: " << options.error().message;
  }

  auto none = IpfixOptionsFromSettings(nlohmann::json::parse(R"({"idle_timeout_seconds": 5})"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto good = IpfixOptionsFromSettings(nlohmann::json::parse(
      R"({"ipfix": "[2001:db8::9]:4739", "ipfix_source": "2001:db8::8", "ipfix_domain_id": 9})"));
  ASSERT_TRUE(good.ok()) << good.error().message;
  ASSERT_TRUE(good->has_value());
  EXPECT_EQ((*good)->collector, "[2001:db8::9]:4739");
  EXPECT_EQ((*good)->source, "2001:db8::8");
  EXPECT_EQ((*good)->observation_domain, 9u);
}

// The instrument itself: a bad value stops it at start with one clear line.
TEST(IpfixSettings, FlowmeterStopsAtStartOnABadValue) {
  TempDir dir;
  struct Case {
    const char* network;
    const char* ipfix;
    const char* error;
  };
  const Case cases[] = {
      {"active", "198.18.0.9", "flowmeter: setting ipfix: '198.18.0.9' is not a collector address"},
      {"passive", "198.18.0.9:4739", "flowmeter: setting ipfix: needs network mode active"},
      {"active", "198.18.0.9:4739", "flowmeter: setting ipfix_source: is required in active mode"},
  };
  for (const auto& [network, ipfix, error] : cases) {
    nlohmann::json document = {
        {"instrument", "flowmeter"}, {"network", network}, {"settings", {{"ipfix", ipfix}}}};
    auto path = dir.path() / "instrument.json";
    std::ofstream(path) << document.dump();
    // `timeout`: a flow meter that accepted the settings would meter lo until stopped.
    auto result = RunCommand({"timeout", "10", "env", "CUSTOS_SETTINGS=" + path.string(),
                              FLOWMETER_BINARY, "--interface", "lo"});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->exit_code, 1) << result->output;
    EXPECT_NE(result->output.find(error), std::string::npos) << result->output;
  }
}

// Runs `work` on a thread that has joined the named network namespace;
// sockets made there stay in it.
void InNetns(const std::string& name, const std::function<void()>& work) {
  std::thread thread([&] {
    UniqueFd ns(::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(ns.valid()) << name;
    ASSERT_EQ(::setns(ns.get(), CLONE_NEWNET), 0) << std::strerror(errno);
    work();
  });
  thread.join();
}

struct Netns {
  explicit Netns(std::string ns_name) : name(std::move(ns_name)) {
    auto made = RunChecked({"ip", "netns", "add", name});
    EXPECT_TRUE(made.ok()) << made.error().message;
  }
  ~Netns() { (void)RunCommand({"ip", "netns", "del", name}); }
  std::string name;
};

// Active mode as sensord leaves it: the instrument's namespace holds lo and
// `act0` without an address; at the other end of the link, in its own
// namespace, the collector's host 198.18.0.9/24.
class ActiveLink : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
    for (const auto& command : std::vector<std::vector<std::string>>{
             {"ip", "-n", sensor_.name, "link", "add", "act0", "type", "veth", "peer", "name",
              "col0", "netns", far_.name},
             {"ip", "-n", sensor_.name, "link", "set", "act0", "up"},
             // runc sets loopback up in a container's new namespace. Without
             // it (no local routing table at all) the kernel sends from 0.0.0.0.
             {"ip", "-n", sensor_.name, "link", "set", "lo", "up"},
             {"ip", "-n", far_.name, "addr", "add", "198.18.0.9/24", "dev", "col0"},
             {"ip", "-n", far_.name, "link", "set", "col0", "up"}}) {
      auto done = RunChecked(command);
      ASSERT_TRUE(done.ok()) << done.error().message;
    }
    auto addresses =
        RunChecked({"ip", "-n", sensor_.name, "-4", "-o", "addr", "show", "dev", "act0"});
    ASSERT_TRUE(addresses.ok());
    ASSERT_EQ(*addresses, "") << "the active interface should have no IPv4 address";
    InNetns(far_.name, [&] { collector_.emplace("198.18.0.9", kIpfixPort); });
  }

  static std::string From(const Datagram& datagram) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &datagram.from.sin_addr, text, sizeof text);
    return text;
  }

  std::string tag_ = std::to_string(::getpid());
  Netns sensor_{"custos-ipfix-s" + tag_};
  Netns far_{"custos-ipfix-c" + tag_};
  std::optional<Collector> collector_;
};

// The exporter binds to the interface and sends from `ipfix_source`.
TEST_F(ActiveLink, ExporterSendsFromAnInterfaceWithoutAddress) {
  IpfixOptions options;
  options.collector = "198.18.0.9:4739";
  options.source = "198.18.0.8";
  options.interface = "act0";
  std::optional<Result<IpfixExporter>> exporter;
  InNetns(sensor_.name, [&] { exporter.emplace(IpfixExporter::Open(options)); });
  ASSERT_TRUE(exporter.has_value());
  ASSERT_TRUE(exporter->ok()) << exporter->error().message;
  auto& open = **exporter;
  open.Add(SampleFlow(false, 7));
  open.Flush();

  auto received = collector_->Receive(2, 5000);  // the first waits for ARP
  ASSERT_EQ(received.size(), 2u) << open.Summary();
  EXPECT_EQ(From(received[1]), "198.18.0.8");
  EXPECT_EQ(received[1].bytes[0], 0);
  EXPECT_EQ(received[1].bytes[1], 10);
  EXPECT_EQ(open.counters().records, 1u);
  EXPECT_EQ(open.counters().send_errors, 0u);

  IpfixOptions unbound = options;
  unbound.interface.clear();
  InNetns(sensor_.name, [&] { exporter.emplace(IpfixExporter::Open(unbound)); });
  ASSERT_FALSE(exporter->ok()) << "without the interface there is no route to the collector";
  EXPECT_NE(exporter->error().message.find("ipfix: connect to 198.18.0.9:4739"), std::string::npos)
      << exporter->error().message;
}

// Whether `bytes` holds `pattern`.
bool Holds(const std::vector<std::uint8_t>& bytes, const std::vector<std::uint8_t>& pattern) {
  return std::search(bytes.begin(), bytes.end(), pattern.begin(), pattern.end()) != bytes.end();
}

// The instrument itself, started as sensord starts it in active mode: it
// finds its one interface, meters what arrives there, and exports the flow
// from `ipfix_source`; at SIGTERM its last line counts what it sent.
TEST_F(ActiveLink, FlowmeterExportsWhatItMetersOnItsActiveInterface) {
  TempDir dir;
  nlohmann::json document = {{"instrument", "flowmeter"},
                             {"network", "active"},
                             {"settings",
                              {{"ipfix", "198.18.0.9:4739"},
                               {"ipfix_source", "198.18.0.8"},
                               {"ipfix_domain_id", 3},
                               {"idle_timeout_seconds", 1}}}};
  auto settings = dir.path() / "instrument.json";
  std::ofstream(settings) << document.dump();
  int pipe[2];
  ASSERT_EQ(::pipe2(pipe, O_CLOEXEC), 0);
  UniqueFd output(pipe[0]);
  UniqueFd output_end(pipe[1]);
  auto pid = SpawnProcess({"ip", "netns", "exec", sensor_.name, "env",
                           "CUSTOS_SETTINGS=" + settings.string(), FLOWMETER_BINARY},
                          output_end.get(), output_end.get());
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  output_end.reset();
  // Killed if the test ends early; `reaped` once it has exited.
  struct Child {
    pid_t pid;
    bool reaped = false;
    ~Child() {
      if (reaped) return;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } child{*pid};
  std::string log;
  // Reads the flow meter's output until `until` appears or the output ends.
  auto read_log = [&](const std::string& until, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (until.empty() || log.find(until) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      pollfd entry{output.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&entry, 1, static_cast<int>(left)) <= 0) return false;
      char buffer[4096];
      auto n = ::read(output.get(), buffer, sizeof buffer);
      if (n <= 0) return until.empty();
      log.append(buffer, static_cast<std::size_t>(n));
    }
    return true;
  };
  ASSERT_TRUE(read_log("flowmeter: metering act0, exporting IPFIX\n", 10'000)) << log;

  // Three broadcasts from the collector's host: they need no ARP, and the
  // flow meter sees them arrive on act0.
  InNetns(far_.name, [&] {
    UniqueFd sender(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int on = 1;
    ::setsockopt(sender.get(), SOL_SOCKET, SO_BROADCAST, &on, sizeof on);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9999);
    ::inet_pton(AF_INET, "198.18.0.255", &to.sin_addr);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(
          ::sendto(sender.get(), "0123456789", 10, 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
          10)
          << std::strerror(errno);
    }
  });
  // The flow ends after 1 s idle and its batch goes out 1 s later.
  const std::vector<std::uint8_t> addresses{198, 18, 0, 9, 198, 18, 0, 255};
  std::vector<Datagram> received;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::none_of(received.begin(), received.end(),
                      [&](const Datagram& d) { return Holds(d.bytes, addresses); }) &&
         std::chrono::steady_clock::now() < deadline) {
    auto more = collector_->Receive(received.size() + 1, 500);
    received.insert(received.end(), more.begin(), more.end());
  }

  ASSERT_EQ(::kill(*pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(*pid, &status, 0), *pid);
  child.reaped = true;
  EXPECT_TRUE(read_log("", 2000)) << "the output did not end";
  EXPECT_EQ(ExitCodeFromStatus(status), 0) << log;
  auto more = collector_->Receive(0, 0);
  received.insert(received.end(), more.begin(), more.end());
  ASSERT_FALSE(received.empty()) << log;
  for (const auto& datagram : received) EXPECT_EQ(From(datagram), "198.18.0.8");
  EXPECT_NE(log.find(" records, 0 send errors\n"), std::string::npos) << log;

  auto pcap = dir.path() / "active.pcap";
  WritePcap(pcap, received);
  auto messages = Decode(pcap);
  ASSERT_EQ(messages.size(), received.size());
  EXPECT_EQ(messages[0].templates, 2) << "the first message is not the templates";
  int found = 0;
  for (const auto& message : messages) {
    EXPECT_EQ(Number(message.header, "cflow.od_id"), 3u);
    for (const auto& flow : message.flows) {
      if (flow.count("cflow.dstaddr") == 0 || flow.at("cflow.dstaddr") != "198.18.0.255") continue;
      ++found;
      EXPECT_EQ(Text(flow, "cflow.srcaddr"), "198.18.0.9");
      EXPECT_EQ(Number(flow, "cflow.dstport"), 9999u);
      EXPECT_EQ(Number(flow, "cflow.protocol"), 17u);
      EXPECT_EQ(Number(flow, "cflow.packets"), 3u);
      EXPECT_EQ(Number(flow, "cflow.layer2_octet_delta_count"), 3u * (14 + 20 + 8 + 10));
      EXPECT_EQ(Number(flow, "reverse.cflow.packets"), 0u);
      EXPECT_EQ(Number(flow, "cflow.flow_end_reason"), 1u) << "not an idle timeout";
    }
  }
  EXPECT_EQ(found, 1) << log;
  std::printf("the flow meter's output:\n%s", log.c_str());
}

}  // namespace
}  // namespace custos::flowmeter
