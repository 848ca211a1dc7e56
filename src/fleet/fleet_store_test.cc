#include "fleet/fleet_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

namespace custos::fleet {
namespace {
namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::seconds;

TimePoint At(const char* eve) { return *ParseEveTimestamp(eve); }

std::string EventBody(std::uint64_t seq, const std::string& type = "flow",
                      const std::string& timestamp = "2026-01-02T03:04:05.000006+0000") {
  nlohmann::json body = {{"timestamp", timestamp},
                         {"event_type", type},
                         {"seq", seq},
                         {"pad", std::string(seq % 97, 'p')}};
  return body.dump();
}

// Kills and reaps a forked writer when a failed assertion leaves the test.
struct ChildGuard {
  pid_t pid;
  ~ChildGuard() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

class FleetStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/custos-fleetstore-XXXXXX";
    root_ = ::mkdtemp(pattern);
    path_ = root_ + "/fleet.db";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<FleetStore> Open() {
    SqliteStoreOptions options;
    options.clock = [this] { return now_.load(); };
    auto store = OpenSqliteFleetStore(path_, options);
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(*store) : nullptr;
  }
  // Enrolls `id` under `tenant` through a fresh token.
  void Enroll(FleetStore& store, const std::string& id, const std::string& tenant = "acme") {
    std::string token = "token-for-" + id;
    ASSERT_TRUE(store.AddEnrollmentToken(token, tenant, now_.load() + hours(1)).ok());
    auto enrolled = store.EnrollSensor(token, {id, "serial-" + id, "fp-" + id});
    ASSERT_TRUE(enrolled.ok()) << enrolled.error().message;
  }
  std::vector<StoredEvent> AllEvents(FleetStore& store, const std::string& sensor) {
    std::vector<StoredEvent> all;
    EventQuery query;
    query.sensor_id = sensor;
    query.limit = kMaxQueryLimit;
    for (;;) {
      auto page = store.QueryEvents(query);
      EXPECT_TRUE(page.ok()) << page.error().message;
      if (!page.ok()) return all;
      all.insert(all.end(), page->events.begin(), page->events.end());
      if (page->next_after_id == 0) return all;
      query.after_id = page->next_after_id;
    }
  }

  std::string root_;
  std::string path_;
  std::atomic<TimePoint> now_{At("2026-06-01T12:00:00Z")};
};

TEST(EventFieldsTest, ParsesEveTimestampsInTheirVariants) {
  using namespace std::chrono;
  TimePoint base = sys_days{2026y / November / 23} + 15h + 4min + 5s;
  EXPECT_EQ(ParseEveTimestamp("2026-11-23T15:04:05.123456+0000"), base + 123456us);
  EXPECT_EQ(ParseEveTimestamp("2026-11-23T15:04:05Z"), base);
  EXPECT_EQ(ParseEveTimestamp("2026-11-23T15:04:05"), base);
  EXPECT_EQ(ParseEveTimestamp("2026-11-23T17:04:05.5+02:00"), base + 500ms);
  EXPECT_EQ(ParseEveTimestamp("2026-11-23T14:04:05-0100"), base);
  for (const char* bad : {"", "2026-11-23", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                          "2026-11-23T25:00:00Z", "2026-11-23T15:04:05.Z", "2026-11-23T15:04:05+1",
                          "2026-11-23T15:04:05Zjunk", "yyyy-11-23T15:04:05Z"}) {
    EXPECT_FALSE(ParseEveTimestamp(bad)) << bad;
  }
}

TEST(EventFieldsTest, ExtractsTopLevelFieldsAndWrapsWhatIsNotAnObject) {
  EventFields fields = ExtractEventFields(
      R"({"timestamp":"2026-01-01T00:00:00Z","event_type":"dns","dns":{"event_type":"inner"}})");
  EXPECT_EQ(fields.event_type, "dns");
  EXPECT_EQ(fields.event_time, At("2026-01-01T00:00:00Z"));

  for (std::string bad :
       {std::string("not json"), std::string("[1,2]"), std::string("\"text\""),
        std::string(100, '[') + std::string(100, ']'), std::string("{\"a\":\"\xff\xfe\"}")}) {
    fields = ExtractEventFields(bad);
    EXPECT_EQ(fields.event_type, kInvalidEventType) << bad;
    auto wrapped = nlohmann::json::parse(fields.body);
    EXPECT_EQ(wrapped["event_type"], kInvalidEventType);
    EXPECT_TRUE(wrapped["raw"].is_string());
  }
  EXPECT_EQ(ExtractEventFields("{}").event_type, "");
  EXPECT_FALSE(ExtractEventFields("{}").event_time);
}

TEST(EventFieldsTest, Sha256MatchesTheStandardVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(FleetStoreTest, EnrollmentTokenWorksOnceAndNotAfterExpiry) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->AddEnrollmentToken("secret-1", "acme", now_.load() + hours(1)).ok());
  auto first = store->EnrollSensor("secret-1", {"s1", "01AB", "fp1"});
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->tenant, "acme");
  EXPECT_EQ(first->enrolled_at, now_.load());

