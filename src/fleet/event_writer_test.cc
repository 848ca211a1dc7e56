#include "fleet/event_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <thread>

#include "crypto/test_authority.h"

namespace custos::fleet {
namespace {

using crypto::testing::Must;
using crypto::testing::TempDir;

std::vector<IncomingEvent> Events(std::uint64_t first, std::uint64_t last) {
  std::vector<IncomingEvent> events;
  for (std::uint64_t seq = first; seq <= last; ++seq) {
    events.push_back({seq, R"({"event_type":"dns","n":)" + std::to_string(seq) + "}"});
  }
  return events;
}

class EventWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Must(OpenSqliteFleetStore(dir_.path() / "fleet.db"));
    auto expires = std::chrono::system_clock::now() + std::chrono::hours(1);
    for (const char* id : {"s1", "s2", "s3"}) {
      std::string token = std::string("token-") + id;
      Must(store_->AddEnrollmentToken(token, "acme", expires));
      Must(store_->EnrollSensor(token, {id, std::string("serial-") + id, "fp"}));
    }
    Must(store_->RevokeSensor("s3"));
  }

  std::size_t Stored(const std::string& sensor) {
    EventQuery query;
    query.sensor_id = sensor;
    query.limit = kMaxQueryLimit;
    std::size_t count = 0;
    for (;;) {
      auto page = Must(store_->QueryEvents(query));
      count += page.events.size();
      if (page.next_after_id == 0) return count;
      query.after_id = page.next_after_id;
    }
  }

  TempDir dir_;
  std::unique_ptr<FleetStore> store_;
};

TEST_F(EventWriterTest, BatchesOfSeveralSensorsShareATransactionButFailAlone) {
  auto outcomes = Must(store_->StoreEventBatches({{"s1", Events(1, 10)},
                                                  {"s2", Events(5, 7)},
                                                  {"s3", Events(1, 3)},
                                                  {"nobody", Events(1, 3)},
                                                  {"s1", Events(8, 12)},
                                                  {"s2", {{0, "{}"}}}}));
  ASSERT_EQ(outcomes.size(), 6u);
  ASSERT_TRUE(outcomes[0].ok());
  EXPECT_EQ(outcomes[0]->acknowledge_seq, 10u);
  EXPECT_EQ(outcomes[0]->inserted, 10u);
  EXPECT_EQ(outcomes[1]->acknowledge_seq, 7u);
  ASSERT_FALSE(outcomes[2].ok());
  EXPECT_NE(outcomes[2].error().message.find("revoked"), std::string::npos);
  ASSERT_FALSE(outcomes[3].ok());
  EXPECT_NE(outcomes[3].error().message.find("unknown"), std::string::npos);
  // Later in the same transaction, a batch overlapping an earlier one.
  EXPECT_EQ(outcomes[4]->inserted, 2u);
  EXPECT_EQ(outcomes[4]->duplicates, 3u);
  EXPECT_FALSE(outcomes[5].ok());
  EXPECT_EQ(Stored("s1"), 12u);
  EXPECT_EQ(Stored("s2"), 3u);
  EXPECT_EQ(Stored("s3"), 0u);
}

TEST_F(EventWriterTest, ReportsEveryBatchInSubmissionOrder) {
  EventWriter writer(*store_, 50);
  constexpr int kThreads = 4, kBatches = 60;
  std::mutex mutex;
  std::map<std::string, std::vector<std::uint64_t>> acks;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string sensor = t % 2 == 0 ? "s1" : "s2";
      for (int b = 0; b < kBatches; ++b) {
        std::uint64_t first = static_cast<std::uint64_t>(t * 100000 + b * 10 + 1);
        writer.Submit(sensor, Events(first, first + 9),
                      [&, sensor](const Result<StoreEventsResult>& outcome) {
                        std::lock_guard lock(mutex);
                        if (!outcome.ok()) {
                          ++failures;
                          return;
                        }
                        acks[sensor].push_back(outcome->acknowledge_seq);
                      });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::promise<void> revoked_done;
  writer.Submit("s3", Events(1, 2), [&](const Result<StoreEventsResult>& outcome) {
    EXPECT_FALSE(outcome.ok());
    revoked_done.set_value();
  });
  writer.Stop();  // stores what is queued first
  ASSERT_EQ(revoked_done.get_future().wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Stored("s1") + Stored("s2"), static_cast<std::size_t>(kThreads * kBatches * 10));
  std::size_t total = 0;
  for (const auto& [sensor, seqs] : acks) total += seqs.size();
  EXPECT_EQ(total, static_cast<std::size_t>(kThreads * kBatches));
  // Per submitting thread, acks come back in the order batches went in.
  std::map<int, std::uint64_t> last_per_thread;
  for (const auto& [sensor, seqs] : acks) {
    for (std::uint64_t seq : seqs) {
      int thread = static_cast<int>(seq / 100000);
      EXPECT_GT(seq, last_per_thread[thread]) << sensor;
      last_per_thread[thread] = seq;
    }
  }
  writer.Submit("s1", Events(900000, 900001), [&](const Result<StoreEventsResult>& outcome) {
    EXPECT_FALSE(outcome.ok());  // after Stop
  });
}

}  // namespace
}  // namespace custos::fleet
