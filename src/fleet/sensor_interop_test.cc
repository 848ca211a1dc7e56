// fleetd against the real sensor side (src/sensor: enrollment client and
// uplink), both built from this tree: the two halves of
// docs/fleet-protocol.md must agree, not just each match its own test peer.
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <thread>

#include "fleet/fleet_test_support.h"
#include "sensor/enrollment.h"
#include "sensor/uplink.h"

namespace custos::fleet {
namespace {

using crypto::testing::Must;
using crypto::testing::TempDir;
using nlohmann::json;
using testing::TestFleet;

// Stands in for sensord's event loop: runs the uplink's posted tasks.
class TaskThread {
 public:
  TaskThread() : thread_([this] { Run(); }) {}
  ~TaskThread() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return done_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool done_ = false;
  std::thread thread_;
};

// Neither side announces these moments, so they are polled, with a deadline.
template <typename Condition>
bool Eventually(Condition condition, std::chrono::seconds limit = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

std::size_t StoredCount(TestFleet& fleet, const std::string& sensor_id) {
  EventQuery query;
  query.sensor_id = sensor_id;
  query.limit = kMaxQueryLimit;
  std::size_t count = 0;
  for (;;) {
    auto page = Must(fleet.store().QueryEvents(query));
    count += page.events.size();
    if (page.next_after_id == 0) return count;
    query.after_id = page.next_after_id;
  }
}

TEST(SensorInteropTest, EnrollStreamApplyStateAndRevoke) {
  TestFleet fleet;
  TempDir sensor_dir;
  sensor::EnrollOptions enroll;
  enroll.fleet = "127.0.0.1:" + std::to_string(fleet.api_port());
  enroll.token = fleet.CreateToken("acme");
  enroll.identity_dir = sensor_dir.path() / "identity";
  enroll.name = "interop";
  auto enrolled = sensor::Enroll(enroll);
  ASSERT_TRUE(enrolled.ok()) << enrolled.error().message;
  EXPECT_EQ(enrolled->tenant, "acme");
  EXPECT_EQ(enrolled->channel.port, fleet.channel_port());
  EXPECT_EQ(Must(fleet.store().GetSensor(enrolled->sensor_id))->name, "interop");

  TaskThread sensor_thread;
  std::promise<std::pair<std::uint64_t, std::string>> applied;
  sensor::UplinkHooks hooks;
  hooks.post = [&](std::function<void()> task) { sensor_thread.Post(std::move(task)); };
  hooks.apply_state = [&](std::uint64_t version, const std::string& config) -> Status {
    applied.set_value({version, config});
    return {};
  };
  hooks.run_command = [](const json&) { return json{{"ok", false}}; };
  sensor::UplinkOptions options;
  options.identity = Must(sensor::LoadFleetIdentity(enroll.identity_dir));
  options.spool_dir = sensor_dir.path() / "spool";
  options.heartbeat = std::chrono::seconds(1);
  auto feed = std::make_shared<sensor::UplinkFeed>();
  feed->SetTopics({"dns"});
  auto uplink = Must(sensor::Uplink::Start(options, feed, hooks));

  for (int i = 0; i < 1200; ++i) {
    json event = {
        {"timestamp", "2026-11-23T10:00:00.000000+0000"}, {"event_type", "dns"}, {"n", i}};
    feed->Offer("dns", "dnsmon", event.dump());
  }
  const std::string id = enrolled->sensor_id;
  EXPECT_TRUE(Eventually([&] { return StoredCount(fleet, id) == 1200; }))
      << StoredCount(fleet, id) << " stored; uplink: " << uplink->StatusJson().dump();
  EXPECT_TRUE(Eventually([&] { return uplink->StatusJson()["spool"]["pending"] == 0; }))
      << uplink->StatusJson().dump();
  auto shown = fleet.Call("GET", "/v1/sensors/" + id);
  EXPECT_EQ(shown.body["connected"], true) << shown.text;

  const std::string config = "policy:\n  uplink: [dns]\ninstruments: []\n";
  auto put =
      fleet.Call("PUT", "/v1/sensors/" + id + "/desired-state", json{{"config", config}}.dump());
  ASSERT_EQ(put.status, 200) << put.text;
  auto future = applied.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto state = future.get();
  EXPECT_EQ(state.first, 1u);
  EXPECT_EQ(state.second, config);
  EXPECT_TRUE(
      Eventually([&] { return Must(fleet.store().GetDesiredState(id)).applied_version == 1; }));

  auto revoked = fleet.Call("POST", "/v1/sensors/" + id + "/revoke");
  ASSERT_EQ(revoked.status, 200) << revoked.text;
  EXPECT_TRUE(Eventually([&] { return uplink->StatusJson()["connected"] == false; },
                         std::chrono::seconds(2)))
      << uplink->StatusJson().dump();
  // It keeps trying and keeps being refused.
  EXPECT_TRUE(Eventually([&] { return uplink->StatusJson()["connect_attempts"].get<int>() >= 2; }))
      << uplink->StatusJson().dump();
  EXPECT_FALSE(fleet.server().core().registry->Live(id).has_value());
  uplink->Stop();
}

}  // namespace
}  // namespace custos::fleet