  auto again = store->EnrollSensor("secret-1", {"s2", "02AB", "fp2"});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("EnrollSensor(s2)"), std::string::npos)
      << again.error().message;
  EXPECT_FALSE(store->EnrollSensor("never-issued", {"s2", "02AB", "fp2"}).ok());

  ASSERT_TRUE(store->AddEnrollmentToken("secret-2", "acme", now_.load() + hours(1)).ok());
  now_ = now_.load() + hours(1);  // expires_at is exclusive
  EXPECT_FALSE(store->EnrollSensor("secret-2", {"s2", "02AB", "fp2"}).ok());
  auto missing = store->GetSensor("s2");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  // A failed enrollment must not burn the token: the sensor insert fails
  // (duplicate serial) and the whole transaction rolls back.
  ASSERT_TRUE(store->AddEnrollmentToken("secret-3", "acme", now_.load() + hours(1)).ok());
  EXPECT_FALSE(store->EnrollSensor("secret-3", {"s3", "01AB", "fp3"}).ok());
  EXPECT_TRUE(store->EnrollSensor("secret-3", {"s3", "03AB", "fp3"}).ok());
  ASSERT_TRUE(store->AddEnrollmentToken("secret-4", "acme", now_.load() + hours(1)).ok());
  auto twice = store->EnrollSensor("secret-4", {"s3", "04AB", "fp4"});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("already enrolled"), std::string::npos)
      << twice.error().message;
  store.reset();

  // Only the hash is on disk.
  std::ifstream file(path_, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.find("secret-1"), std::string::npos);
  EXPECT_NE(bytes.find(Sha256Hex("secret-1")), std::string::npos);
}

