// The uplink against a test fleet in another process (uplink_test_peer
// fleet): real mutual TLS 1.3 from src/crypto, real WebSocket, real spool
// files, real SIGKILLs. The fleet's store is a file it fsyncs before each
// ack; every test counts every event in it.
#include "sensor/uplink.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <thread>

#include "common/files.h"
#include "crypto/test_authority.h"
#include "sensor/uplink_test_support.h"

namespace custos::sensor {
namespace {

namespace fs = std::filesystem;
using crypto::testing::Must;
using crypto::testing::TempDir;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::Field;
using testing::Peer;
using testing::ReadStore;
using testing::StoredLine;

constexpr char kPeer[] = UPLINK_TEST_PEER;

// For state that has no event to wait on (the uplink's counters): checks
// every 20 ms until `timeout`.
template <typename Predicate>
bool Eventually(Predicate predicate, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return predicate();
}

std::string Payload(std::uint64_t id, std::size_t pad = 0) {
  return json{{"id", id}, {"pad", std::string(pad, 'x')}}.dump();
}

// Checks that the store holds the events 0..count-1 once each, in seq order.
void ExpectExactlyOnce(const std::vector<StoredLine>& stored, std::uint64_t count) {
  ASSERT_EQ(stored.size(), count);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    auto event = json::parse(stored[i].event);
    ASSERT_EQ(event["id"].get<std::uint64_t>(), i) << "at store line " << i;
    if (i > 0) {
      ASSERT_GT(stored[i].seq, stored[i - 1].seq) << "at store line " << i;
    }
  }
}

// The sensor's own thread, as sensord's event loop is: runs posted tasks.
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
  std::thread::id id() const { return thread_.get_id(); }

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

class UplinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::testing::InitTestAuthority(dir_.path() / "ca");
    authority_.emplace(Must(crypto::IssuingAuthority::Load(dir_.path() / "ca")));
    feed_ = std::make_shared<UplinkFeed>();
    feed_->SetTopics({"dns"});
  }

  // Starts the test fleet; its port becomes port_.
  std::unique_ptr<Peer> StartFleet(std::vector<std::string> extra = {},
                                   const fs::path& authority = {}) {
    std::vector<std::string> argv = {
        kPeer,         "fleet",
        "--authority", (authority.empty() ? dir_.path() / "ca" : authority).string(),
        "--store",     store_.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto fleet = std::make_unique<Peer>(argv);
    auto listening = fleet->WaitFor("listening ", seconds(20));
    if (!listening) throw std::runtime_error("the test fleet did not start");
    port_ = static_cast<std::uint16_t>(Field(*listening, "listening"));
    return fleet;
  }

  void WriteIdentity() {
    testing::WriteTestIdentity(identity_, *authority_, "sensor-1",
                               FleetEndpoint{"127.0.0.1", port_});
  }

  UplinkOptions Options() {
    UplinkOptions options;
    options.identity = Must(LoadFleetIdentity(identity_));
    options.spool_dir = spool_;
    options.data_root = dir_.path().string();
    options.backoff_initial = milliseconds(100);
    options.backoff_max = seconds(1);
    return options;
  }

  std::unique_ptr<Uplink> StartUplink(const UplinkOptions& options, UplinkHooks hooks = {}) {
    return Must(Uplink::Start(options, feed_, std::move(hooks)));
  }

  void Offer(std::uint64_t from, std::uint64_t to, std::size_t pad = 0) {
    for (std::uint64_t id = from; id < to; ++id) feed_->Offer("dns", "ids", Payload(id, pad));
  }

  TempDir dir_;
  std::optional<crypto::IssuingAuthority> authority_;
  fs::path identity_ = dir_.path() / "identity";
  fs::path spool_ = dir_.path() / "spool";
  fs::path store_ = dir_.path() / "store.jsonl";
  std::uint16_t port_ = 0;
  std::shared_ptr<UplinkFeed> feed_;
};

