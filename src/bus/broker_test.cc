// The broker with real unix sockets and SDK clients, without containers
// (the system tests add those).
#include "bus/broker.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "custos/bus_client.h"

namespace custos::bus {
namespace {
namespace fs = std::filesystem;
using std::chrono::milliseconds;

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/custos-bus-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    BrokerLimits limits;
    limits.queue_bytes = 64 * 1024;
    auto broker = Broker::Start(limits);
    ASSERT_TRUE(broker.ok());
    broker_ = std::move(*broker);
    BusPolicy policy;
    policy.publish["pub"] = {"flow", "dns"};
    policy.subscribe["sub"] = {"flow"};
    policy.subscribe["other"] = {"flow", "dns"};
    policy.messages.insert({"pub", "sub", "config"});
    policy.messages.insert({"pub", "sub", kFileMessageType});
    broker_->SetPolicy(policy);
    for (const char* name : {"pub", "sub", "other"}) {
      fs::create_directories(dir_ + "/" + name + "/data");
      ASSERT_TRUE(broker_
                      ->AddEndpoint({name, Socket(name), ::getuid(), dir_ + "/" + name + "/data",
                                     std::string(R"({"instrument":")") + name +
                                         R"(","retention_seconds":60})"})
                      .ok());
    }
  }
  void TearDown() override {
    broker_.reset();
    fs::remove_all(dir_);
  }
  std::string Socket(const std::string& name) { return dir_ + "/" + name + ".sock"; }
  BusClient Connect(const std::string& name) {
    auto client = BusClient::Connect(Socket(name));
    EXPECT_TRUE(client.ok()) << client.error().message;
    return std::move(*client);
  }

  std::string dir_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerTest, StampsTheSenderAndDeliversToSubscribersOnly) {
  auto pub = Connect("pub");
  auto sub = Connect("sub");
  auto other = Connect("other");
  EXPECT_EQ(pub.name(), "pub");
  ASSERT_TRUE(sub.Subscribe("flow").ok());
  ASSERT_TRUE(other.Subscribe("dns").ok());
  ASSERT_TRUE(pub.Publish("flow", R"({"event_type":"flow"})").ok());
  auto event = sub.Receive(milliseconds(2000));
  ASSERT_TRUE(event.ok() && event->has_value());
  EXPECT_EQ((*event)->sender, "pub");
  EXPECT_EQ((*event)->topic, "flow");
  auto nothing = other.Receive(milliseconds(200));
  ASSERT_TRUE(nothing.ok());
  EXPECT_FALSE(nothing->has_value()) << "a dns subscriber got a flow event";
}

TEST_F(BrokerTest, RefusesWhatPolicyDoesNotList) {
  auto pub = Connect("pub");
  auto sub = Connect("sub");
  auto subscribed = sub.Subscribe("dns");
  ASSERT_FALSE(subscribed.ok());
  EXPECT_NE(subscribed.error().message.find("sub may not subscribe to topic 'dns'"),
            std::string::npos);
  auto sent = sub.Send("pub", "config", "{}");
  ASSERT_FALSE(sent.ok());
  EXPECT_NE(
      sent.error().message.find("policy.messages needs {from: sub, to: pub, types: [config]}"),
      std::string::npos)
      << sent.error().message;
  ASSERT_TRUE(sub.Publish("flow", "{}").ok());
  auto error = sub.Receive(milliseconds(2000));
  ASSERT_TRUE(error.ok() && error->has_value());
  EXPECT_EQ((*error)->kind, BusMessage::Kind::kError);
  EXPECT_NE((*error)->payload.find("may not publish"), std::string::npos);
  EXPECT_EQ(broker_->Stats()["sub"].refused, 3u);
}

TEST_F(BrokerTest, RequestAndReplyReachOnlyTheirPeers) {
  auto pub = Connect("pub");
  auto sub = Connect("sub");
  auto other = Connect("other");
  ASSERT_TRUE(other.Subscribe("flow").ok());
  std::thread server([&] {
    auto request = sub.Receive(milliseconds(5000));
    ASSERT_TRUE(request.ok() && request->has_value());
    EXPECT_EQ((*request)->sender, "pub");
    EXPECT_EQ((*request)->type, "config");
    EXPECT_TRUE((*request)->wants_reply);
    ASSERT_TRUE(sub.Reply(**request, "applied " + (*request)->payload).ok());
  });
  auto reply = pub.Request("sub", "config", "v2", milliseconds(5000));
  server.join();
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(*reply, "applied v2");
  auto seen = other.Receive(milliseconds(200));
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->has_value());
  // An unsolicited reply is refused.
  BusMessage fake;
  fake.sender = "pub";
  fake.request_id = 999;
  fake.wants_reply = true;
  ASSERT_TRUE(sub.Reply(fake, "hi").ok());
  auto refusal = sub.Receive(milliseconds(2000));
  ASSERT_TRUE(refusal.ok() && refusal->has_value());
  EXPECT_NE((*refusal)->payload.find("no request 999"), std::string::npos);
}

