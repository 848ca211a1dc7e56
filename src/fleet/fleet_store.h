// The fleet server's persistent state: the sensor registry, enrollment
// tokens, revoked certificate serials, each sensor's desired state, and the
// events sensors send up. FleetStore is the interface the rest of fleetd
// uses; it speaks in domain terms so that a PostgreSQL backend can sit
// beside the SQLite one (OpenSqliteFleetStore) without callers changing.
// Thread-safe: every method may be called from any thread.
//
// Events: StoreEvents writes a batch in one transaction, idempotent on
// (sensor, seq). When it returns OK the batch is committed durably, and the
// caller may acknowledge the batch's highest seq to the sensor.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace custos::fleet {

// Stored at microsecond precision.
using TimePoint = std::chrono::system_clock::time_point;
using Clock = std::function<TimePoint()>;

struct SensorRecord {
  std::string id;
  std::string tenant;
  std::string certificate_serial;  // as the CA issued it, for the CRL
  std::string fingerprint;         // of the certificate, for pinning
  TimePoint enrolled_at;
  std::optional<TimePoint> revoked_at;
  std::optional<TimePoint> last_seen;  // last heartbeat or event batch
  std::string health = "{}";           // JSON from the last heartbeat
  std::string name;                    // the label the sensor enrolled with, may be ""
};

// What the CA knows about a sensor it just signed a certificate for.
struct NewSensor {
  std::string id;
  std::string certificate_serial;
  std::string fingerprint;
  std::string name;              // optional label
  std::string wrapped_data_key;  // fleet/data_keys.h; "" for none
};

// An enrollment token as listed to operators: never the token itself.
struct EnrollmentTokenInfo {
  std::string token_sha256;
  std::string tenant;
  TimePoint created_at;
  TimePoint expires_at;
  std::optional<TimePoint> used_at;
  std::string used_by;  // the sensor id it enrolled, "" if unused
};

struct RevokedSerial {
  std::string serial;
  std::string sensor_id;
  TimePoint revoked_at;
};

struct DesiredState {
  std::int64_t version = 0;     // 0: nothing set yet
  std::string document = "{}";  // JSON
  std::optional<TimePoint> updated_at;
  std::int64_t applied_version = 0;  // last version the sensor reported applying
  std::string applied_result;        // JSON the sensor reported with it
  std::optional<TimePoint> applied_at;
};

struct IncomingEvent {
  std::uint64_t seq = 0;  // the sensor's spool seq, 1 .. 2^63-1
  std::string body;       // JSON text as the instrument published it
};

struct StoreEventsResult {
  // The batch's highest seq: after commit every event of the batch is
  // stored (inserted now or before), so the sensor may drop up to here.
  std::uint64_t acknowledge_seq = 0;
  std::size_t inserted = 0;
  std::size_t duplicates = 0;  // already stored: a resend after a lost ack
};

// One sensor's batch, for storing several sensors' batches in one transaction.
struct SensorBatch {
  std::string sensor_id;
  std::vector<IncomingEvent> events;
};

struct StoredEvent {
  std::int64_t id = 0;  // store-wide, increasing in insertion order
  std::string sensor_id;
  std::uint64_t seq = 0;
  TimePoint received_at;
  // The body's "timestamp" (EVE format), or received_at when it has none.
  TimePoint event_time;
  std::string event_type;  // the body's "event_type", "" when it has none
  std::string body;        // always a JSON object, see kInvalidEventType
};

// A body that is not a JSON object (or nests deeper than 64 levels) is kept,
// not refused: it is stored as {"event_type": kInvalidEventType, "raw": text}
// so one bad instrument cannot block its sensor's spool.
inline constexpr char kInvalidEventType[] = "custos.invalid";

struct EventQuery {
  std::optional<TimePoint> from;   // event_time >= from
  std::optional<TimePoint> until;  // event_time < until
  std::string tenant;              // "" for all tenants
  std::string sensor_id;           // "" for all sensors
  std::string event_type;          // "" for all types
  std::string text;                // case-sensitive substring of the body; "" for any
  bool newest_first = false;
  // Paging cursor: only ids after this one in the listing order (greater
  // when oldest first, smaller when newest first). 0 starts at the beginning.
  std::int64_t after_id = 0;
  std::size_t limit = 100;  // 0 means 100; capped at kMaxQueryLimit
};
inline constexpr std::size_t kMaxQueryLimit = 1000;

struct EventPage {
  std::vector<StoredEvent> events;
  std::int64_t next_after_id = 0;  // the cursor for the next page; 0 if none
};

struct DataKeyVersions {
  std::int64_t version = 1;
  std::optional<std::string> pending_wrapped;
  std::int64_t pending_version = 0;
};

class FleetStore {
 public:
  virtual ~FleetStore() = default;