TEST_F(FleetStoreTest, OneTokenRacedByManyConnectionsEnrollsExactlyOneSensor) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->AddEnrollmentToken("contested", "acme", now_.load() + hours(1)).ok());
  }
  constexpr int kRacers = 6;
  std::vector<std::unique_ptr<FleetStore>> stores;
  for (int i = 0; i < kRacers; ++i) stores.push_back(Open());
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i) {
    threads.emplace_back([&, i] {
      std::string id = "racer" + std::to_string(i);
      if (stores[i] && stores[i]->EnrollSensor("contested", {id, "serial-" + id, "fp"}).ok()) {
        ++wins;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wins.load(), 1);
  auto sensors = stores[0]->ListSensors("acme");
  ASSERT_TRUE(sensors.ok());
  EXPECT_EQ(sensors->size(), 1u);
}

TEST_F(FleetStoreTest, RevocationListsTheSerialAndStopsEvents) {
  auto store = Open();
  ASSERT_TRUE(store);
  Enroll(*store, "s1");
  Enroll(*store, "s2");
  ASSERT_TRUE(store->StoreEvents("s1", {{1, EventBody(1)}}).ok());

  now_ = now_.load() + seconds(30);
  ASSERT_TRUE(store->RevokeSensor("s1").ok());
  TimePoint revoked_at = now_.load();
  now_ = now_.load() + seconds(30);
  EXPECT_TRUE(store->RevokeSensor("s1").ok()) << "revoking twice is harmless";
  EXPECT_FALSE(store->RevokeSensor("ghost").ok());

  auto sensor = store->GetSensor("s1");
  ASSERT_TRUE(sensor.ok() && sensor->has_value());
  EXPECT_EQ((*sensor)->revoked_at, revoked_at);
  auto serials = store->RevokedSerials();
  ASSERT_TRUE(serials.ok());
  ASSERT_EQ(serials->size(), 1u);
  EXPECT_EQ((*serials)[0].serial, "serial-s1");
  EXPECT_EQ((*serials)[0].sensor_id, "s1");
  EXPECT_EQ((*serials)[0].revoked_at, revoked_at);

  auto refused = store->StoreEvents("s1", {{2, EventBody(2)}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("revoked"), std::string::npos);
  EXPECT_TRUE(store->StoreEvents("s2", {{1, EventBody(1)}}).ok());
  auto ghost = store->StoreEvents("ghost", {{1, EventBody(1)}});
  ASSERT_FALSE(ghost.ok());
  EXPECT_NE(ghost.error().message.find("StoreEvents(ghost): unknown sensor"), std::string::npos)
      << ghost.error().message;
}

TEST_F(FleetStoreTest, OverlappingBatchIsStoredOnce) {
  auto store = Open();
  ASSERT_TRUE(store);
  Enroll(*store, "s1");
  std::vector<IncomingEvent> first, second;
  for (std::uint64_t seq = 1; seq <= 10; ++seq) first.push_back({seq, EventBody(seq)});
  for (std::uint64_t seq = 5; seq <= 15; ++seq) second.push_back({seq, EventBody(seq, "resent")});
  auto stored = store->StoreEvents("s1", first);
  ASSERT_TRUE(stored.ok()) << stored.error().message;
  EXPECT_EQ(stored->inserted, 10u);
  EXPECT_EQ(stored->acknowledge_seq, 10u);
  stored = store->StoreEvents("s1", second);
  ASSERT_TRUE(stored.ok()) << stored.error().message;
  EXPECT_EQ(stored->inserted, 5u);
  EXPECT_EQ(stored->duplicates, 6u);
  EXPECT_EQ(stored->acknowledge_seq, 15u);
  stored = store->StoreEvents("s1", second);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->inserted, 0u);

  auto events = AllEvents(*store, "s1");
  ASSERT_EQ(events.size(), 15u);
  for (std::size_t i = 0; i < events.size(); ++i) {
    std::uint64_t seq = i + 1;
    EXPECT_EQ(events[i].seq, seq);
    // The first copy stays: a resend never rewrites an event.
    EXPECT_EQ(events[i].body, EventBody(seq, seq <= 10 ? "flow" : "resent"));
  }
  auto highest = store->HighestEventSeq("s1");
  ASSERT_TRUE(highest.ok());
  EXPECT_EQ(*highest, 15u);
  EXPECT_FALSE(store->StoreEvents("s1", {{0, "{}"}}).ok()) << "seq 0 is never valid";
  auto sensor = store->GetSensor("s1");
  ASSERT_TRUE(sensor.ok() && sensor->has_value());
  EXPECT_EQ((*sensor)->last_seen, now_.load());
}

TEST_F(FleetStoreTest, QueryFiltersAndPages) {
  auto store = Open();
  ASSERT_TRUE(store);
  Enroll(*store, "a1", "acme");
  Enroll(*store, "b1", "bravo");
  std::vector<IncomingEvent> a_events, b_events;
  for (std::uint64_t seq = 1; seq <= 6; ++seq) {
    std::string stamp = "2026-03-01T00:00:0" + std::to_string(seq) + "Z";
    std::string type = seq % 2 ? "dns" : "alert";
    nlohmann::json body = {
        {"timestamp", stamp}, {"event_type", type}, {"host", "host" + std::to_string(seq)}};
    if (seq == 4) body["host"] = "evil.example";
    a_events.push_back({seq, body.dump()});
    b_events.push_back({seq, EventBody(seq, type, stamp)});
  }
  ASSERT_TRUE(store->StoreEvents("a1", a_events).ok());
  ASSERT_TRUE(store->StoreEvents("b1", b_events).ok());
  ASSERT_TRUE(store->StoreEvents("a1", {{7, "this is not json"}}).ok());

  auto count = [&](EventQuery query) -> std::size_t {
    auto page = store->QueryEvents(query);
    EXPECT_TRUE(page.ok()) << page.error().message;
    return page.ok() ? page->events.size() : 0;
  };
  EXPECT_EQ(count({}), 13u);
  EXPECT_EQ(count({.event_type = "alert"}), 6u);
  EXPECT_EQ(count({.tenant = "acme"}), 7u);
  EXPECT_EQ(count({.tenant = "acme", .event_type = "alert"}), 3u);
  EXPECT_EQ(count({.sensor_id = "b1", .event_type = "dns"}), 3u);
  EXPECT_EQ(count({.tenant = "nobody"}), 0u);
  EXPECT_EQ(count({.from = At("2026-03-01T00:00:02Z"), .until = At("2026-03-01T00:00:04Z")}), 4u);
  EXPECT_EQ(count({.from = At("2026-03-01T00:00:02Z"),
                   .until = At("2026-03-01T00:00:04Z"),
                   .sensor_id = "a1"}),
            2u);
  EXPECT_EQ(count({.text = "evil.example"}), 1u);
  EXPECT_EQ(count({.text = "EVIL.EXAMPLE"}), 0u) << "the substring match is case-sensitive";
  EXPECT_EQ(count({.text = "%"}), 0u) << "no LIKE wildcards";

  auto invalid = store->QueryEvents({.event_type = kInvalidEventType});
  ASSERT_TRUE(invalid.ok());
  ASSERT_EQ(invalid->events.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(invalid->events[0].body)["raw"], "this is not json");
  EXPECT_EQ(invalid->events[0].event_time, now_.load()) << "no timestamp: the received time";

  // Paging, oldest first, then newest first, two at a time.
  for (bool newest_first : {false, true}) {
    EventQuery query{.sensor_id = "a1", .newest_first = newest_first, .limit = 2};
    std::vector<std::uint64_t> seqs;
    for (int pages = 0; pages < 10; ++pages) {
      auto page = store->QueryEvents(query);
      ASSERT_TRUE(page.ok());
      for (const StoredEvent& event : page->events) seqs.push_back(event.seq);
      if (page->next_after_id == 0) break;
      query.after_id = page->next_after_id;
    }
    std::vector<std::uint64_t> expected = {1, 2, 3, 4, 5, 6, 7};
    if (newest_first) std::reverse(expected.begin(), expected.end());
    EXPECT_EQ(seqs, expected);
  }
  auto capped = store->QueryEvents({.limit = 100000});
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->events.size(), 13u);
}

TEST_F(FleetStoreTest, DesiredStateVersionsAndAppliedReports) {
  auto store = Open();
  ASSERT_TRUE(store);
  Enroll(*store, "s1");
  auto none = store->GetDesiredState("s1");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->version, 0);
  auto v1 = store->SetDesiredState("s1", R"({"instruments":["ids"]})");
  ASSERT_TRUE(v1.ok()) << v1.error().message;
  EXPECT_EQ(*v1, 1);
  auto v2 = store->SetDesiredState("s1", R"({"instruments":["ids","dns"]})");
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v2, 2);
  EXPECT_FALSE(store->SetDesiredState("s1", "{broken").ok());
  EXPECT_FALSE(store->SetDesiredState("ghost", "{}").ok());

  ASSERT_TRUE(store->RecordAppliedState("s1", 2, R"({"ok":true})").ok());
  EXPECT_FALSE(store->RecordAppliedState("s1", 3, "{}").ok()) << "not yet desired";
  auto state = store->GetDesiredState("s1");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->version, 2);
  EXPECT_EQ(state->document, R"({"instruments":["ids","dns"]})");
  EXPECT_EQ(state->applied_version, 2);
  EXPECT_EQ(state->applied_result, R"({"ok":true})");
  EXPECT_EQ(state->applied_at, now_.load());
}

