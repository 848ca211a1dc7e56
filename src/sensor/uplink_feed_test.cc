#include "sensor/uplink_feed.h"

#include <gtest/gtest.h>

#include <thread>

namespace custos::sensor {
namespace {

TEST(UplinkFeed, QueuesOnlyTheUplinkTopicsInOrder) {
  UplinkFeed feed;
  feed.SetTopics({"dns", "alert"});
  feed.Offer("dns", "pdns", "1");
  feed.Offer("flow", "meter", "x");
  feed.Offer("alert", "ids", "2");
  feed.Offer("dns", "pdns", "3");
  auto events = feed.Take();
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].payload, "1");
  EXPECT_EQ((*events)[1].topic, "alert");
  EXPECT_EQ((*events)[1].instrument, "ids");
  EXPECT_EQ((*events)[2].payload, "3");
  EXPECT_EQ(feed.Counters().offered, 3u);

  feed.SetTopics({"flow"});
  feed.Offer("dns", "pdns", "4");
  feed.Offer("flow", "meter", "5");
  events = feed.Take();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].payload, "5");
}

TEST(UplinkFeed, AFullQueueDropsAndCounts) {
  UplinkFeed feed(100);
  feed.SetTopics({"t"});
  for (int i = 0; i < 10; ++i) feed.Offer("t", "i", std::string(20, 'x'));  // 22 bytes each
  auto counters = feed.Counters();
  EXPECT_EQ(counters.offered, 10u);
  EXPECT_EQ(counters.queued, 4u);
  EXPECT_EQ(counters.dropped_full, 6u);
  EXPECT_EQ(feed.Take()->size(), 4u);
  feed.Offer("t", "i", "room again");
  EXPECT_EQ(feed.Counters().queued, 1u);
}

TEST(UplinkFeed, CloseWakesTheWriterAfterItDrains) {
  UplinkFeed feed;
  feed.SetTopics({"t"});
  std::vector<std::string> taken;
  std::thread writer([&] {
    while (auto events = feed.Take()) {
      for (auto& event : *events) taken.push_back(event.payload);
    }
  });
  feed.Offer("t", "i", "a");
  feed.Offer("t", "i", "b");
  feed.Close();
  writer.join();
  EXPECT_EQ(taken, (std::vector<std::string>{"a", "b"}));
  feed.Offer("t", "i", "late");
  EXPECT_EQ(feed.Counters().queued, 0u);
}

}  // namespace
}  // namespace custos::sensor
