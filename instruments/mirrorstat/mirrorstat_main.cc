// mirrorstat: reads every frame arriving on mirror0 and keeps counts of
// frames and bytes in total and per ethertype, rewriting
// /data/mirrorstat.json every `report_seconds` (setting, default 5).
// Exits 0 on SIGTERM.
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
#include <nlohmann/json.hpp>

namespace {

volatile sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }

long Setting(const char* key, long fallback) {
  const char* path = std::getenv("CUSTOS_SETTINGS");
  if (path == nullptr) return fallback;
  std::ifstream in(path);
  auto document = nlohmann::json::parse(in, nullptr, false);
  if (document.is_discarded()) return fallback;
  return document.value("settings", nlohmann::json::object()).value(key, fallback);
}

struct Counts {
  std::uint64_t frames = 0;
  std::uint64_t bytes = 0;
};

void Report(const std::string& dir, const Counts& total,
            const std::map<unsigned, Counts>& by_type) {
  nlohmann::json report = {{"frames", total.frames}, {"bytes", total.bytes}};
  for (const auto& [type, counts] : by_type) {
    char name[8];
    std::snprintf(name, sizeof name, "0x%04x", type);
    report["ethertypes"][name] = {{"frames", counts.frames}, {"bytes", counts.bytes}};
  }
  std::string temporary = dir + "/mirrorstat.json.tmp";
  std::ofstream(temporary) << report.dump(1) << "\n";
  std::rename(temporary.c_str(), (dir + "/mirrorstat.json").c_str());
}

}  // namespace

int main() {
  struct sigaction action {};
  action.sa_handler = OnTerm;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  const char* data = std::getenv("CUSTOS_DATA");
  std::string dir = data != nullptr ? data : "/data";
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
  auto interval = std::chrono::seconds(Setting("report_seconds", 5));
  std::printf("mirrorstat: counting frames on mirror0 into %s/mirrorstat.json\n", dir.c_str());
  std::fflush(stdout);
  Counts total;
  std::map<unsigned, Counts> by_type;
  auto next_report = std::chrono::steady_clock::now();
  unsigned char frame[65536];
  while (!g_stop) {
    pollfd entry{fd, POLLIN, 0};
    if (::poll(&entry, 1, 500) > 0) {
      ssize_t n = ::recv(fd, frame, sizeof frame, MSG_TRUNC);
      if (n >= 14) {
        unsigned type = (frame[12] << 8) | frame[13];
        ++total.frames;
        total.bytes += static_cast<std::uint64_t>(n);
        ++by_type[type].frames;
        by_type[type].bytes += static_cast<std::uint64_t>(n);
      }
    }
    if (std::chrono::steady_clock::now() >= next_report) {
      Report(dir, total, by_type);
      next_report += interval;
    }
  }
  Report(dir, total, by_type);
  return 0;
}
