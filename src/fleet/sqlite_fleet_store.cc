// The SQLite backend of FleetStore: one database file in WAL mode.
//
// synchronous=FULL, not NORMAL: in WAL mode NORMAL skips the fsync of the
// WAL at commit, so a power cut can roll back transactions that already
// returned. StoreEvents returning means the sensor may delete those events;
// only FULL makes "acknowledged after commit" survive a power cut. Its cost
// is one fsync per transaction, and StoreEvents takes a batch per
// transaction. A SIGKILL of fleetd loses nothing in either mode.
#include <algorithm>
#include <map>
#include <mutex>

#include "fleet/fleet_store.h"
#include "fleet/sqlite_db.h"

namespace custos::fleet {
namespace {

using sqlite::Cursor;
using sqlite::Database;
using sqlite::Statement;
using sqlite::Value;
using sqlite::WriteTransaction;

// PRAGMA application_id: marks the file as ours ("CSTF").
constexpr std::int64_t kApplicationId = 0x43535446;
constexpr std::int64_t kMaxSeq = INT64_MAX;

// Schema migrations; entry i brings the schema from version i to i + 1.
// Times are INTEGER microseconds since the Unix epoch, UTC.
const std::vector<std::string> kMigrations = {
    R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (0);
CREATE TABLE sensors (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  certificate_serial TEXT NOT NULL UNIQUE,
  fingerprint TEXT NOT NULL,
  enrolled_at INTEGER NOT NULL,
  revoked_at INTEGER,
  last_seen INTEGER,
  health TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX sensors_by_tenant ON sensors(tenant);
CREATE TABLE enrollment_tokens (
  token_sha256 TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  used_by TEXT
);
CREATE TABLE revoked_serials (
  serial TEXT PRIMARY KEY,
  sensor_id TEXT NOT NULL,
  revoked_at INTEGER NOT NULL
);
CREATE TABLE desired_state (
  sensor_id TEXT PRIMARY KEY REFERENCES sensors(id),
  version INTEGER NOT NULL,
  document TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  applied_version INTEGER NOT NULL DEFAULT 0,
  applied_result TEXT NOT NULL DEFAULT '',
  applied_at INTEGER
);
-- AUTOINCREMENT: ids never go back, so an API client's after_id cursor
-- stays valid after the newest events are deleted.
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sensor_id TEXT NOT NULL REFERENCES sensors(id),
  seq INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  event_time INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (sensor_id, seq)
);
CREATE INDEX events_by_time ON events(event_time);
CREATE INDEX events_by_type ON events(event_type, event_time);
)sql",
    R"sql(
ALTER TABLE sensors ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE sensors ADD COLUMN wrapped_data_key TEXT;
)sql",
    R"sql(
ALTER TABLE sensors ADD COLUMN data_key_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sensors ADD COLUMN pending_data_key TEXT;
ALTER TABLE sensors ADD COLUMN pending_data_key_version INTEGER;
)sql",
};

std::int64_t Micros(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

TimePoint FromMicros(std::int64_t micros) {
  return TimePoint(
      std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds(micros)));
}

std::optional<TimePoint> OptionalTime(const Cursor& row, int column) {
  if (row.IsNull(column)) return std::nullopt;
  return FromMicros(row.Int(column));
}

// Prefixes an error with the operation and its subject: "RevokeSensor(s1): ...".
Error Failed(std::string_view operation, std::string_view subject, const Error& error) {
  std::string where(operation);
  where += '(';
  where += subject;
  where += ')';
  return Context(where, error);
}

constexpr char kSensorColumns[] =
    "id, tenant, certificate_serial, fingerprint, enrolled_at, revoked_at, last_seen, health, name";

SensorRecord ReadSensor(const Cursor& row) {
  SensorRecord sensor;
  sensor.id = row.Text(0);
  sensor.tenant = row.Text(1);
  sensor.certificate_serial = row.Text(2);
  sensor.fingerprint = row.Text(3);
  sensor.enrolled_at = FromMicros(row.Int(4));
  sensor.revoked_at = OptionalTime(row, 5);
  sensor.last_seen = OptionalTime(row, 6);
  sensor.health = row.Text(7);
  sensor.name = row.Text(8);
  return sensor;
}

