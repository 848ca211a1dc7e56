// heartbeat: appends "<unix time> alive" to /data/heartbeat-<hour>.log every
// `interval_seconds` (setting, default 10), publishes a `heartbeat` event on
// the bus each time, and deletes its own hourly files older than
// CUSTOS_RETENTION_SECONDS. Exits 0 on SIGTERM.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "custos/bus_client.h"
#include "custos/event.h"
#include "custos/instrument.h"

namespace {

void Prune(const std::string& dir, long retention_seconds) {
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return;
  std::time_t cutoff = std::time(nullptr) - retention_seconds;
  while (dirent* entry = ::readdir(listing)) {
    std::string name = entry->d_name;
    if (name.rfind("heartbeat-", 0) != 0) continue;
    struct stat info {};
    std::string path = dir + "/" + name;
    if (::lstat(path.c_str(), &info) == 0 && info.st_mtime < cutoff) ::unlink(path.c_str());
  }
  ::closedir(listing);
}

}  // namespace

int main() {
  custos::InstallStopHandlers();
  custos::InstrumentContext context;
  if (auto loaded = custos::InstrumentContext::Load(); loaded) context = *loaded;
  std::string dir = context.data_dir;
  long retention =
      context.retention.count() > 0 ? static_cast<long>(context.retention.count()) : 7 * 86400;
  long interval = 10;
  auto read = custos::ReadSettingInto(context.settings, "interval_seconds", interval);
  if (!read || interval <= 0) {
    std::printf("heartbeat: %s\n", read ? "setting interval_seconds must be more than 0"
                                        : read.error().message.c_str());
    return 1;
  }
  std::printf("heartbeat: writing to %s every %lds, keeping %lds\n", dir.c_str(), interval,
              retention);
  std::fflush(stdout);
  std::optional<custos::BusClient> bus;
  long sequence = 0;
  while (!custos::StopRequested()) {
    if (!bus) {
      auto connected = custos::BusClient::Connect();
      if (connected) {
        bus.emplace(std::move(*connected));
      } else if (sequence == 0) {
        std::printf("heartbeat: no bus yet: %s\n", connected.error().message.c_str());
      }
    }
    ++sequence;
    if (bus) {
      auto event = custos::MakeEvent("heartbeat");
      event["heartbeat"] = {{"sequence", sequence}, {"interval_s", interval}};
      if (auto published = bus->Publish("heartbeat", event.dump()); !published) {
        std::printf("heartbeat: bus: %s\n", published.error().message.c_str());
        bus.reset();
      }
    }
    std::time_t now = std::time(nullptr);
    char name[64];
    std::strftime(name, sizeof name, "heartbeat-%Y%m%d%H.log", std::gmtime(&now));
    std::ofstream out(dir + "/" + name, std::ios::app);
    out << now << " alive\n";
    out.close();
    Prune(dir, retention);
    for (long slept = 0; slept < interval && !custos::StopRequested(); ++slept) ::sleep(1);
  }
  std::printf("heartbeat: stopping\n");
  return 0;
}
