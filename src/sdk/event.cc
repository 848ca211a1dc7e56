#include "custos/event.h"

#include <ctime>

namespace custos {

std::string EveTimestamp(std::chrono::system_clock::time_point when) {
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[48];
  std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + length, sizeof text - length, ".%06lld+0000",
                static_cast<long long>(micros % 1'000'000));
  return text;
}

nlohmann::json MakeEvent(const std::string& event_type,
                         std::chrono::system_clock::time_point when) {
  return {{"timestamp", EveTimestamp(when)},
          {"event_type", event_type},
          {event_type, nlohmann::json::object()}};
}

void SetFlow(nlohmann::json& event, const std::string& src_ip, std::uint16_t src_port,
             const std::string& dest_ip, std::uint16_t dest_port, const std::string& proto) {
  event["src_ip"] = src_ip;
  event["src_port"] = src_port;
  event["dest_ip"] = dest_ip;
  event["dest_port"] = dest_port;
  event["proto"] = proto;
}

}  // namespace custos