class SqliteFleetStore final : public FleetStore {
 public:
  SqliteFleetStore(Database db, Clock clock) : db_(std::move(db)), clock_(std::move(clock)) {}

  Status Prepare();

  Status AddEnrollmentToken(std::string_view token, std::string_view tenant,
                            TimePoint expires_at) override;
  Result<SensorRecord> EnrollSensor(std::string_view token, const NewSensor& sensor) override;
  Result<std::optional<std::string>> EnrollmentTokenTenant(std::string_view token) override;
  Result<std::vector<EnrollmentTokenInfo>> ListEnrollmentTokens() override;
  Result<std::optional<SensorRecord>> GetSensor(std::string_view id) override;
  Result<std::vector<SensorRecord>> ListSensors(std::string_view tenant) override;
  Status RecordHeartbeat(std::string_view id, std::string_view health_json) override;
  Status RevokeSensor(std::string_view id) override;
  Result<std::vector<RevokedSerial>> RevokedSerials() override;
  Result<std::optional<std::string>> WrappedDataKey(std::string_view id) override;
  Result<std::optional<DataKeyVersions>> DataKeyVersionsOf(std::string_view id) override;
  Result<std::int64_t> SetPendingDataKey(std::string_view id, std::string_view wrapped) override;
  Result<bool> PromotePendingDataKey(std::string_view id, std::int64_t version) override;
  Result<std::int64_t> SetDesiredState(std::string_view id, std::string_view document) override;
  Result<DesiredState> GetDesiredState(std::string_view id) override;
  Status RecordAppliedState(std::string_view id, std::int64_t version,
                            std::string_view result_json) override;
  Result<StoreEventsResult> StoreEvents(std::string_view sensor_id,
                                        const std::vector<IncomingEvent>& batch) override;
  Result<std::vector<Result<StoreEventsResult>>> StoreEventBatches(
      const std::vector<SensorBatch>& batches) override;
  Result<std::uint64_t> HighestEventSeq(std::string_view sensor_id) override;
  Result<EventPage> QueryEvents(const EventQuery& query) override;

 private:
  // Whether the sensor exists, and if so whether it is revoked.
  Result<std::optional<bool>> SensorRevoked(std::string_view id);
  Result<std::optional<SensorRecord>> GetSensorLocked(std::string_view id);
  Result<Statement*> QueryStatement(const std::string& sql);

  std::mutex mutex_;
  Database db_;  // declared before the statements, so it outlives them
  Clock clock_;
  Statement insert_token_, consume_token_, insert_sensor_, select_sensor_, list_sensors_,
      list_all_sensors_, sensor_revoked_, heartbeat_, revoke_sensor_, insert_revoked_,
      select_revoked_, upsert_desired_, select_desired_, record_applied_, insert_event_,
      touch_sensor_, highest_seq_, token_tenant_, list_tokens_, data_key_, key_versions_,
      set_pending_key_, promote_key_;
  std::map<std::string, Statement> queries_;  // QueryEvents, by filter shape
};

