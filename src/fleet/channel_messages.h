// The channel's messages (docs/fleet-protocol.md, "The channel"): parsing
// what a sensor sends, with every field's type and range checked, and
// building what the fleet sends back. A sensor may be compromised, so its
// messages are hostile input: sizes and nesting are bounded before anything
// is built from them. Fields this version does not know are ignored, so a
// newer sensor can add some. Pure functions, thread-safe, fuzzed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace custos::fleet {

inline constexpr int kChannelProtocolVersion = 1;
inline constexpr std::size_t kMaxBatchEvents = 500;
inline constexpr std::size_t kMaxBatchEventBytes = 1024 * 1024;
// A batch's events travel as JSON strings, so escaping can double them.
inline constexpr std::size_t kMaxChannelMessageBytes = 4 * kMaxBatchEventBytes;

struct HelloMessage {
  int version = 0;
  std::string sensor_id;
  std::int64_t state_version = 0;
  std::uint64_t spool = 0;  // first unacknowledged seq
};

struct HeartbeatMessage {
  std::string health_json;  // a JSON object
};

struct ChannelEvent {
  std::uint64_t seq = 0;
  std::string topic;
  std::string instrument;
  std::string event;  // the event JSON as text
};

struct EventsMessage {
  std::uint64_t batch = 0;
  std::vector<ChannelEvent> events;  // 1 .. kMaxBatchEvents, seq strictly increasing
};

struct StateResultMessage {
  std::uint64_t stream = 0;
  std::int64_t version = 0;
  bool ok = false;
  std::string error;
};

struct CommandResultMessage {
  std::uint64_t stream = 0;
  bool ok = false;
  std::string output_json;
};

using SensorMessage = std::variant<HelloMessage, HeartbeatMessage, EventsMessage,
                                   StateResultMessage, CommandResultMessage>;

// One WebSocket text frame from a sensor. The error names the field at fault.
Result<SensorMessage> ParseSensorMessage(std::string_view text);

std::string WelcomeMessage(std::string_view sensor_id, int heartbeat_seconds);
std::string AckMessage(std::uint64_t batch, std::uint64_t up_to_seq);
std::string DesiredStateMessage(std::uint64_t stream, std::int64_t version,
                                std::string_view config);
// {"type": "command", "stream", "command"}: the sensor answers with command_result.
std::string CommandMessage(std::uint64_t stream, std::string_view command);
std::string ErrorMessage(std::string_view detail);

}  // namespace custos::fleet
