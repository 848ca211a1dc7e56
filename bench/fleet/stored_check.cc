// Reads back what the fleet stored: the events table of fleet.db, and one
// sensor's events page by page through the admin API.
#include "bench/fleet/stored_check.h"

#include <sqlite3.h>

#include <map>
#include <string>

namespace custos::fleetbench {

Status CheckStoredRows(const fs::path& database,
                       const std::vector<std::unique_ptr<Sensor>>& sensors,
                       std::uint64_t& stored_total) {
  sqlite3* raw = nullptr;
  int opened = sqlite3_open_v2(database.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  if (opened != SQLITE_OK) return Error{"cannot open " + database.string()};
  sqlite3_busy_timeout(db.get(), 10000);
  sqlite3_stmt* raw_statement = nullptr;
  const char* sql =
      "SELECT sensor_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events "
      "GROUP BY sensor_id";
  if (sqlite3_prepare_v2(db.get(), sql, -1, &raw_statement, nullptr) != SQLITE_OK) {
    return Error{std::string("cannot query the events: ") + sqlite3_errmsg(db.get())};
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw_statement, sqlite3_finalize);
  struct Rows {
    std::uint64_t count, distinct, min, max;
  };
  std::map<std::string, Rows> stored;
  int step;
  while ((step = sqlite3_step(statement.get())) == SQLITE_ROW) {
    auto column = [&](int i) {
      return static_cast<std::uint64_t>(sqlite3_column_int64(statement.get(), i));
    };
    stored[reinterpret_cast<const char*>(sqlite3_column_text(statement.get(), 0))] =
        Rows{column(1), column(2), column(3), column(4)};
  }
  if (step != SQLITE_DONE)
    return Error{std::string("reading the events: ") + sqlite3_errmsg(db.get())};
  stored_total = 0;
  std::vector<std::string> wrong;
  for (auto& [id, rows] : stored) stored_total += rows.count;
  for (const auto& sensor : sensors) {
    Rows rows{0, 0, 0, 0};
    if (auto found = stored.find(sensor->id); found != stored.end()) {
      rows = found->second;
      stored.erase(found);
    }
    bool exact = rows.count == sensor->acknowledged() && rows.distinct == rows.count &&
                 (rows.count == 0 || (rows.min == sensor->first_seq && rows.max == sensor->acked));
    if (!exact && wrong.size() < 5) {
      wrong.push_back(sensor->id + ": acknowledged seqs " + std::to_string(sensor->first_seq) +
                      ".." + std::to_string(sensor->acked) + ", stored " +
                      std::to_string(rows.count) + " rows (" + std::to_string(rows.distinct) +
                      " distinct seqs, " + std::to_string(rows.min) + ".." +
                      std::to_string(rows.max) + ")");
    } else if (!exact) {
      wrong.push_back("");
    }
  }
  for (auto& [id, rows] : stored) {
    wrong.push_back(id + ": " + std::to_string(rows.count) +
                    " rows of a sensor the bench did not run");
  }
  if (wrong.empty()) return {};
  std::string text = std::to_string(wrong.size()) + " sensors' stored events differ:";
  for (const auto& line : wrong) {
    if (!line.empty()) text += "\n  " + line;
  }
  return Error{text};
}

Status CheckEventsApi(Admin& admin, const Sensor& sensor) {
  std::uint64_t expected = sensor.first_seq;
  std::string after;
  for (;;) {
    std::string target = "/v1/events?sensor=" + sensor.id + "&limit=1000" + after;
    auto reply = admin.CallAndWait(http::verb::get, target);
    if (!reply.ok()) return Context("GET " + target, reply.error());
    if (reply->status != 200) return Error{"GET " + target + ": " + ProblemText(*reply)};
    json page = json::parse(reply->body, nullptr, false);
    if (!page.is_object() || !page.contains("events") || !page["events"].is_array()) {
      return Error{"GET " + target + ": no events array"};
    }
    for (const json& event : page["events"]) {
      auto seq = UnsignedField(event, "seq");
      bool body_matches = event.is_object() && event.contains("event") &&
                          UnsignedField(event["event"], "seq") == seq;
      if (seq != expected || !body_matches) {
        return Error{"GET /v1/events for " + sensor.id + ": expected seq " +
                     std::to_string(expected) + ", got " + event.dump().substr(0, 300)};
      }
      ++expected;
    }
    if (!page.contains("next_after") || !page["next_after"].is_number()) break;
    after = "&after=" + std::to_string(page["next_after"].get<std::int64_t>());
  }
  if (expected - 1 != sensor.acked) {
    return Error{"GET /v1/events for " + sensor.id + " lists " +
                 std::to_string(expected - sensor.first_seq) + " events; the fleet acknowledged " +
                 std::to_string(sensor.acknowledged())};
  }
  return {};
}

}  // namespace custos::fleetbench