Status SqliteFleetStore::Prepare() {
  std::string select_sensor = "SELECT ";
  select_sensor += kSensorColumns;
  select_sensor += " FROM sensors";
  const std::pair<Statement*, std::string> statements[] = {
      {&insert_token_,
       "INSERT INTO enrollment_tokens (token_sha256, tenant, created_at, expires_at) "
       "VALUES (?1, ?2, ?3, ?4)"},
      // The conditions in the UPDATE make the check and the use one step.
      {&consume_token_,
       "UPDATE enrollment_tokens SET used_at = ?2, used_by = ?3 "
       "WHERE token_sha256 = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING tenant"},
      {&insert_sensor_,
       "INSERT INTO sensors (id, tenant, certificate_serial, fingerprint, enrolled_at, name, "
       "wrapped_data_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&token_tenant_,
       "SELECT tenant FROM enrollment_tokens "
       "WHERE token_sha256 = ?1 AND used_at IS NULL AND expires_at > ?2"},
      {&list_tokens_,
       "SELECT token_sha256, tenant, created_at, expires_at, used_at, used_by "
       "FROM enrollment_tokens ORDER BY created_at, token_sha256"},
      {&data_key_, "SELECT wrapped_data_key FROM sensors WHERE id = ?1 AND revoked_at IS NULL"},
      {&key_versions_,
       "SELECT data_key_version, pending_data_key, pending_data_key_version FROM sensors "
       "WHERE id = ?1 AND revoked_at IS NULL"},
      {&set_pending_key_,
       "UPDATE sensors SET pending_data_key = ?2, pending_data_key_version = data_key_version + 1 "
       "WHERE id = ?1 AND revoked_at IS NULL RETURNING pending_data_key_version"},
      {&promote_key_,
       "UPDATE sensors SET wrapped_data_key = pending_data_key, data_key_version = ?2, "
       "pending_data_key = NULL, pending_data_key_version = NULL "
       "WHERE id = ?1 AND revoked_at IS NULL AND pending_data_key_version = ?2 RETURNING id"},
      {&select_sensor_, select_sensor + " WHERE id = ?1"},
      {&list_sensors_, select_sensor + " WHERE tenant = ?1 ORDER BY id"},
      {&list_all_sensors_, select_sensor + " ORDER BY id"},
      {&sensor_revoked_, "SELECT revoked_at IS NOT NULL FROM sensors WHERE id = ?1"},
      {&heartbeat_, "UPDATE sensors SET last_seen = ?2, health = ?3 WHERE id = ?1"},
      {&revoke_sensor_,
       "UPDATE sensors SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL "
       "RETURNING certificate_serial"},
      {&insert_revoked_,
       "INSERT OR IGNORE INTO revoked_serials (serial, sensor_id, revoked_at) VALUES (?1, ?2, ?3)"},
      {&select_revoked_,
       "SELECT serial, sensor_id, revoked_at FROM revoked_serials ORDER BY revoked_at, serial"},
      {&upsert_desired_,
       "INSERT INTO desired_state (sensor_id, version, document, updated_at) "
       "VALUES (?1, 1, ?2, ?3) ON CONFLICT (sensor_id) DO UPDATE SET "
       "version = version + 1, document = excluded.document, updated_at = excluded.updated_at "
       "RETURNING version"},
      {&select_desired_,
       "SELECT version, document, updated_at, applied_version, applied_result, applied_at "
       "FROM desired_state WHERE sensor_id = ?1"},
      {&record_applied_,
       "UPDATE desired_state SET applied_version = ?2, applied_result = ?3, applied_at = ?4 "
       "WHERE sensor_id = ?1 AND version >= ?2"},
      {&insert_event_,
       "INSERT OR IGNORE INTO events (sensor_id, seq, received_at, event_time, event_type, body) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&touch_sensor_,
       "UPDATE sensors SET last_seen = max(coalesce(last_seen, 0), ?2) WHERE id = ?1"},
      {&highest_seq_, "SELECT coalesce(max(seq), 0) FROM events WHERE sensor_id = ?1"},
  };
  for (const auto& [statement, sql] : statements) {
    auto prepared = db_.Prepare(sql);
    if (!prepared) return Context("prepare \"" + sql.substr(0, 40) + "...\"", prepared.error());
    *statement = std::move(*prepared);
  }
  return {};
}

Status SqliteFleetStore::AddEnrollmentToken(std::string_view token, std::string_view tenant,
                                            TimePoint expires_at) {
  std::lock_guard lock(mutex_);
  if (token.empty() || tenant.empty()) {
    return Error{"AddEnrollmentToken: token and tenant must not be empty"};
  }
  std::string hash = Sha256Hex(token);
  auto added = insert_token_.Bind({hash, tenant, Micros(clock_()), Micros(expires_at)}).Run();
  if (!added) return Failed("AddEnrollmentToken", tenant, added.error());
  return {};
}

