#include "flow_eve.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstdio>

#include "custos/event.h"

namespace custos::flowmeter {
namespace {

std::string Protocol(std::uint8_t number) {
  switch (number) {
    case 6:
      return "TCP";
    case 17:
      return "UDP";
    case 1:
      return "ICMP";
    case 58:
      return "IPv6-ICMP";
    default:
      return std::to_string(number);
  }
}

std::string Hex(std::uint8_t flags) {
  char text[4];
  std::snprintf(text, sizeof text, "%02x", flags);
  return text;
}

const char* Reason(net::FlowEnd end) {
  switch (end) {
    case net::FlowEnd::kIdle:
      return "timeout";
    case net::FlowEnd::kActive:
      return "timeout";
    case net::FlowEnd::kTcpClosed:
      return "closed";
    case net::FlowEnd::kEvicted:
      return "forced";
    case net::FlowEnd::kFlushed:
      return "shutdown";
  }
  return "unknown";
}

std::chrono::system_clock::time_point At(std::uint64_t micros) {
  return std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
}

}  // namespace

std::string FormatIp(const net::IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(address.version == 6 ? AF_INET6 : AF_INET, address.bytes.data(), text, sizeof text);
  return text;
}

nlohmann::json FlowToEve(const net::FlowRecord& flow) {
  auto event = MakeEvent("flow", At(flow.first_us));
  SetFlow(event, FormatIp(flow.src), flow.src_port, FormatIp(flow.dst), flow.dst_port,
          Protocol(flow.protocol));
  if (flow.vlan != 0) event["vlan"] = {flow.vlan};
  event["flow"] = {{"pkts_toserver", flow.to_dst.packets},
                   {"pkts_toclient", flow.to_src.packets},
                   {"bytes_toserver", flow.to_dst.bytes},
                   {"bytes_toclient", flow.to_src.bytes},
                   {"start", EveTimestamp(At(flow.first_us))},
                   {"end", EveTimestamp(At(flow.last_us))},
                   {"age", (flow.last_us - flow.first_us) / 1'000'000},
                   {"reason", Reason(flow.end)}};
  if (flow.protocol == 6) {
    event["tcp"] = {{"tcp_flags", Hex(flow.to_dst.tcp_flags | flow.to_src.tcp_flags)},
                    {"tcp_flags_ts", Hex(flow.to_dst.tcp_flags)},
                    {"tcp_flags_tc", Hex(flow.to_src.tcp_flags)}};
  }
  return event;
}

}  // namespace custos::flowmeter