TEST_F(UplinkTest, SendsEventsInOrderAndForgetsOnlyAcknowledgedOnes) {
  fs::path heartbeat_file = dir_.path() / "heartbeat.json";
  auto fleet = StartFleet({"--heartbeat-file", heartbeat_file.string()});
  WriteIdentity();
  auto uplink = StartUplink(Options());
  uplink->SetLocalStatus(
      {{"instruments", {{{"name", "ids"}, {"state", "running"}, {"restarts", 2}}}},
       {"events", {{"dns", 1200}}}});
  auto connected = fleet->WaitFor("connected ", seconds(20));
  ASSERT_TRUE(connected);

  for (std::uint64_t id = 0; id < 1200; ++id) {
    feed_->Offer("dns", "ids", Payload(id));
    feed_->Offer("flow", "meter", "{}");  // not in policy.uplink
  }
  ASSERT_TRUE(fleet->WaitForStored(1200, seconds(60)));
  auto stored = ReadStore(store_);
  ExpectExactlyOnce(stored, 1200);
  for (std::size_t i = 1; i < stored.size(); ++i) {
    ASSERT_EQ(stored[i].seq, stored[i - 1].seq + 1);
  }
  EXPECT_EQ(stored[0].topic, "dns");
  EXPECT_EQ(stored[0].instrument, "ids");
  // hello names the first unacknowledged seq: the first event's, here.
  EXPECT_EQ(Field(*connected, "spool"), stored[0].seq);
  // A brand-new spool starts at the clock in microseconds, not at 1.
  EXPECT_GT(stored[0].seq, 1'600'000'000'000'000ull);

  // The acks reach the spool, which then holds nothing.
  EXPECT_TRUE(
      Eventually([&] { return uplink->StatusJson()["spool"]["pending"].get<std::uint64_t>() == 0; },
                 seconds(10)));
  auto status = uplink->StatusJson();
  EXPECT_TRUE(status["connected"].get<bool>());
  EXPECT_EQ(status["sensor_id"], "sensor-1");
  EXPECT_EQ(status["spool"]["acked_seq"].get<std::uint64_t>(), stored.back().seq);
  EXPECT_EQ(status["events_sent"].get<std::uint64_t>(), 1200u);

  ASSERT_TRUE(fleet->WaitFor("heartbeat", seconds(5)));
  auto heartbeat = json::parse(Must(ReadFile(heartbeat_file)));
  const json& health = heartbeat["health"];
  EXPECT_EQ(health["instruments"][0]["name"], "ids");
  EXPECT_EQ(health["instruments"][0]["restarts"], 2);
  EXPECT_EQ(health["counters"]["events"]["dns"], 1200);
  EXPECT_GT(health["disk"]["data_root_free_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(health["load"].size(), 3u);
  EXPECT_EQ(health["spool"]["pending"], 0);
  EXPECT_EQ(health["spool"]["dropped_full"], 0);
  EXPECT_FALSE(health["locked"].get<bool>());

  // Stop closes the channel politely, promptly.
  auto started = std::chrono::steady_clock::now();
  uplink->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, seconds(3));
  auto gone = fleet->WaitFor("disconnected", seconds(5));
  ASSERT_TRUE(gone);
  EXPECT_NE(gone->find("closed"), std::string::npos) << *gone;
}

TEST_F(UplinkTest, CutMidBatchAndFleetRestartLoseNothingAndStoreNothingTwice) {
  auto fleet = StartFleet({"--cut-batch", "2", "--ack-delay-ms", "5"});
  std::uint16_t port = port_;
  WriteIdentity();
  auto uplink = StartUplink(Options());
  Offer(0, 3000);
  auto first_wave = fleet->WaitForStored(3000, seconds(60));
  ASSERT_TRUE(first_wave);
  EXPECT_NE(std::find(fleet->lines().begin(), fleet->lines().end(), "cut"), fleet->lines().end());
  // The half of the cut batch that was stored came again and was stored
  // once; nothing acknowledged came again.
  EXPECT_GT(Field(*first_wave, "duplicates"), 0u) << *first_wave;
  EXPECT_EQ(Field(*first_wave, "resent_after_ack"), 0u) << *first_wave;

  // The fleet dies in the middle of the second wave and comes back.
  Offer(3000, 6000);
  ASSERT_TRUE(fleet->WaitForStored(3500, seconds(60)));
  fleet->Signal(SIGKILL);
  fleet->Wait();
  auto restarted = StartFleet({"--port", std::to_string(port), "--ack-delay-ms", "5"});
  ASSERT_TRUE(restarted->WaitFor("connected ", seconds(20)));
  ASSERT_TRUE(restarted->WaitForStored(6000, seconds(60)));
  ExpectExactlyOnce(ReadStore(store_), 6000);
  EXPECT_TRUE(
      Eventually([&] { return uplink->StatusJson()["spool"]["pending"].get<std::uint64_t>() == 0; },
                 seconds(10)));
}

TEST_F(UplinkTest, KilledSensorResendsWhatWasNotAcknowledged) {
  auto fleet = StartFleet({"--ack-delay-ms", "10"});
  WriteIdentity();
  std::vector<std::string> sensor_argv = {kPeer,     "sensor", "--identity", identity_,
                                          "--spool", spool_,   "--prefill",  "20000"};
  auto sensor = std::make_unique<Peer>(sensor_argv);
  ASSERT_TRUE(sensor->WaitFor("started", seconds(60)));
  auto partial = fleet->WaitForStored(2000, seconds(60));
  ASSERT_TRUE(partial);
  sensor->Signal(SIGKILL);
  EXPECT_EQ(sensor->Wait(), 128 + SIGKILL);
  std::printf("sensor killed with %llu of 20000 events stored\n",
              static_cast<unsigned long long>(testing::StoredCount(*partial)));

  sensor_argv.resize(6);  // no prefill: the spool holds what is left
  auto again = std::make_unique<Peer>(sensor_argv);
  auto reconnected = fleet->WaitFor("connected ", seconds(20));
  ASSERT_TRUE(reconnected);
  ASSERT_TRUE(fleet->WaitForStored(20000, seconds(120)));
  ExpectExactlyOnce(ReadStore(store_), 20000);

  again->Signal(SIGTERM);
  EXPECT_TRUE(again->WaitFor("stopped", seconds(10)));
  EXPECT_EQ(again->Wait(), 0);
  EXPECT_TRUE(fleet->WaitFor("disconnected", seconds(5)));
}

// Accepts connections and drops them at once, noting when each came.
std::vector<std::chrono::steady_clock::time_point> AcceptAndDrop(int listener, std::size_t count,
                                                                 milliseconds timeout) {
  std::vector<std::chrono::steady_clock::time_point> times;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (times.size() < count) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd poll_fd{listener, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) continue;
    int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;
    times.push_back(std::chrono::steady_clock::now());
    ::close(connection);
  }
  return times;
}

UniqueFd LoopbackSocket(std::uint16_t& port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    throw std::runtime_error("bind failed");
  }
  socklen_t length = sizeof address;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

TEST_F(UplinkTest, ReconnectsWithExponentialBackoffAndJitter) {
  UniqueFd listener = LoopbackSocket(port_);
  ASSERT_EQ(::listen(listener.get(), 16), 0);
  WriteIdentity();
  auto options = Options();
  options.backoff_initial = milliseconds(200);
  options.backoff_max = milliseconds(1600);
  auto uplink = StartUplink(options);
  auto times = AcceptAndDrop(listener.get(), 7, seconds(30));
  ASSERT_EQ(times.size(), 7u);
  const double bases[] = {200, 400, 800, 1600, 1600, 1600};
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    double waited = std::chrono::duration<double, std::milli>(times[i + 1] - times[i]).count();
    EXPECT_GE(waited, 0.8 * bases[i] - 30) << "attempt " << i + 1;
    EXPECT_LE(waited, 1.2 * bases[i] + 300) << "attempt " << i + 1;
  }
  auto status = uplink->StatusJson();
  EXPECT_FALSE(status["connected"].get<bool>());
  EXPECT_GE(status["connect_attempts"].get<std::uint64_t>(), 7u);
  EXPECT_NE(status["last_error"].get<std::string>().find("TLS handshake"), std::string::npos)
      << status["last_error"];

  // The fleet appears on that port: the next attempt gets through.
  listener.reset();
  auto fleet = StartFleet({"--port", std::to_string(port_)});
  ASSERT_TRUE(fleet->WaitFor("connected ", seconds(10)));
  EXPECT_TRUE(
      Eventually([&] { return uplink->StatusJson()["connected"].get<bool>(); }, seconds(5)));
}