Result<SensorRecord> SqliteFleetStore::EnrollSensor(std::string_view token,
                                                    const NewSensor& sensor) {
  std::lock_guard lock(mutex_);
  auto fail = [&](const Error& error) { return Failed("EnrollSensor", sensor.id, error); };
  if (sensor.id.empty() || sensor.certificate_serial.empty() || sensor.fingerprint.empty()) {
    return fail(Error{"id, certificate serial and fingerprint are required"});
  }
  auto transaction = WriteTransaction::Begin(db_);
  if (!transaction) return fail(transaction.error());
  std::int64_t now = Micros(clock_());
  auto existing = SensorRevoked(sensor.id);
  if (!existing) return fail(existing.error());
  if (existing->has_value()) return fail(Error{"a sensor with this id is already enrolled"});
  std::string tenant;
  {
    auto consumed = consume_token_.Bind({Sha256Hex(token), now, sensor.id});
    auto row = consumed.Next();
    if (!row) return fail(row.error());
    // One message for unknown, used and expired tokens: the caller is
    // unauthenticated, so it learns nothing about which tokens exist.
    if (!*row) return fail(Error{"enrollment token is unknown, used or expired"});
    tenant = consumed.Text(0);
    if (auto done = consumed.Run(); !done) return fail(done.error());
  }
  auto inserted =
      insert_sensor_
          .Bind({sensor.id, tenant, sensor.certificate_serial, sensor.fingerprint, now, sensor.name,
                 sensor.wrapped_data_key.empty()
                     ? Value(nullptr)
                     : Value(std::string_view(sensor.wrapped_data_key))})
          .Run();
  if (!inserted) return fail(inserted.error());
  if (auto committed = transaction->Commit(); !committed) return fail(committed.error());
  SensorRecord record;
  record.id = sensor.id;
  record.tenant = tenant;
  record.certificate_serial = sensor.certificate_serial;
  record.fingerprint = sensor.fingerprint;
  record.enrolled_at = FromMicros(now);
  record.name = sensor.name;
  return record;
}

Result<std::optional<std::string>> SqliteFleetStore::EnrollmentTokenTenant(std::string_view token) {
  std::lock_guard lock(mutex_);
  auto rows = token_tenant_.Bind({Sha256Hex(token), Micros(clock_())});
  auto row = rows.Next();
  if (!row) return Failed("EnrollmentTokenTenant", "", row.error());
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(rows.Text(0));
}

Result<std::vector<EnrollmentTokenInfo>> SqliteFleetStore::ListEnrollmentTokens() {
  std::lock_guard lock(mutex_);
  auto rows = list_tokens_.Bind({});
  std::vector<EnrollmentTokenInfo> tokens;
  for (;;) {
    auto row = rows.Next();
    if (!row) return Failed("ListEnrollmentTokens", "", row.error());
    if (!*row) return tokens;
    EnrollmentTokenInfo token;
    token.token_sha256 = rows.Text(0);
    token.tenant = rows.Text(1);
    token.created_at = FromMicros(rows.Int(2));
    token.expires_at = FromMicros(rows.Int(3));
    token.used_at = OptionalTime(rows, 4);
    token.used_by = rows.IsNull(5) ? "" : rows.Text(5);
    tokens.push_back(std::move(token));
  }
}

Result<std::optional<SensorRecord>> SqliteFleetStore::GetSensorLocked(std::string_view id) {
  auto rows = select_sensor_.Bind({id});
  auto row = rows.Next();
  if (!row) return row.error();
  if (!*row) return std::optional<SensorRecord>();
  return std::optional<SensorRecord>(ReadSensor(rows));
}

Result<std::optional<SensorRecord>> SqliteFleetStore::GetSensor(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto sensor = GetSensorLocked(id);
  if (!sensor) return Failed("GetSensor", id, sensor.error());
  return sensor;
}

Result<std::vector<SensorRecord>> SqliteFleetStore::ListSensors(std::string_view tenant) {
  std::lock_guard lock(mutex_);
  auto rows = tenant.empty() ? list_all_sensors_.Bind({}) : list_sensors_.Bind({tenant});
  std::vector<SensorRecord> sensors;
  for (;;) {
    auto row = rows.Next();
    if (!row) return Failed("ListSensors", tenant, row.error());
    if (!*row) return sensors;
    sensors.push_back(ReadSensor(rows));
  }
}

