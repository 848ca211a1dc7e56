// mirrorstat: reads every frame arriving on mirror0 and counts frames and
// bytes in total and per ethertype. Every `report_seconds` (setting,
// default 5) it rewrites /data/mirrorstat.json and publishes a `stats` event
// on the bus. A `config` message {"ethertypes": ["0x0800", ...]} restricts
// what it counts (an empty list counts everything); it answers with what it
// now counts. Its UI answers GET /stats with the same report. Exits 0 on SIGTERM.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "custos/bus_client.h"
#include "custos/event.h"
#include "custos/http_ui.h"
#include "custos/instrument.h"

namespace {

struct Counts {
  std::uint64_t frames = 0;
  std::uint64_t bytes = 0;
};

std::string TypeName(unsigned type) {
  char name[8];
  std::snprintf(name, sizeof name, "0x%04x", type);
  return name;
}

nlohmann::json Report(const Counts& total, const std::map<unsigned, Counts>& by_type,
                      const std::set<unsigned>& only) {
  nlohmann::json report = {
      {"frames", total.frames}, {"bytes", total.bytes}, {"ethertypes", nlohmann::json::object()}};
  for (const auto& [type, counts] : by_type) {
    report["ethertypes"][TypeName(type)] = {{"frames", counts.frames}, {"bytes", counts.bytes}};
  }
  auto filter = nlohmann::json::array();
  for (unsigned type : only) filter.push_back(TypeName(type));
  report["counting"] = filter.empty() ? nlohmann::json("all") : filter;
  return report;
}

// Applies a config message; returns the reply or an error text.
nlohmann::json ApplyConfig(const std::string& payload, std::set<unsigned>& only) {
  auto config = nlohmann::json::parse(payload, nullptr, false);
  if (!config.is_object() || !config.contains("ethertypes") || !config["ethertypes"].is_array()) {
    return {{"applied", false}, {"error", "expected {\"ethertypes\": [\"0x0800\", ...]}"}};
  }
  std::set<unsigned> parsed;
  for (const auto& item : config["ethertypes"]) {
    if (!item.is_string()) return {{"applied", false}, {"error", "ethertypes must be strings"}};
    const std::string text = item.get<std::string>();  // `end` points into it
    char* end = nullptr;
    unsigned long value = std::strtoul(text.c_str(), &end, 16);
    if (text.empty() || end == nullptr || *end != '\0' || value > 0xffff) {
      return {{"applied", false}, {"error", "not an ethertype: " + text}};
    }
    parsed.insert(static_cast<unsigned>(value));
  }
  only = parsed;
  return {{"applied", true}, {"ethertypes", config["ethertypes"]}};
}

}  // namespace

int main() {
  custos::InstallStopHandlers();
  auto context = custos::InstrumentContext::Load();
  std::string dir = context ? context->data_dir : "/data";
  long report_seconds = 5;
  if (context) {
    auto read = custos::ReadSettingInto(context->settings, "report_seconds", report_seconds);
    if (!read || report_seconds <= 0) {
      std::printf("mirrorstat: %s\n", read ? "setting report_seconds must be more than 0"
                                           : read.error().message.c_str());
      return 1;
    }
  }
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(::if_nametoindex("mirror0"));
  if (fd < 0 || address.sll_ifindex == 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::perror("mirrorstat: cannot read mirror0");
    return 1;
  }
  std::printf("mirrorstat: counting frames on mirror0 into %s/mirrorstat.json\n", dir.c_str());
  std::fflush(stdout);
  std::optional<custos::BusClient> bus;
  Counts total;
  // The last report, for the UI thread.
  std::mutex report_mutex;
  std::string last_report = "{}";
  auto ui = custos::HttpUi::Start([&](const custos::HttpRequest& request) {
    if (request.target != "/stats") return custos::HttpResponse{404, "text/plain", "try /stats\n"};
    std::lock_guard lock(report_mutex);
    return custos::HttpResponse{200, "application/json", last_report};
  });
  if (!ui) std::printf("mirrorstat: no UI: %s\n", ui.error().message.c_str());
  std::map<unsigned, Counts> by_type;
  std::set<unsigned> only;
  auto next_report = std::chrono::steady_clock::now();
  unsigned char frame[65536];
  while (!custos::StopRequested()) {
    if (!bus) {
      if (auto connected = custos::BusClient::Connect(); connected)
        bus.emplace(std::move(*connected));
    }
    pollfd entries[2] = {{fd, POLLIN, 0}, {bus ? bus->fd() : -1, POLLIN, 0}};
    if (::poll(entries, 2, 500) > 0 && (entries[0].revents & POLLIN)) {
      ssize_t n = ::recv(fd, frame, sizeof frame, MSG_TRUNC);
      unsigned type = n >= 14 ? static_cast<unsigned>((frame[12] << 8) | frame[13]) : 0;
      if (n >= 14 && (only.empty() || only.contains(type))) {
        ++total.frames;
        total.bytes += static_cast<std::uint64_t>(n);
        ++by_type[type].frames;
        by_type[type].bytes += static_cast<std::uint64_t>(n);
      }
    }
    if (bus && (entries[1].revents & (POLLIN | POLLHUP))) {
      auto message = bus->Receive(std::chrono::milliseconds(0));
      if (!message) {
        bus.reset();
      } else if (message->has_value() && (*message)->kind == custos::BusMessage::Kind::kMessage &&
                 (*message)->type == "config") {
        auto reply = ApplyConfig((*message)->payload, only);
        std::printf("mirrorstat: config from %s: %s\n", (*message)->sender.c_str(),
                    reply.dump().c_str());
        std::fflush(stdout);
        if ((*message)->wants_reply) (void)bus->Reply(**message, reply.dump());
      }
    }
    if (std::chrono::steady_clock::now() >= next_report) {
      auto report = Report(total, by_type, only);
      {
        std::lock_guard lock(report_mutex);
        last_report = report.dump();
      }
      std::string temporary = dir + "/mirrorstat.json.tmp";
      std::ofstream(temporary) << report.dump(1) << "\n";
      std::rename(temporary.c_str(), (dir + "/mirrorstat.json").c_str());
      if (bus) {
        auto event = custos::MakeEvent("stats");
        event["stats"] = report;
        if (!bus->Publish("stats", event.dump())) bus.reset();
      }
      next_report += std::chrono::seconds(report_seconds);
    }
  }
  return 0;
}