TEST_F(UplinkTest, RefusesAFleetWhoseCertificateIsFromAnotherCa) {
  fs::path other = dir_.path() / "other-ca";
  crypto::testing::InitTestAuthority(other, "Other Fleet");
  auto fleet = StartFleet({}, other);
  WriteIdentity();
  auto uplink = StartUplink(Options());
  Offer(0, 10);
  EXPECT_TRUE(Eventually(
      [&] {
        return uplink->StatusJson()["last_error"].get<std::string>().find(
                   "certificate verify failed") != std::string::npos;
      },
      seconds(10)))
      << uplink->StatusJson().dump();
  EXPECT_FALSE(fleet->WaitFor("connected ", seconds(1)));
  EXPECT_FALSE(uplink->StatusJson()["connected"].get<bool>());
  EXPECT_EQ(uplink->StatusJson()["events_sent"], 0);
}

TEST_F(UplinkTest, FullSpoolRefusesNewEventsAndCountsThem) {
  // Nothing listens on the port yet: the spool can only fill.
  UniqueFd reserved = LoopbackSocket(port_);
  WriteIdentity();
  auto options = Options();
  options.spool_max_bytes = 2u << 20;
  auto uplink = StartUplink(options);
  Offer(0, 300, 20000);
  ASSERT_TRUE(Eventually(
      [&] {
        auto spool = uplink->StatusJson()["spool"];
        return spool["appended"].get<std::uint64_t>() +
                   spool["dropped_full"].get<std::uint64_t>() ==
               300;
      },
      seconds(30)))
      << uplink->StatusJson().dump();
  auto spool = uplink->StatusJson()["spool"];
  std::uint64_t accepted = spool["appended"];
  std::uint64_t dropped = spool["dropped_full"];
  EXPECT_GT(accepted, 0u);
  EXPECT_GT(dropped, 0u);
  EXPECT_LE(spool["pending_bytes"].get<std::uint64_t>(), 2u << 20);

  fs::path heartbeat_file = dir_.path() / "heartbeat.json";
  reserved.reset();
  auto fleet =
      StartFleet({"--port", std::to_string(port_), "--heartbeat-file", heartbeat_file.string()});
  ASSERT_TRUE(fleet->WaitForStored(accepted, seconds(60)));
  // What was accepted arrives whole: the first events, none refused later.
  ExpectExactlyOnce(ReadStore(store_), accepted);
  ASSERT_TRUE(fleet->WaitFor("heartbeat", seconds(5)));
  auto heartbeat = json::parse(Must(ReadFile(heartbeat_file)));
  EXPECT_EQ(heartbeat["health"]["spool"]["dropped_full"].get<std::uint64_t>(), dropped);

  // Acknowledged events free the room for new ones.
  ASSERT_TRUE(
      Eventually([&] { return uplink->StatusJson()["spool"]["pending"].get<std::uint64_t>() == 0; },
                 seconds(10)));
  for (std::uint64_t id = 0; id < 10; ++id) feed_->Offer("dns", "ids", Payload(accepted + id));
  ASSERT_TRUE(fleet->WaitForStored(accepted + 10, seconds(30)));
  ExpectExactlyOnce(ReadStore(store_), accepted + 10);
}

