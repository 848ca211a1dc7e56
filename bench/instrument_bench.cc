// Benchmarks the sensor platform: cold start of one instrument (parsing the
// configuration to a running container) and its stop, median of N runs,
// beside a bare `runc run --detach` of the very same bundle in the same run;
// and the resident memory of an idle custos-sensord. Prints BENCH lines.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "common/process.h"
#include "sensor/admin_server.h"
#include "sensor/event_loop.h"
#include "sensor/sensor_config.h"
#include "sensor/supervisor.h"

namespace custos {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Milliseconds(Clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

std::string ConfigText(const std::string& root, const std::string& manifest, bool with_instrument) {
  std::string text = "sensor:\n  name: bench\n  state_dir: " + root +
                     "/state\n  data_root: " + root + "/data\n  log_dir: " + root +
                     "/log\n  uid_base: 3000000\n  stop_grace: 2s\n" + "instruments:\n";
  if (with_instrument) {
    text += "  - name: probe\n    manifest: " + manifest +
            "\n    limits: {memory: 32M, pids: 8}\n    settings: {interval_seconds: 60}\n";
  }
  return text;
}

Result<SensorConfig> Load(const std::string& path, const std::string& text) {
  CUSTOS_TRY(WriteFileAtomic(path, text));
  return LoadSensorConfig(path);
}

// Resident memory of a process in MiB.
double ResidentMb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      status >> kb;
      return kb / 1024.0;
    }
    status.ignore(1 << 16, '\n');
  }
  return -1;
}

int Run(const std::string& manifest, const std::string& sensord, int runs) {
  char pattern[] = "/tmp/custos-bench-XXXXXX";
  std::string root = ::mkdtemp(pattern);
  // Removed however the run ends, failures included.
  struct RemoveOnExit {
    std::string path;
    ~RemoveOnExit() { fs::remove_all(path); }
  } cleanup{root};
  ::chmod(root.c_str(), 0755);
  std::string config_path = root + "/sensor.yaml";
  std::string with = ConfigText(root, manifest, true);
  std::string without = ConfigText(root, manifest, false);

  auto loop = EventLoop::Create({SIGCHLD});
  if (!loop) return std::fprintf(stderr, "%s\n", loop.error().message.c_str()), 1;
  auto empty = Load(config_path, without);
  if (!empty) return std::fprintf(stderr, "%s\n", empty.error().message.c_str()), 1;
  std::vector<double> start_ms, stop_ms, peer_ms;
  {
    Supervisor supervisor(**loop, *empty);
    if (auto prepared = supervisor.Prepare(); !prepared) {
      std::fprintf(stderr, "%s\n", prepared.error().message.c_str());
      return 1;
    }
    for (int i = 0; i < runs; ++i) {
      auto begin = Clock::now();
      auto config = Load(config_path, with);
      if (!config) return std::fprintf(stderr, "%s\n", config.error().message.c_str()), 1;
      if (auto applied = supervisor.Apply(*config); !applied) {
        return std::fprintf(stderr, "%s\n", applied.error().message.c_str()), 1;
      }
      auto started = Clock::now();
      auto status = supervisor.StatusJson()["instruments"][0];
      if (status["state"] != "running") {
        std::fprintf(stderr, "instrument did not run: %s\n", status.dump().c_str());
        return 1;
      }
      auto stopping = Clock::now();
      if (!supervisor.Apply(*empty)) return std::fprintf(stderr, "stop failed\n"), 1;
      auto stopped = Clock::now();
      start_ms.push_back(Milliseconds(started - begin));
      stop_ms.push_back(Milliseconds(stopped - stopping));
    }

    // The peer: the same bundle sensord writes, run by bare runc.
    auto config = Load(config_path, with);
    if (!config || !supervisor.Apply(*config)) return 1;
    std::string peer_bundle = root + "/peer";
    fs::create_directories(peer_bundle);
    fs::copy_file(supervisor.platform().BundleDir("probe") + "/config.json",
                  peer_bundle + "/config.json");
    if (!supervisor.Apply(*empty)) return 1;
    // Removing the instrument removed the folders its bundle mounts; the peer needs them.
    fs::create_directories(supervisor.platform().UiDir("probe"));
    fs::create_directories(supervisor.platform().BusDir("probe"));
    std::string runc_root = root + "/peer-runc";
    for (int i = 0; i < runs; ++i) {
      std::string id = "bench-peer-" + std::to_string(i);
      auto begin = Clock::now();
      auto result = RunCommand({"runc", "--root", runc_root, "run", "--detach", "--bundle",
                                peer_bundle, "--pid-file", peer_bundle + "/pid", id},
                               {.stdout_fd = -1, .stderr_fd = -1, .capture = false});
      peer_ms.push_back(Milliseconds(Clock::now() - begin));
      if (!result || result->exit_code != 0)
        return std::fprintf(stderr, "bare runc run failed\n"), 1;
      (void)RunCommand({"runc", "--root", runc_root, "kill", id, "KILL"});
      auto pid = std::stoi(ReadFile(peer_bundle + "/pid").value());
      ::waitpid(pid, nullptr, 0);
      (void)RunCommand({"runc", "--root", runc_root, "delete", "--force", id});
    }
    supervisor.Shutdown();
  }

  // Idle memory of the real daemon with one instrument running.
  auto written = WriteFileAtomic(config_path, with);
  if (!written) return 1;
  int quiet = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto pid = SpawnProcess({sensord, "--config", config_path}, quiet, quiet);
  ::close(quiet);
  if (!pid) return 1;
  std::string socket = root + "/state/sensord.sock";
  for (int i = 0; i < 300; ++i) {
    auto reply = AdminRequest(socket, {{"command", "status"}});
    if (reply && (*reply)["instruments"][0]["state"] == "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let it settle idle
  double rss = ResidentMb(*pid);
  ::kill(*pid, SIGTERM);
  ::waitpid(*pid, nullptr, 0);

  std::printf("BENCH instrument_start_ms %.1f ms\n", Median(start_ms));
  std::printf("BENCH instrument_start_ms.peer %.1f ms\n", Median(peer_ms));
  std::printf("BENCH instrument_stop_ms %.1f ms\n", Median(stop_ms));
  std::printf("BENCH sensord_idle_rss_mb %.1f MB\n", rss);
  return 0;
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) {
  CLI::App app{"instrument start/stop and sensord memory benchmark"};
  std::string manifest, sensord;
  int runs = 20;
  app.add_option("--manifest", manifest, "instrument manifest")->required();
  app.add_option("--sensord", sensord, "custos-sensord binary")->required();
  app.add_option("--runs", runs, "runs per figure");
  CLI11_PARSE(app, argc, argv);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  custos::InitLogging("bench", false);
  spdlog::set_level(spdlog::level::warn);
  return custos::Run(manifest, sensord, runs);
}
