// heartbeat: appends "<unix time> alive" to /data/heartbeat-<hour>.log every
// `interval_seconds` (setting, default 10) and deletes its own hourly files
// older than CUSTOS_RETENTION_SECONDS. Exits 0 on SIGTERM.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

volatile sig_atomic_t g_stop = 0;

void OnTerm(int) { g_stop = 1; }

long Setting(const char* key, long fallback) {
  const char* path = std::getenv("CUSTOS_SETTINGS");
  if (path == nullptr) return fallback;
  std::ifstream in(path);
  auto document = nlohmann::json::parse(in, nullptr, false);
  if (document.is_discarded()) return fallback;
  auto settings = document.value("settings", nlohmann::json::object());
  return settings.value(key, fallback);
}

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
  struct sigaction action {};
  action.sa_handler = OnTerm;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  const char* data = std::getenv("CUSTOS_DATA");
  std::string dir = data != nullptr ? data : "/data";
  const char* retention_text = std::getenv("CUSTOS_RETENTION_SECONDS");
  long retention = retention_text != nullptr ? std::atol(retention_text) : 7 * 86400;
  long interval = Setting("interval_seconds", 10);
  std::printf("heartbeat: writing to %s every %lds, keeping %lds\n", dir.c_str(), interval,
              retention);
  std::fflush(stdout);
  while (!g_stop) {
    std::time_t now = std::time(nullptr);
    char name[64];
    std::strftime(name, sizeof name, "heartbeat-%Y%m%d%H.log", std::gmtime(&now));
    std::ofstream out(dir + "/" + name, std::ios::app);
    out << now << " alive\n";
    out.close();
    Prune(dir, retention);
    for (long slept = 0; slept < interval && !g_stop; ++slept) ::sleep(1);
  }
  std::printf("heartbeat: stopping\n");
  return 0;
}
