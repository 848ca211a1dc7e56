// Instrument SDK: events in the style of Suricata's EVE JSON, so existing
// tooling reads them: "timestamp", "event_type", the flow five-tuple where
// one applies, then an object named after the event type.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace custos {

// {"timestamp": "2026-11-23T15:04:05.123456+0000", "event_type": type, type: {}}
nlohmann::json MakeEvent(const std::string& event_type, std::chrono::system_clock::time_point when =
                                                            std::chrono::system_clock::now());

// Adds src_ip, src_port, dest_ip, dest_port and proto (e.g. "TCP").
void SetFlow(nlohmann::json& event, const std::string& src_ip, std::uint16_t src_port,
             const std::string& dest_ip, std::uint16_t dest_port, const std::string& proto);

// The timestamp format EVE uses, in UTC.
std::string EveTimestamp(std::chrono::system_clock::time_point when);

}  // namespace custos
