#include "sensor/uplink_messages.h"

#include <sys/statvfs.h>

#include <cstdlib>

namespace custos::sensor {

namespace {

using nlohmann::json;

// Sums one counter over every instrument's bus statistics.
json BusTotals(const json& instruments) {
  json totals = json::object();
  for (const auto& instrument : instruments) {
    if (!instrument.is_object() || !instrument.contains("bus")) continue;
    for (const auto& [key, value] : instrument["bus"].items()) {
      if (!value.is_number_unsigned()) continue;
      totals[key] = totals.value(key, std::uint64_t{0}) + value.get<std::uint64_t>();
    }
  }
  return totals;
}

}  // namespace

std::string EncodeSpoolRecord(std::string_view topic, std::string_view instrument,
                              std::string_view payload) {
  json record = {{"topic", topic}, {"instrument", instrument}, {"event", payload}};
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string EncodeEventsMessage(std::uint64_t batch, const std::vector<SpooledEvent>& events) {
  std::string message = R"({"type":"events","batch":)";
  message += std::to_string(batch);
  message += R"(,"events":[)";
  for (std::size_t i = 0; i < events.size(); ++i) {
    const std::string& record = events[i].bytes;
    if (i > 0) message += ',';
    message += R"({"seq":)";
    message += std::to_string(events[i].seq);
    // Records are JSON objects we wrote; one that is not (cannot happen
    // short of a bug: the spool checks CRCs) is sent empty, not spliced.
    if (record.size() > 2 && record.front() == '{' && record.back() == '}') {
      message += ',';
      message.append(record, 1, std::string::npos);
    } else {
      message += '}';
    }
  }
  message += "]}";
  return message;
}

json SpoolJson(const SpoolStats& stats, std::uint64_t feed_dropped) {
  return {{"pending", stats.pending_events},
          {"pending_bytes", stats.pending_bytes},
          {"dropped_full", stats.dropped_full},
          {"dropped_queue", feed_dropped},
          {"rejected_too_large", stats.rejected_too_large},
          {"truncated_on_recovery", stats.truncated_on_recovery},
          {"appended", stats.appended},
          {"acknowledged", stats.acknowledged},
          {"next_seq", stats.next_seq},
          {"accepted_seq", stats.accepted_seq},
          {"acked_seq", stats.acked_seq}};
}

json BuildHealth(const HealthInputs& inputs) {
  const json& local = inputs.local_status;
  json instruments = json::array();
  json events = json::object();
  bool locked = false;
  if (local.is_object()) {
    if (local.contains("instruments") && local["instruments"].is_array()) {
      instruments = local["instruments"];
    }
    if (local.contains("events") && local["events"].is_object()) events = local["events"];
    if (local.contains("locked") && local["locked"].is_boolean()) locked = local["locked"];
  }
  json disk = json::object();
  struct statvfs fs {};
  if (!inputs.data_root.empty() && ::statvfs(inputs.data_root.c_str(), &fs) == 0) {
    disk["data_root_free_bytes"] = std::uint64_t{fs.f_bavail} * fs.f_frsize;
    disk["data_root_total_bytes"] = std::uint64_t{fs.f_blocks} * fs.f_frsize;
  }
  disk["spool_bytes"] = inputs.spool.pending_bytes;
  double load[3] = {0, 0, 0};
  json load_json = json::array();
  if (::getloadavg(load, 3) == 3) load_json = {load[0], load[1], load[2]};
  return {
      {"instruments", instruments},
      {"counters",
       {{"events", events}, {"bus", BusTotals(instruments)}, {"uplink", inputs.uplink_counters}}},
      {"disk", disk},
      {"load", load_json},
      {"spool", SpoolJson(inputs.spool, inputs.feed_dropped)},
      {"locked", locked}};
}

}  // namespace custos::sensor