Result<std::optional<bool>> SqliteFleetStore::SensorRevoked(std::string_view id) {
  auto rows = sensor_revoked_.Bind({id});
  auto row = rows.Next();
  if (!row) return row.error();
  if (!*row) return std::optional<bool>();
  return std::optional<bool>(rows.Int(0) != 0);
}

Status SqliteFleetStore::RecordHeartbeat(std::string_view id, std::string_view health_json) {
  std::lock_guard lock(mutex_);
  if (!IsBoundedJson(health_json)) {
    return Failed("RecordHeartbeat", id, Error{"health is not a JSON document"});
  }
  auto updated = heartbeat_.Bind({id, Micros(clock_()), health_json}).Run();
  if (!updated) return Failed("RecordHeartbeat", id, updated.error());
  if (db_.Changes() == 0) return Failed("RecordHeartbeat", id, Error{"unknown sensor"});
  return {};
}

Status SqliteFleetStore::RevokeSensor(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto fail = [&](const Error& error) { return Failed("RevokeSensor", id, error); };
  auto transaction = WriteTransaction::Begin(db_);
  if (!transaction) return fail(transaction.error());
  std::int64_t now = Micros(clock_());
  std::string serial;
  {
    auto revoked = revoke_sensor_.Bind({id, now});
    auto row = revoked.Next();
    if (!row) return fail(row.error());
    if (!*row) {
      auto state = SensorRevoked(id);
      if (!state) return fail(state.error());
      if (!state->has_value()) return fail(Error{"unknown sensor"});
      return {};  // already revoked
    }
    serial = revoked.Text(0);
    if (auto done = revoked.Run(); !done) return fail(done.error());
  }
  if (auto listed = insert_revoked_.Bind({serial, id, now}).Run(); !listed) {
    return fail(listed.error());
  }
  if (auto committed = transaction->Commit(); !committed) return fail(committed.error());
  return {};
}

Result<std::vector<RevokedSerial>> SqliteFleetStore::RevokedSerials() {
  std::lock_guard lock(mutex_);
  auto rows = select_revoked_.Bind({});
  std::vector<RevokedSerial> serials;
  for (;;) {
    auto row = rows.Next();
    if (!row) return Failed("RevokedSerials", "", row.error());
    if (!*row) return serials;
    serials.push_back({rows.Text(0), rows.Text(1), FromMicros(rows.Int(2))});
  }
}

Result<std::optional<std::string>> SqliteFleetStore::WrappedDataKey(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto rows = data_key_.Bind({id});
  auto row = rows.Next();
  if (!row) return Failed("WrappedDataKey", id, row.error());
  if (!*row || rows.IsNull(0)) return std::optional<std::string>();
  return std::optional<std::string>(rows.Text(0));
}

Result<std::optional<DataKeyVersions>> SqliteFleetStore::DataKeyVersionsOf(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto rows = key_versions_.Bind({id});
  auto row = rows.Next();
  if (!row) return Failed("DataKeyVersionsOf", id, row.error());
  if (!*row) return std::optional<DataKeyVersions>();
  DataKeyVersions versions;
  versions.version = rows.Int(0);
  if (!rows.IsNull(1)) {
    versions.pending_wrapped = rows.Text(1);
    versions.pending_version = rows.Int(2);
  }
  return std::optional<DataKeyVersions>(versions);
}

Result<std::int64_t> SqliteFleetStore::SetPendingDataKey(std::string_view id,
                                                         std::string_view wrapped) {
  std::lock_guard lock(mutex_);
  auto rows = set_pending_key_.Bind({id, wrapped});
  auto row = rows.Next();
  if (!row) return Failed("SetPendingDataKey", id, row.error());
  if (!*row) return Failed("SetPendingDataKey", id, Error{"unknown or revoked sensor"});
  std::int64_t version = rows.Int(0);
  while (true) {
    auto more = rows.Next();
    if (!more) return Failed("SetPendingDataKey", id, more.error());
    if (!*more) break;
  }
  return version;
}