  // Enrollment. Only the token's SHA-256 is stored; the plaintext is shown
  // once to the operator and sent by the sensor with its CSR.
  virtual Status AddEnrollmentToken(std::string_view token, std::string_view tenant,
                                    TimePoint expires_at) = 0;
  // Consumes the token and records the sensor under the token's tenant, in
  // one transaction: of two sensors racing with one token, one wins.
  virtual Result<SensorRecord> EnrollSensor(std::string_view token, const NewSensor& sensor) = 0;
  // The tenant of a token that is still usable (known, unused, unexpired),
  // without consuming it: the CA needs it to sign before EnrollSensor.
  virtual Result<std::optional<std::string>> EnrollmentTokenTenant(std::string_view token) = 0;
  virtual Result<std::vector<EnrollmentTokenInfo>> ListEnrollmentTokens() = 0;

  // Registry. GetSensor yields nullopt for an unknown id.
  virtual Result<std::optional<SensorRecord>> GetSensor(std::string_view id) = 0;
  virtual Result<std::vector<SensorRecord>> ListSensors(std::string_view tenant) = 0;
  virtual Status RecordHeartbeat(std::string_view id, std::string_view health_json) = 0;
  // Marks the sensor revoked and its serial for the CRL. Idempotent.
  virtual Status RevokeSensor(std::string_view id) = 0;
  virtual Result<std::vector<RevokedSerial>> RevokedSerials() = 0;
  // The wrapped data key given at enrollment; nullopt for an unknown or
  // revoked sensor, or one enrolled without a key.
  virtual Result<std::optional<std::string>> WrappedDataKey(std::string_view id) = 0;
  // Re-keying: the current key's version (1 at enrollment), and a pending
  // key the sensor re-encrypts under and then confirms. nullopt for an
  // unknown or revoked sensor.
  virtual Result<std::optional<DataKeyVersions>> DataKeyVersionsOf(std::string_view id) = 0;
  // Stores `wrapped` as the pending key, version current + 1 (replacing an
  // unconfirmed one); returns that version.
  virtual Result<std::int64_t> SetPendingDataKey(std::string_view id, std::string_view wrapped) = 0;
  // Makes the pending key of `version` current; false when there is none.
  virtual Result<bool> PromotePendingDataKey(std::string_view id, std::int64_t version) = 0;

  // Desired state: each Set bumps the version; the sensor reports back
  // which version it applied and the outcome.
  virtual Result<std::int64_t> SetDesiredState(std::string_view id, std::string_view document) = 0;
  virtual Result<DesiredState> GetDesiredState(std::string_view id) = 0;
  virtual Status RecordAppliedState(std::string_view id, std::int64_t version,
                                    std::string_view result_json) = 0;

  // Events. Refused for unknown or revoked sensors.
  virtual Result<StoreEventsResult> StoreEvents(std::string_view sensor_id,
                                                const std::vector<IncomingEvent>& batch) = 0;
  // StoreEvents for several batches (of one or many sensors) in one
  // transaction, so they share one fsync. Each batch gets the outcome
  // StoreEvents would give it: a batch of an unknown or revoked sensor, or
  // with a seq out of range, fails alone. A storage failure fails them all
  // (the outer error) and stores none.
  virtual Result<std::vector<Result<StoreEventsResult>>> StoreEventBatches(
      const std::vector<SensorBatch>& batches) = 0;
  // The highest seq stored for the sensor (0: none), so a sensor whose spool
  // was re-created can start above it.
  virtual Result<std::uint64_t> HighestEventSeq(std::string_view sensor_id) = 0;
  virtual Result<EventPage> QueryEvents(const EventQuery& query) = 0;
};

struct SqliteStoreOptions {
  // How long a write waits for another connection's transaction.
  std::chrono::milliseconds busy_timeout{5000};
  Clock clock = [] { return std::chrono::system_clock::now(); };
};

// Opens (creating or migrating) the SQLite store at `path`. Fails with a
// clear message for a file that is not a SQLite database, is damaged, or is
// another application's database or a newer schema.
Result<std::unique_ptr<FleetStore>> OpenSqliteFleetStore(const std::filesystem::path& path,
                                                         SqliteStoreOptions options = {});

// Backend-independent helpers, shared by the backends and tested directly.

// SHA-256 as lowercase hex.
std::string Sha256Hex(std::string_view data);

// Parses an EVE timestamp: "2026-11-23T15:04:05.123456+0000", also with
// "Z", "+00:00", or without fraction. nullopt if malformed.
std::optional<TimePoint> ParseEveTimestamp(std::string_view text);

struct EventFields {
  std::string event_type;
  std::optional<TimePoint> event_time;
  std::string body;  // the input, or its kInvalidEventType wrapping
};
EventFields ExtractEventFields(std::string_view body);

// True if `text` is a JSON document nested at most 64 levels deep.
bool IsBoundedJson(std::string_view text);

}  // namespace custos::fleet