TEST_F(BrokerTest, StuckSubscriberIsCountedAndDoesNotSlowOthers) {
  auto pub = Connect("pub");
  auto stuck = Connect("sub");
  auto other = Connect("other");
  ASSERT_TRUE(stuck.Subscribe("flow").ok());
  ASSERT_TRUE(other.Subscribe("flow").ok());
  pub.set_auto_flush(false);
  // The healthy subscriber keeps up, batch by batch; the stuck one reads nothing.
  constexpr int kBatches = 200;
  constexpr int kBatch = 100;
  constexpr int kEvents = kBatches * kBatch;
  std::string payload(200, 'x');
  std::atomic<int> received{0};
  std::thread reader([&] {
    while (received < kEvents) {
      auto event = other.Receive(milliseconds(5000));
      ASSERT_TRUE(event.ok() && event->has_value())
          << "the healthy subscriber stalled at " << received;
      ++received;
    }
  });
  for (int batch = 0; batch < kBatches; ++batch) {
    for (int i = 0; i < kBatch; ++i) ASSERT_TRUE(pub.Publish("flow", payload).ok());
    ASSERT_TRUE(pub.Flush().ok());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (received < (batch + 1) * kBatch && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  }
  reader.join();
  auto stats = broker_->Stats();
  EXPECT_EQ(stats["other"].topics["flow"].delivered, static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(stats["other"].topics["flow"].dropped, 0u);
  EXPECT_GT(stats["sub"].topics["flow"].dropped, 0u);
  EXPECT_EQ(stats["sub"].topics["flow"].delivered + stats["sub"].topics["flow"].dropped,
            static_cast<std::uint64_t>(kEvents));
}

TEST_F(BrokerTest, BadFrameClosesOnlyThatConnection) {
  auto sub = Connect("sub");
  ASSERT_TRUE(sub.Subscribe("flow").ok());
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string path = Socket("pub");
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int raw = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(raw, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const char garbage[] = "\xff\xff\xff\xff\x01\x03\x00\x00garbage";
  ASSERT_GT(::write(raw, garbage, sizeof garbage), 0);
  std::string reply;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(raw, buffer, sizeof buffer)) > 0) reply.append(buffer, static_cast<size_t>(n));
  ::close(raw);
  EXPECT_NE(reply.find("exceeds the limit"), std::string::npos)
      << "an error reply names the problem";
  auto pub = Connect("pub");
  ASSERT_TRUE(pub.Publish("flow", "{}").ok());
  auto event = sub.Receive(milliseconds(2000));
  ASSERT_TRUE(event.ok() && event->has_value()) << "other clients keep working";
  EXPECT_EQ(broker_->Stats()["pub"].malformed, 1u);
}

TEST_F(BrokerTest, ClientCannotSendBrokerFrames) {
  auto pub = Connect("pub");
  auto sub = Connect("sub");
  ASSERT_TRUE(sub.Subscribe("flow").ok());
  // A forged event naming another sender, written raw on pub's connection.
  std::string forged;
  EncodeEvent("flow", "other", "{}", forged);
  ASSERT_EQ(::write(pub.fd(), forged.data(), forged.size()), static_cast<ssize_t>(forged.size()));
  auto error = pub.Receive(milliseconds(2000));
  ASSERT_TRUE(error.ok() && error->has_value());
  EXPECT_NE((*error)->payload.find("sent by the broker only"), std::string::npos);
  auto nothing = sub.Receive(milliseconds(200));
  ASSERT_TRUE(nothing.ok());
  EXPECT_FALSE(nothing->has_value());
}

TEST_F(BrokerTest, FilesLandInTheRecipientsInboxOnly) {
  auto pub = Connect("pub");
  auto sub = Connect("sub");
  int memfd = ::memfd_create("rules", MFD_CLOEXEC);
  ASSERT_EQ(::write(memfd, "alert tcp any any\n", 18), 18);
  ASSERT_TRUE(pub.SendFile(memfd, "rules.txt", {"sub"}).ok());
  auto refused = pub.SendFile(memfd, "rules.txt", {"other"});
  EXPECT_FALSE(refused.ok());
  ::close(memfd);
  auto notice = sub.Receive(milliseconds(2000));
  ASSERT_TRUE(notice.ok() && notice->has_value());
  EXPECT_EQ((*notice)->kind, BusMessage::Kind::kFile);
  EXPECT_EQ((*notice)->sender, "pub");
  std::string inside = (*notice)->payload;  // /data/inbox/N-rules.txt
  ASSERT_EQ(inside.rfind("/data/inbox/", 0), 0u) << inside;
  std::ifstream copy(dir_ + "/sub/data" + inside.substr(5));
  std::string line;
  std::getline(copy, line);
  EXPECT_EQ(line, "alert tcp any any");
  EXPECT_FALSE(fs::exists(dir_ + "/other/data/inbox"));
}

TEST_F(BrokerTest, InboxSymlinkIsNotFollowed) {
  auto pub = Connect("pub");
  fs::create_directories(dir_ + "/elsewhere");
  fs::create_directory_symlink(dir_ + "/elsewhere", dir_ + "/sub/data/inbox");
  int memfd = ::memfd_create("rules", MFD_CLOEXEC);
  ASSERT_EQ(::write(memfd, "x", 1), 1);
  auto sent = pub.SendFile(memfd, "rules.txt", {"sub"});
  ::close(memfd);
  EXPECT_FALSE(sent.ok());
  EXPECT_TRUE(fs::is_empty(dir_ + "/elsewhere"));
}

TEST_F(BrokerTest, SettingsComeFromThePlatform) {
  auto sub = Connect("sub");
  auto settings = sub.Settings();
  ASSERT_TRUE(settings.ok());
  EXPECT_NE(settings->find(R"("retention_seconds":60)"), std::string::npos);
}

}  // namespace
}  // namespace custos::bus