Result<bool> SqliteFleetStore::PromotePendingDataKey(std::string_view id, std::int64_t version) {
  std::lock_guard lock(mutex_);
  auto rows = promote_key_.Bind({id, version});
  auto row = rows.Next();
  if (!row) return Failed("PromotePendingDataKey", id, row.error());
  bool promoted = *row;
  while (*row) {
    row = rows.Next();
    if (!row) return Failed("PromotePendingDataKey", id, row.error());
  }
  return promoted;
}

Result<std::int64_t> SqliteFleetStore::SetDesiredState(std::string_view id,
                                                       std::string_view document) {
  std::lock_guard lock(mutex_);
  auto fail = [&](const Error& error) { return Failed("SetDesiredState", id, error); };
  if (!IsBoundedJson(document)) return fail(Error{"document is not a JSON document"});
  auto transaction = WriteTransaction::Begin(db_);
  if (!transaction) return fail(transaction.error());
  auto state = SensorRevoked(id);
  if (!state) return fail(state.error());
  if (!state->has_value()) return fail(Error{"unknown sensor"});
  std::int64_t version = 0;
  {
    auto upserted = upsert_desired_.Bind({id, document, Micros(clock_())});
    auto row = upserted.Next();
    if (!row) return fail(row.error());
    if (!*row) return fail(Error{"no version returned"});
    version = upserted.Int(0);
    if (auto done = upserted.Run(); !done) return fail(done.error());
  }
  if (auto committed = transaction->Commit(); !committed) return fail(committed.error());
  return version;
}

Result<DesiredState> SqliteFleetStore::GetDesiredState(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto rows = select_desired_.Bind({id});
  auto row = rows.Next();
  if (!row) return Failed("GetDesiredState", id, row.error());
  DesiredState state;
  if (!*row) return state;
  state.version = rows.Int(0);
  state.document = rows.Text(1);
  state.updated_at = OptionalTime(rows, 2);
  state.applied_version = rows.Int(3);
  state.applied_result = rows.Text(4);
  state.applied_at = OptionalTime(rows, 5);
  return state;
}

Status SqliteFleetStore::RecordAppliedState(std::string_view id, std::int64_t version,
                                            std::string_view result_json) {
  std::lock_guard lock(mutex_);
  if (!IsBoundedJson(result_json)) {
    return Failed("RecordAppliedState", id, Error{"result is not a JSON document"});
  }
  auto updated = record_applied_.Bind({id, version, result_json, Micros(clock_())}).Run();
  if (!updated) return Failed("RecordAppliedState", id, updated.error());
  if (db_.Changes() == 0) {
    return Failed("RecordAppliedState", id,
                  Error{"no desired state version " + std::to_string(version)});
  }
  return {};
}

Result<StoreEventsResult> SqliteFleetStore::StoreEvents(std::string_view sensor_id,
                                                        const std::vector<IncomingEvent>& batch) {
  // One batch through the group path, so both store events the same way.
  auto outcomes = StoreEventBatches({SensorBatch{std::string(sensor_id), batch}});
  if (!outcomes) return outcomes.error();
  return std::move(outcomes->front());
}