TEST_F(FleetStoreTest, HeartbeatRecordsHealth) {
  auto store = Open();
  ASSERT_TRUE(store);
  Enroll(*store, "s1");
  now_ = now_.load() + seconds(5);
  ASSERT_TRUE(store->RecordHeartbeat("s1", R"({"load":0.5})").ok());
  EXPECT_FALSE(store->RecordHeartbeat("s1", "nope").ok());
  EXPECT_FALSE(store->RecordHeartbeat("ghost", "{}").ok());
  auto sensor = store->GetSensor("s1");
  ASSERT_TRUE(sensor.ok() && sensor->has_value());
  EXPECT_EQ((*sensor)->health, R"({"load":0.5})");
  EXPECT_EQ((*sensor)->last_seen, now_.load());
}

// A fleetd SIGKILLed while storing batches: every batch it reported as
// committed is there after reopening, exactly once, and the file is sound.
TEST_F(FleetStoreTest, SigkilledWriterLosesNoCommittedBatch) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    Enroll(*store, "s1");
  }
  std::random_device device;
  unsigned seed = device();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 random(seed);
  std::uint64_t reported = 0;
  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    ChildGuard guard{child};
    if (child == 0) {
      ::close(pipe_fds[0]);
      std::mt19937 child_random(seed + round);
      auto opened = OpenSqliteFleetStore(path_);
      if (!opened) ::_exit(2);
      FleetStore& store = **opened;
      auto highest = store.HighestEventSeq("s1");
      if (!highest) ::_exit(3);
      // Starts a little behind what is stored, as a sensor that never got
      // its last ack would.
      std::uint64_t next = *highest > 3 ? *highest - 3 : 1;
      for (;;) {
        std::vector<IncomingEvent> batch;
        std::uint64_t size = 1 + child_random() % 40;
        for (std::uint64_t seq = next; seq < next + size; ++seq) {
          batch.push_back({seq, EventBody(seq)});
        }
        auto stored = store.StoreEvents("s1", batch);
        if (!stored) ::_exit(4);
        next += size;
        std::uint64_t ack = stored->acknowledge_seq;
        if (::write(pipe_fds[1], &ack, sizeof ack) != sizeof ack) ::_exit(5);
      }
    }
    ::close(pipe_fds[1]);
    std::size_t kill_after = 1 + random() % 30;
    std::size_t reports = 0;
    std::uint64_t ack = 0;
    std::uint64_t round_reported = 0;
    for (;;) {
      ssize_t n = ::read(pipe_fds[0], &ack, sizeof ack);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      ASSERT_EQ(n, static_cast<ssize_t>(sizeof ack));
      // A round's first batch re-sends a little of what is stored, so its
      // ack may be below the last round's; within a round acks only grow.
      EXPECT_GE(ack, round_reported);
      round_reported = ack;
      reported = std::max(reported, ack);
      if (++reports == kill_after) {
        ASSERT_EQ(::kill(child, SIGKILL), 0);
      }
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    guard.pid = 0;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "writer failed on its own, status " << status;

    {
      sqlite3* raw = nullptr;
      ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
      sqlite3_stmt* check = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &check, nullptr), SQLITE_OK);
      ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
      EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
      sqlite3_finalize(check);
      sqlite3_close(raw);
    }
    auto store = Open();
    ASSERT_TRUE(store);
    auto events = AllEvents(*store, "s1");
    ASSERT_GE(events.size(), reported) << "round " << round;
    // Batches are all-or-nothing and written in order, so the stored seqs
    // are exactly 1..N with N at least what was reported.
    for (std::size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].seq, i + 1) << "gap or duplicate in round " << round;
      ASSERT_EQ(events[i].body, EventBody(i + 1));
    }
  }
  EXPECT_GT(reported, static_cast<std::uint64_t>(kRounds));
}

