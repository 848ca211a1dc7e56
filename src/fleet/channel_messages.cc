#include "fleet/channel_messages.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "fleet/fleet_store.h"

namespace custos::fleet {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxTopicLength = 128;
constexpr std::size_t kMaxInstrumentLength = 64;
constexpr std::size_t kMaxErrorText = 64 * 1024;
constexpr std::uint64_t kMaxSeq = std::numeric_limits<std::int64_t>::max();

Error FieldError(std::string_view field, std::string_view why) {
  std::string message = "field \"";
  message += field;
  message += "\" ";
  message += why;
  return Error{message};
}

const json* Find(const json& object, const char* field) {
  auto found = object.find(field);
  return found == object.end() ? nullptr : &*found;
}

Result<std::uint64_t> Unsigned(const json& object, const char* field,
                               std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
  const json* value = Find(object, field);
  if (!value) return FieldError(field, "is missing");
  if (!value->is_number_unsigned()) return FieldError(field, "must be a non-negative integer");
  auto number = value->get<std::uint64_t>();
  if (number > max) return FieldError(field, "is out of range");
  return number;
}

Result<std::string> Text(const json& object, const char* field, std::size_t max_bytes,
                         bool allow_empty = true) {
  const json* value = Find(object, field);
  if (!value) return FieldError(field, "is missing");
  if (!value->is_string()) return FieldError(field, "must be a string");
  const auto& text = value->get_ref<const std::string&>();
  if (text.size() > max_bytes) return FieldError(field, "is too long");
  if (text.empty() && !allow_empty) return FieldError(field, "must not be empty");
  return text;
}

Result<bool> Boolean(const json& object, const char* field) {
  const json* value = Find(object, field);
  if (!value) return FieldError(field, "is missing");
  if (!value->is_boolean()) return FieldError(field, "must be true or false");
  return value->get<bool>();
}

Result<SensorMessage> ParseHello(const json& message) {
  HelloMessage hello;
  auto version = Unsigned(message, "version", 1000);
  if (!version.ok()) return version.error();
  hello.version = static_cast<int>(*version);
  auto sensor_id = Text(message, "sensor_id", 64, false);
  if (!sensor_id.ok()) return sensor_id.error();
  hello.sensor_id = std::move(*sensor_id);
  auto state_version = Unsigned(message, "state_version", kMaxSeq);
  if (!state_version.ok()) return state_version.error();
  hello.state_version = static_cast<std::int64_t>(*state_version);
  auto spool = Unsigned(message, "spool", kMaxSeq);
  if (!spool.ok()) return spool.error();
  hello.spool = *spool;
  return SensorMessage(std::move(hello));
}

Result<SensorMessage> ParseHeartbeat(const json& message) {
  const json* health = Find(message, "health");
  if (!health) return FieldError("health", "is missing");
  if (!health->is_object()) return FieldError("health", "must be an object");
  return SensorMessage(HeartbeatMessage{health->dump()});
}

Result<SensorMessage> ParseEvents(const json& message) {
  EventsMessage events;
  auto batch = Unsigned(message, "batch");
  if (!batch.ok()) return batch.error();
  events.batch = *batch;
  const json* list = Find(message, "events");
  if (!list) return FieldError("events", "is missing");
  if (!list->is_array()) return FieldError("events", "must be an array");
  if (list->empty() || list->size() > kMaxBatchEvents) {
    return FieldError("events", "must hold 1 to 500 events");
  }
  std::size_t bytes = 0;
  events.events.reserve(list->size());
  for (const json& item : *list) {
    std::string where = "events[" + std::to_string(events.events.size()) + "]";
    if (!item.is_object()) return FieldError(where, "must be an object");
    ChannelEvent event;
    auto seq = Unsigned(item, "seq", kMaxSeq);
    if (!seq.ok()) return Context(where, seq.error());
    if (*seq == 0) return Context(where, FieldError("seq", "must be at least 1"));
    if (!events.events.empty() && *seq <= events.events.back().seq) {
      return Context(where, FieldError("seq", "must be greater than the previous event's"));
    }
    event.seq = *seq;
    auto topic = Text(item, "topic", kMaxTopicLength, false);
    if (!topic.ok()) return Context(where, topic.error());
    event.topic = std::move(*topic);
    auto instrument = Text(item, "instrument", kMaxInstrumentLength);
    if (!instrument.ok()) return Context(where, instrument.error());
    event.instrument = std::move(*instrument);
    auto body = Text(item, "event", kMaxBatchEventBytes, false);
    if (!body.ok()) return Context(where, body.error());
    bytes += body->size();
    if (bytes > kMaxBatchEventBytes) return FieldError("events", "hold more than 1 MiB of events");
    event.event = std::move(*body);
    events.events.push_back(std::move(event));
  }
  return SensorMessage(std::move(events));
}

Result<SensorMessage> ParseStateResult(const json& message) {
  StateResultMessage result;
  auto stream = Unsigned(message, "stream");
  if (!stream.ok()) return stream.error();
  result.stream = *stream;
  auto version = Unsigned(message, "version", kMaxSeq);
  if (!version.ok()) return version.error();
  result.version = static_cast<std::int64_t>(*version);
  auto ok = Boolean(message, "ok");
  if (!ok.ok()) return ok.error();
  result.ok = *ok;
  // "error" may be absent or null when the state applied.
  const json* error = Find(message, "error");
  if (error && !error->is_null()) {
    auto text = Text(message, "error", kMaxErrorText);
    if (!text.ok()) return text.error();
    result.error = std::move(*text);
  }
  return SensorMessage(std::move(result));
}

Result<SensorMessage> ParseCommandResult(const json& message) {
  CommandResultMessage result;
  auto stream = Unsigned(message, "stream");
  if (!stream.ok()) return stream.error();
  result.stream = *stream;
  auto ok = Boolean(message, "ok");
  if (!ok.ok()) return ok.error();
  result.ok = *ok;
  const json* output = Find(message, "output");
  result.output_json = output ? output->dump() : "null";
  return SensorMessage(std::move(result));
}

std::string Dump(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

Result<SensorMessage> ParseSensorMessage(std::string_view text) {
  if (text.size() > kMaxChannelMessageBytes) return Error{"message is larger than 4 MiB"};
  // Bounded nesting first: the DOM parser below recurses.
  if (!IsBoundedJson(text)) return Error{"message is not JSON (or nests deeper than 64 levels)"};
  json message = json::parse(text, nullptr, false);
  if (message.is_discarded() || !message.is_object()) return Error{"message is not a JSON object"};
  const json* type = Find(message, "type");
  if (!type || !type->is_string()) return Error{"message has no \"type\" string"};
  const auto& name = type->get_ref<const std::string&>();
  if (name == "hello") return ParseHello(message);
  if (name == "heartbeat") return ParseHeartbeat(message);
  if (name == "events") return ParseEvents(message);
  if (name == "state_result") return ParseStateResult(message);
  if (name == "command_result") return ParseCommandResult(message);
  std::string unknown = "unknown message type \"";
  unknown += name.substr(0, 32);
  unknown += '"';
  return Error{unknown};
}

std::string WelcomeMessage(std::string_view sensor_id, int heartbeat_seconds) {
  return Dump({{"type", "welcome"},
               {"sensor_id", std::string(sensor_id)},
               {"heartbeat_seconds", heartbeat_seconds}});
}

std::string AckMessage(std::uint64_t batch, std::uint64_t up_to_seq) {
  return Dump({{"type", "ack"}, {"batch", batch}, {"up_to_seq", up_to_seq}});
}

std::string DesiredStateMessage(std::uint64_t stream, std::int64_t version,
                                std::string_view config) {
  return Dump({{"type", "desired_state"},
               {"stream", stream},
               {"version", version},
               {"config", std::string(config)}});
}

std::string CommandMessage(std::uint64_t stream, std::string_view command) {
  return Dump({{"type", "command"}, {"stream", stream}, {"command", std::string(command)}});
}

std::string ErrorMessage(std::string_view detail) {
  return Dump({{"type", "error"}, {"detail", std::string(detail)}});
}

}  // namespace custos::fleet