Result<std::vector<Result<StoreEventsResult>>> SqliteFleetStore::StoreEventBatches(
    const std::vector<SensorBatch>& batches) {
  // Checked and parsed before the lock and the write transaction, which stay
  // short this way.
  std::vector<Result<StoreEventsResult>> outcomes;
  std::vector<std::vector<EventFields>> fields(batches.size());
  outcomes.reserve(batches.size());
  for (std::size_t b = 0; b < batches.size(); ++b) {
    StoreEventsResult result;
    std::optional<Error> refused;
    fields[b].reserve(batches[b].events.size());
    for (const IncomingEvent& event : batches[b].events) {
      if (event.seq == 0 || event.seq > static_cast<std::uint64_t>(kMaxSeq)) {
        refused = Error{"seq " + std::to_string(event.seq) + " is out of range"};
        break;
      }
      result.acknowledge_seq = std::max(result.acknowledge_seq, event.seq);
      fields[b].push_back(ExtractEventFields(event.body));
    }
    if (refused) {
      outcomes.emplace_back(Failed("StoreEvents", batches[b].sensor_id, *refused));
    } else {
      outcomes.emplace_back(result);
    }
  }

  std::lock_guard lock(mutex_);
  auto fail = [&](const Error& error) {
    return Failed("StoreEventBatches", std::to_string(batches.size()) + " batches", error);
  };
  auto transaction = WriteTransaction::Begin(db_);
  if (!transaction) return fail(transaction.error());
  std::int64_t now = Micros(clock_());
  for (std::size_t b = 0; b < batches.size(); ++b) {
    if (!outcomes[b].ok() || batches[b].events.empty()) continue;
    const std::string& sensor_id = batches[b].sensor_id;
    // Checked inside the transaction, so no batch commits after a revocation.
    auto state = SensorRevoked(sensor_id);
    if (!state) return fail(state.error());
    if (!state->has_value() || **state) {
      outcomes[b] = Failed("StoreEvents", sensor_id,
                           Error{state->has_value() ? "sensor is revoked" : "unknown sensor"});
      continue;
    }
    for (std::size_t i = 0; i < batches[b].events.size(); ++i) {
      const EventFields& event = fields[b][i];
      std::int64_t event_time = event.event_time ? Micros(*event.event_time) : now;
      auto inserted = insert_event_
                          .Bind({sensor_id, static_cast<std::int64_t>(batches[b].events[i].seq),
                                 now, event_time, event.event_type, event.body})
                          .Run();
      if (!inserted) {
        return fail(Context(sensor_id + " seq " + std::to_string(batches[b].events[i].seq),
                            inserted.error()));
      }
      if (db_.Changes() == 1) {
        ++outcomes[b]->inserted;
      } else {
        ++outcomes[b]->duplicates;
      }
    }
    if (auto touched = touch_sensor_.Bind({sensor_id, now}).Run(); !touched) {
      return fail(touched.error());
    }
  }
  if (auto committed = transaction->Commit(); !committed) return fail(committed.error());
  return outcomes;
}

Result<std::uint64_t> SqliteFleetStore::HighestEventSeq(std::string_view sensor_id) {
  std::lock_guard lock(mutex_);
  auto rows = highest_seq_.Bind({sensor_id});
  auto row = rows.Next();
  if (!row) return Failed("HighestEventSeq", sensor_id, row.error());
  return static_cast<std::uint64_t>(*row ? rows.Int(0) : 0);
}

Result<Statement*> SqliteFleetStore::QueryStatement(const std::string& sql) {
  auto found = queries_.find(sql);
  if (found != queries_.end()) return &found->second;
  auto prepared = db_.Prepare(sql);
  if (!prepared) return prepared.error();
  return &queries_.emplace(sql, std::move(*prepared)).first->second;
}

Result<EventPage> SqliteFleetStore::QueryEvents(const EventQuery& query) {
  // Each filter adds a condition only when set, so every combination gets
  // a plan that can use its index; at most 2^7 shapes are ever prepared.
  std::string sql =
      "SELECT id, sensor_id, seq, received_at, event_time, event_type, body FROM events WHERE 1";
  std::vector<Value> values;
  auto add = [&](const char* condition, Value value) {
    values.push_back(value);
    sql += " AND ";
    sql += condition;
    sql += std::to_string(values.size());
  };
  if (query.from) add("event_time >= ?", Micros(*query.from));
  if (query.until) add("event_time < ?", Micros(*query.until));
  if (!query.sensor_id.empty()) add("sensor_id = ?", std::string_view(query.sensor_id));
  if (!query.tenant.empty()) {
    add("sensor_id IN (SELECT id FROM sensors WHERE tenant = ?", std::string_view(query.tenant));
    sql += ')';
  }
  if (!query.event_type.empty()) add("event_type = ?", std::string_view(query.event_type));
  if (!query.text.empty()) {
    add("instr(body, ?", std::string_view(query.text));
    sql += ") > 0";
  }
  if (query.after_id > 0) add(query.newest_first ? "id < ?" : "id > ?", query.after_id);
  sql += query.newest_first ? " ORDER BY id DESC" : " ORDER BY id";
  std::size_t limit = query.limit == 0 ? 100 : std::min(query.limit, kMaxQueryLimit);
  values.push_back(static_cast<std::int64_t>(limit));
  sql += " LIMIT ?";
  sql += std::to_string(values.size());

  std::lock_guard lock(mutex_);
  auto statement = QueryStatement(sql);
  if (!statement) return Failed("QueryEvents", "", statement.error());
  auto rows = (*statement)->Bind(values);
  EventPage page;
  for (;;) {
    auto row = rows.Next();
    if (!row) return Failed("QueryEvents", "", row.error());
    if (!*row) break;
    StoredEvent event;
    event.id = rows.Int(0);
    event.sensor_id = rows.Text(1);
    event.seq = static_cast<std::uint64_t>(rows.Int(2));
    event.received_at = FromMicros(rows.Int(3));
    event.event_time = FromMicros(rows.Int(4));
    event.event_type = rows.Text(5);
    event.body = rows.Text(6);
    page.events.push_back(std::move(event));
  }
  if (page.events.size() == limit) page.next_after_id = page.events.back().id;
  return page;
}

