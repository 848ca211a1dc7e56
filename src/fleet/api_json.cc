#include "fleet/api_json.h"

#include <cstdio>

namespace custos::fleet {
namespace {

using nlohmann::json;

json OptionalTime(const std::optional<TimePoint>& time) {
  return time ? json(FormatApiTime(*time)) : json(nullptr);
}

// Stored JSON text back as a value; text that does not parse (it always
// should) is shown as a string rather than failing the whole reply.
json Embedded(const std::string& text) {
  if (text.empty()) return json(nullptr);
  json value = json::parse(text, nullptr, false);
  return value.is_discarded() ? json(text) : value;
}

}  // namespace

std::string FormatApiTime(TimePoint time) {
  using namespace std::chrono;
  auto micros = time_point_cast<microseconds>(time);
  auto days = floor<std::chrono::days>(micros);
  year_month_day date{days};
  hh_mm_ss clock{micros - days};
  char text[40];
  std::snprintf(
      text, sizeof text, "%04d-%02u-%02uT%02ld:%02ld:%02ld.%06ldZ", static_cast<int>(date.year()),
      static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
      static_cast<long>(clock.hours().count()), static_cast<long>(clock.minutes().count()),
      static_cast<long>(clock.seconds().count()), static_cast<long>(clock.subseconds().count()));
  return text;
}

json SensorJson(const SensorRecord& sensor, const std::optional<LiveSensor>& live,
                const DesiredState* desired_state, bool with_health) {
  std::optional<TimePoint> last_seen = sensor.last_seen;
  std::string health = sensor.health;
  if (live && live->last_heartbeat && (!last_seen || *live->last_heartbeat > *last_seen)) {
    last_seen = live->last_heartbeat;
    health = live->health;
  }
  json out = {{"id", sensor.id},
              {"name", sensor.name},
              {"tenant", sensor.tenant},
              {"certificate_serial", sensor.certificate_serial},
              {"fingerprint", sensor.fingerprint},
              {"enrolled_at", FormatApiTime(sensor.enrolled_at)},
              {"revoked", sensor.revoked_at.has_value()},
              {"revoked_at", OptionalTime(sensor.revoked_at)},
              {"last_seen", OptionalTime(last_seen)},
              {"connected", live.has_value()}};
  if (live) {
    out["connection"] = {{"remote", live->remote},
                         {"connected_at", FormatApiTime(live->connected_at)}};
  }
  if (with_health) out["health"] = Embedded(health);
  if (desired_state) {
    out["desired_state"] = {{"version", desired_state->version},
                            {"updated_at", OptionalTime(desired_state->updated_at)},
                            {"applied_version", desired_state->applied_version},
                            {"applied_at", OptionalTime(desired_state->applied_at)},
                            {"applied_result", Embedded(desired_state->applied_result)}};
  }
  return out;
}

json TokenJson(const EnrollmentTokenInfo& token, TimePoint now) {
  std::string state = token.used_at ? "used" : token.expires_at <= now ? "expired" : "unused";
  return {{"id", token.token_sha256.substr(0, 16)},
          {"tenant", token.tenant},
          {"created_at", FormatApiTime(token.created_at)},
          {"expires_at", FormatApiTime(token.expires_at)},
          {"state", state},
          {"used_at", OptionalTime(token.used_at)},
          {"used_by", token.used_by.empty() ? json(nullptr) : json(token.used_by)}};
}

json EventJson(const StoredEvent& event) {
  return {{"id", event.id},
          {"sensor_id", event.sensor_id},
          {"seq", event.seq},
          {"received_at", FormatApiTime(event.received_at)},
          {"time", FormatApiTime(event.event_time)},
          {"event_type", event.event_type},
          {"event", Embedded(event.body)}};
}

}  // namespace custos::fleet