TEST_F(UplinkTest, DesiredStatesAndCommandsRunOnTheSensorsThread) {
  fs::path send = dir_.path() / "send.jsonl";
  std::ofstream(send)
      << R"({"type":"desired_state","stream":7,"version":7,"config":"policy: {}\n"})"
      << "\n"
      << R"({"type":"desired_state","stream":8,"version":8,"config":"nonsense"})"
      << "\n"
      << R"({"type":"command","stream":9,"command":"status"})"
      << "\n";
  auto fleet = StartFleet({"--send", send.string()});
  std::uint16_t port = port_;
  WriteIdentity();
  TaskThread sensor_thread;
  std::mutex seen_mutex;
  std::vector<std::thread::id> seen;
  std::vector<std::string> configs;
  UplinkHooks hooks;
  hooks.post = [&](std::function<void()> task) { sensor_thread.Post(std::move(task)); };
  hooks.apply_state = [&](std::uint64_t version, const std::string& config) -> Status {
    std::lock_guard lock(seen_mutex);
    seen.push_back(std::this_thread::get_id());
    configs.push_back(config);
    if (version == 8) return Error{"refused: not a map"};
    return {};
  };
  hooks.run_command = [&](const json& command) {
    std::lock_guard lock(seen_mutex);
    seen.push_back(std::this_thread::get_id());
    return json{{"ok", true}, {"output", {{"echo", command["command"]}}}};
  };
  auto uplink = StartUplink(Options(), hooks);

  std::vector<json> answers;
  for (int i = 0; i < 3; ++i) {
    auto line = fleet->WaitFor("message ", seconds(20));
    ASSERT_TRUE(line);
    answers.push_back(json::parse(line->substr(8)));
  }
  EXPECT_EQ(answers[0],
            json({{"type", "state_result"}, {"stream", 7}, {"version", 7}, {"ok", true}}));
  EXPECT_EQ(answers[1]["type"], "state_result");
  EXPECT_EQ(answers[1]["stream"], 8);
  EXPECT_FALSE(answers[1]["ok"].get<bool>());
  EXPECT_EQ(answers[1]["error"], "refused: not a map");
  EXPECT_EQ(answers[2], json({{"type", "command_result"},
                              {"stream", 9},
                              {"ok", true},
                              {"output", {{"echo", "status"}}}}));
  {
    std::lock_guard lock(seen_mutex);
    ASSERT_EQ(seen.size(), 3u);
    for (auto id : seen) EXPECT_EQ(id, sensor_thread.id());
    EXPECT_EQ(configs[0], "policy: {}\n");
  }
  EXPECT_EQ(uplink->StatusJson()["state_version"], 7);

  // After a reconnect, hello reports the version applied.
  fleet->Signal(SIGKILL);
  fleet->Wait();
  auto restarted = StartFleet({"--port", std::to_string(port)});
  auto hello = restarted->WaitFor("connected ", seconds(20));
  ASSERT_TRUE(hello);
  EXPECT_EQ(Field(*hello, "state_version"), 7u) << *hello;
  uplink->Stop();
}

}  // namespace
}  // namespace custos::sensor