// Brings a new or older database to the current schema; refuses files that
// are not ours or are newer than this code.
Status Migrate(Database& db) {
  auto transaction = WriteTransaction::Begin(db);
  if (!transaction) return transaction.error();
  auto read_int = [&](const std::string& sql) -> Result<std::int64_t> {
    auto statement = db.Prepare(sql);
    if (!statement) return statement.error();
    auto rows = statement->Bind({});
    auto row = rows.Next();
    if (!row) return row.error();
    return *row ? rows.Int(0) : 0;
  };
  auto application_id = read_int("PRAGMA application_id");
  if (!application_id) return application_id.error();
  auto tables = read_int("SELECT count(*) FROM sqlite_schema");
  if (!tables) return tables.error();
  std::int64_t version = 0;
  if (*application_id == 0 && *tables == 0) {
    CUSTOS_TRY(db.Execute("PRAGMA application_id = " + std::to_string(kApplicationId)));
  } else if (*application_id != kApplicationId) {
    return Error{"not a Custos fleet store (another application's SQLite database)"};
  } else {
    auto current = read_int("SELECT version FROM schema_version");
    if (!current) return current.error();
    version = *current;
  }
  auto supported = static_cast<std::int64_t>(kMigrations.size());
  if (version > supported) {
    return Error{"schema version " + std::to_string(version) +
                 " is newer than this fleetd supports (" + std::to_string(supported) + ")"};
  }
  for (; version < supported; ++version) {
    if (auto applied = db.Execute(kMigrations[static_cast<std::size_t>(version)]); !applied) {
      return Context("migrate to schema version " + std::to_string(version + 1), applied.error());
    }
    CUSTOS_TRY(db.Execute("UPDATE schema_version SET version = " + std::to_string(version + 1)));
  }
  return transaction->Commit();
}

}  // namespace

Result<std::unique_ptr<FleetStore>> OpenSqliteFleetStore(const std::filesystem::path& path,
                                                         SqliteStoreOptions options) {
  std::string where = "open fleet store " + path.string();
  auto db = Database::Open(path, options.busy_timeout);
  if (!db) return Context(where, db.error());
  // journal_mode is the first statement to read the file, so a file that is
  // not a database fails here, with SQLite's "file is not a database".
  if (auto wal = db->Execute("PRAGMA journal_mode = WAL"); !wal) return Context(where, wal.error());
  if (auto pragmas = db->Execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON"); !pragmas) {
    return Context(where, pragmas.error());
  }
  if (auto migrated = Migrate(*db); !migrated) return Context(where, migrated.error());
  auto store = std::make_unique<SqliteFleetStore>(std::move(*db), std::move(options.clock));
  if (auto prepared = store->Prepare(); !prepared) return Context(where, prepared.error());
  return std::unique_ptr<FleetStore>(std::move(store));
}

}  // namespace custos::fleet
