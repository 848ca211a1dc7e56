// Benchmarks the message bus against NATS on the same work in the same run:
// events per second from one publisher to one and to four subscribers (64
// and 512-byte payloads), and latency p50/p99 at a fixed 10,000 events/s.
// Our side: the broker (as in sensord) with SDK clients over unix sockets.
// The peer: Debian's nats-server on loopback with the libnats C client.
// Prints BENCH lines; `.peer` lines are NATS.
#include <fcntl.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "bus/broker.h"
#include "common/process.h"
#include "custos/bus_client.h"

namespace custos {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct LatencySamples {
  std::mutex mutex;
  std::vector<double> micros;
  void Add(std::int64_t sent_ns) {
    double us = static_cast<double>(NowNs() - sent_ns) / 1000.0;
    std::lock_guard lock(mutex);
    micros.push_back(us);
  }
  double Percentile(double p) {
    std::sort(micros.begin(), micros.end());
    if (micros.empty()) return -1;
    return micros[std::min(micros.size() - 1,
                           static_cast<size_t>(p * static_cast<double>(micros.size())))];
  }
};

// Publishes `count` events; when `rate` > 0, paced at that many per second
// with the send time in the first 8 bytes of each payload.
template <typename PublishFn, typename FlushFn>
void PublishLoop(long count, size_t bytes, long rate, PublishFn publish, FlushFn flush) {
  std::string payload(bytes, 'x');
  auto start = Clock::now();
  for (long i = 0; i < count; ++i) {
    if (rate > 0) {
      // Sleep, not spin: a real instrument does not burn a core between events.
      std::this_thread::sleep_until(start + std::chrono::nanoseconds(i * 1'000'000'000 / rate));
      std::int64_t now = NowNs();
      std::memcpy(payload.data(), &now, sizeof now);
      publish(payload);
      flush();
    } else {
      publish(payload);
    }
  }
  flush();
}

// ---- our bus --------------------------------------------------------------

struct OurBus {
  std::string dir;
  std::unique_ptr<bus::Broker> broker;

  OurBus() {
    char pattern[] = "/tmp/custos-busbench-XXXXXX";
    dir = ::mkdtemp(pattern);
    bus::BrokerLimits limits;
    limits.queue_bytes = 512u << 20;  // measure throughput, not drops
    broker = std::move(*bus::Broker::Start(limits));
    bus::BusPolicy policy;
    policy.publish["pub"] = {"flow"};
    for (int i = 0; i < 4; ++i) policy.subscribe["sub" + std::to_string(i)] = {"flow"};
    broker->SetPolicy(policy);
    for (const char* name : {"pub", "sub0", "sub1", "sub2", "sub3"}) {
      (void)broker->AddEndpoint({name, dir + "/" + name + ".sock", ::getuid(), dir, "{}"});
    }
  }
  ~OurBus() {
    broker.reset();
    fs::remove_all(dir);
  }

  // Returns events per second; fills `latency` when rate > 0.
  double Run(int subscribers, long count, size_t bytes, long rate, LatencySamples* latency) {
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    std::atomic<long> done{0};
    for (int i = 0; i < subscribers; ++i) {
      threads.emplace_back([&, i] {
        auto client = BusClient::Connect(dir + "/sub" + std::to_string(i) + ".sock");
        if (!client || !client->Subscribe("flow")) return;
        ++ready;
        for (long received = 0; received < count;) {
          auto message = client->Receive(std::chrono::seconds(10));
          if (!message || !message->has_value()) break;
          ++received;
          if (latency != nullptr && i == 0) {
            std::int64_t sent;
            std::memcpy(&sent, (*message)->payload.data(), sizeof sent);
            latency->Add(sent);
          }
        }
        ++done;
      });
    }
    while (ready < subscribers) std::this_thread::yield();
    auto publisher = std::move(*BusClient::Connect(dir + "/pub.sock"));
    publisher.set_auto_flush(false);
    auto start = Clock::now();
    PublishLoop(
        count, bytes, rate, [&](const std::string& p) { (void)publisher.Publish("flow", p); },
        [&] { (void)publisher.Flush(); });
    for (auto& thread : threads) thread.join();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (done != subscribers) std::fprintf(stderr, "bus: a subscriber did not get every event\n");
    return static_cast<double>(count) / seconds;
  }
};

// ---- NATS -----------------------------------------------------------------

struct Nats {
  pid_t server = -1;
  std::string url = "nats://127.0.0.1:14222";

  Nats() {
    int quiet = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    auto pid = SpawnProcess({"nats-server", "-a", "127.0.0.1", "-p", "14222"}, quiet, quiet);
    ::close(quiet);
    server = pid ? *pid : -1;
    for (int i = 0; i < 200; ++i) {
      natsConnection* probe = nullptr;
      if (natsConnection_ConnectTo(&probe, url.c_str()) == NATS_OK) {
        natsConnection_Destroy(probe);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    std::fprintf(stderr, "nats-server did not start\n");
  }
  ~Nats() {
    nats_Close();
    if (server > 0) {
      ::kill(server, SIGTERM);
      ::waitpid(server, nullptr, 0);
    }
  }

  struct Subscriber {
    std::atomic<long> received{0};
    long count = 0;
    LatencySamples* latency = nullptr;
  };

  static void OnMessage(natsConnection*, natsSubscription*, natsMsg* message, void* closure) {
    auto* subscriber = static_cast<Subscriber*>(closure);
    if (subscriber->latency != nullptr) {
      std::int64_t sent;
      std::memcpy(&sent, natsMsg_GetData(message), sizeof sent);
      subscriber->latency->Add(sent);
    }
    ++subscriber->received;
    natsMsg_Destroy(message);
  }

  double Run(int subscribers, long count, size_t bytes, long rate, LatencySamples* latency) {
    std::vector<natsConnection*> connections(subscribers, nullptr);
    std::vector<natsSubscription*> subscriptions(subscribers, nullptr);
    std::vector<std::unique_ptr<Subscriber>> states;
    for (int i = 0; i < subscribers; ++i) {
      states.push_back(std::make_unique<Subscriber>());
      states.back()->count = count;
      states.back()->latency = i == 0 ? latency : nullptr;
      natsConnection_ConnectTo(&connections[i], url.c_str());
      natsConnection_Subscribe(&subscriptions[i], connections[i], "flow", OnMessage,
                               states.back().get());
      natsSubscription_SetPendingLimits(subscriptions[i], -1, -1);
      natsConnection_Flush(connections[i]);
    }
    natsConnection* publisher = nullptr;
    natsConnection_ConnectTo(&publisher, url.c_str());
    auto start = Clock::now();
    PublishLoop(
        count, bytes, rate,
        [&](const std::string& p) {
          natsConnection_Publish(publisher, "flow", p.data(), static_cast<int>(p.size()));
        },
        [&] { natsConnection_Flush(publisher); });
    auto deadline = Clock::now() + std::chrono::seconds(60);
    for (auto& state : states) {
      while (state->received < count && Clock::now() < deadline) std::this_thread::yield();
    }
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    for (auto& state : states) {
      if (state->received < count) std::fprintf(stderr, "nats: a subscriber missed events\n");
    }
    natsConnection_Destroy(publisher);
    for (int i = 0; i < subscribers; ++i) {
      natsSubscription_Destroy(subscriptions[i]);
      natsConnection_Destroy(connections[i]);
    }
    return static_cast<double>(count) / seconds;
  }
};

template <typename System>
void Measure(System& system, const char* suffix, long scale) {
  std::printf("BENCH bus_events_per_s_1sub_64B%s %.0f events/s\n", suffix,
              system.Run(1, 1'000'000 / scale, 64, 0, nullptr));
  std::printf("BENCH bus_events_per_s_4sub_64B%s %.0f events/s\n", suffix,
              system.Run(4, 500'000 / scale, 64, 0, nullptr));
  std::printf("BENCH bus_events_per_s_1sub_512B%s %.0f events/s\n", suffix,
              system.Run(1, 500'000 / scale, 512, 0, nullptr));
  LatencySamples latency;
  system.Run(1, 30'000 / scale, 64, 10'000, &latency);
  std::printf("BENCH bus_p50_us%s %.1f us\n", suffix, latency.Percentile(0.50));
  std::printf("BENCH bus_p99_us%s %.1f us\n", suffix, latency.Percentile(0.99));
  std::fflush(stdout);
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) {
  CLI::App app{"message bus benchmark, beside NATS"};
  long scale = 1;
  app.add_option("--scale", scale, "divide every event count by this (quick runs)");
  CLI11_PARSE(app, argc, argv);
  {
    custos::OurBus ours;
    custos::Measure(ours, "", scale);
  }
  {
    custos::Nats nats;
    custos::Measure(nats, ".peer", scale);
  }
  return 0;
}
