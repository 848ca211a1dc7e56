// bustool: a test-only instrument that drives the bus through the SDK (and,
// to attack it, around the SDK). Arguments are actions run in order:
//   subscribe:TOPIC            publish:TOPIC:COUNT:BYTES
//   stream:TOPIC:COUNT:PER_SECOND  (EVE events {"event_type":"count","n":0..COUNT-1}, paced)
//   send:TO:TYPE:PAYLOAD       request:TO:TYPE:PAYLOAD
//   sendfile:TO:NAME:CONTENT   settings
//   forge:VICTIM:TOPIC         (writes an event frame naming another sender)
//   garbage                    (writes bytes that are no frame)
//   listen                     (prints messages, files, errors; counts events; replies
//   "ack:<payload>") stuck                      (never reads again)
// Each action reports one JSON line {"action","ok","detail"} on stdout.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bus/frame.h"
#include "custos/bus_client.h"
#include "custos/event.h"
#include "custos/instrument.h"

namespace {

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, ':');) parts.push_back(part);
  return parts;
}

void Report(const std::string& action, bool ok, const std::string& detail) {
  std::printf("%s\n",
              nlohmann::json({{"action", action}, {"ok", ok}, {"detail", detail}}).dump().c_str());
  std::fflush(stdout);
}

void Report(const std::string& action, const custos::Status& status) {
  Report(action, status.ok(), status.ok() ? "" : status.error().message);
}

void Idle() {
  while (!custos::StopRequested()) ::pause();
}

// Writes raw bytes on the connection, then reports what the broker answers.
void Raw(custos::BusClient& client, const std::string& action, const std::string& bytes) {
  (void)!::write(client.fd(), bytes.data(), bytes.size());
  auto answer = client.Receive(std::chrono::seconds(3));
  std::string detail = !answer
                           ? answer.error().message
                           : (answer->has_value() ? (*answer)->payload : std::string("no answer"));
  auto after = client.Receive(std::chrono::seconds(1));
  Report(action, false,
         detail + (after.ok() ? " | connection still open" : " | connection closed"));
}

void Listen(custos::BusClient& client) {
  std::printf("LISTENING\n");
  std::fflush(stdout);
  std::map<std::string, long> counts;
  long total = 0, reported = 0;
  auto last = std::chrono::steady_clock::now();
  while (!custos::StopRequested()) {
    auto received = client.Receive(std::chrono::milliseconds(100));
    if (!received) {
      Report("listen", false, received.error().message);
      return Idle();
    }
    if (received->has_value()) {
      auto& message = **received;
      switch (message.kind) {
        case custos::BusMessage::Kind::kEvent:
          ++counts[message.topic + "<-" + message.sender];
          ++total;
          break;
        case custos::BusMessage::Kind::kMessage:
          std::printf("%s\n", nlohmann::json({{"got", "message"},
                                              {"sender", message.sender},
                                              {"type", message.type},
                                              {"payload", message.payload}})
                                  .dump()
                                  .c_str());
          if (message.wants_reply) (void)client.Reply(message, "ack:" + message.payload);
          break;
        case custos::BusMessage::Kind::kFile:
          std::printf("%s\n", nlohmann::json({{"got", "file"},
                                              {"sender", message.sender},
                                              {"name", message.type},
                                              {"path", message.payload}})
                                  .dump()
                                  .c_str());
          break;
        case custos::BusMessage::Kind::kError:
          std::printf(
              "%s\n",
              nlohmann::json({{"got", "error"}, {"payload", message.payload}}).dump().c_str());
          break;
      }
      std::fflush(stdout);
    }
    auto now = std::chrono::steady_clock::now();
    if (total != reported && now - last > std::chrono::milliseconds(200)) {
      std::printf("%s\n", nlohmann::json({{"counts", counts}, {"total", total}}).dump().c_str());
      std::fflush(stdout);
      reported = total;
      last = now;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  custos::InstallStopHandlers();
  auto connected = custos::BusClient::Connect();
  if (!connected) {
    Report("connect", false, connected.error().message);
    Idle();
    return 0;
  }
  custos::BusClient client = std::move(*connected);
  Report("connect", true, client.name());
  for (int i = 1; i < argc && !custos::StopRequested(); ++i) {
    auto parts = Split(argv[i]);
    const std::string& verb = parts[0];
    auto arg = [&](size_t n) { return n < parts.size() ? parts[n] : std::string(); };
    if (verb == "subscribe") {
      Report(argv[i], client.Subscribe(arg(1)));
    } else if (verb == "publish") {
      long count = std::stol(arg(2));
      std::string payload(std::stoul(arg(3)), 'x');
      client.set_auto_flush(false);
      custos::Status status;
      for (long n = 0; n < count && status.ok(); ++n) {
        status = client.Publish(arg(1), payload);
        // Bursts of 500 keep a healthy subscriber able to keep up.
        if (n % 500 == 499) {
          status = client.Flush();
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
      }
      if (status.ok()) status = client.Flush();
      Report(argv[i], status);
    } else if (verb == "stream") {
      long count = std::stol(arg(2));
      auto gap = std::chrono::microseconds(1'000'000 / std::max(1L, std::stol(arg(3))));
      auto due = std::chrono::steady_clock::now();
      custos::Status status;
      for (long n = 0; n < count && status.ok() && !custos::StopRequested(); ++n) {
        auto event = custos::MakeEvent("count");
        event["n"] = n;
        status = client.Publish(arg(1), event.dump());
        due += gap;
        std::this_thread::sleep_until(due);
      }
      Report(argv[i], status);
    } else if (verb == "send") {
      Report(argv[i], client.Send(arg(1), arg(2), arg(3)));
    } else if (verb == "request") {
      auto reply = client.Request(arg(1), arg(2), arg(3));
      Report(argv[i], reply.ok(), reply.ok() ? *reply : reply.error().message);
    } else if (verb == "sendfile") {
      int fd = ::memfd_create("bustool", MFD_CLOEXEC);
      std::string content = arg(3);
      (void)!::write(fd, content.data(), content.size());
      Report(argv[i], client.SendFile(fd, arg(2), {arg(1)}));
      ::close(fd);
    } else if (verb == "settings") {
      auto settings = client.Settings();
      Report(argv[i], settings.ok(), settings.ok() ? *settings : settings.error().message);
    } else if (verb == "forge") {
      std::string frame;
      custos::bus::EncodeEvent(arg(2), arg(1), R"({"forged":true})", frame);
      Raw(client, argv[i], frame);
    } else if (verb == "garbage") {
      Raw(client, argv[i], std::string("\x00\x00\x00\x04\x07\x63\x00\x00junk", 12));
    } else if (verb == "listen") {
      Listen(client);
    } else if (verb == "stuck") {
      std::printf("STUCK\n");
      std::fflush(stdout);
      Idle();
    } else {
      Report(argv[i], false, "unknown action");
    }
  }
  // Stopped while parked in stuck or listen is not "done".
  if (!custos::StopRequested()) {
    std::printf("ACTIONS DONE\n");
    std::fflush(stdout);
  }
  Idle();
  return 0;
}