TEST_F(FleetStoreTest, GarbageFileIsAClearErrorNotACrash) {
  {
    std::ofstream out(path_, std::ios::binary);
    std::mt19937 random(7);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(random()));
  }
  auto store = OpenSqliteFleetStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("open fleet store " + path_), std::string::npos);
  EXPECT_NE(store.error().message.find("not a database"), std::string::npos)
      << store.error().message;
}

TEST_F(FleetStoreTest, DamagedSchemaPageIsAClearErrorNotACrash) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    Enroll(*store, "s1");
  }
  {
    // Page 1 past the 100-byte file header holds the schema table.
    std::fstream file(path_, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(100);
    for (int i = 0; i < 400; ++i) file.put(static_cast<char>(0xA5));
  }
  auto store = OpenSqliteFleetStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("malformed"), std::string::npos) << store.error().message;
}

TEST_F(FleetStoreTest, ForeignOrNewerDatabasesAreRefused) {
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE photos (id INTEGER)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
  }
  auto foreign = OpenSqliteFleetStore(path_);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.error().message.find("not a Custos fleet store"), std::string::npos)
      << foreign.error().message;

  fs::remove(path_);
  ASSERT_TRUE(Open() != nullptr) << "a fresh store";
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(raw, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(raw);
  }
  auto newer = OpenSqliteFleetStore(path_);
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.error().message.find("schema version 99 is newer"), std::string::npos)
      << newer.error().message;
}

}  // namespace
}  // namespace custos::fleet
