// custos-sensord: runs the sensor's instruments in containers as its
// configuration says, until SIGTERM or SIGINT; SIGHUP re-reads the file.
#include <signal.h>
#include <sys/prctl.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/log.h"
#include "sensor/admin_server.h"
#include "sensor/event_loop.h"
#include "sensor/sensor_config.h"
#include "sensor/supervisor.h"

namespace custos {
namespace {

nlohmann::json Reply(const Status& status) {
  if (status) return {{"ok", true}};
  return {{"ok", false}, {"error", status.error().message}};
}

Status Reload(Supervisor& supervisor, const std::string& config_path) {
  auto config = LoadSensorConfig(config_path);
  if (!config) {
    spdlog::error("configuration refused, instruments left as they were: {}",
                  config.error().message);
    return config.error();
  }
  auto applied = supervisor.Apply(*config);
  if (applied) {
    spdlog::info("configuration {} applied", config_path);
  } else {
    spdlog::error("configuration refused, instruments left as they were: {}",
                  applied.error().message);
  }
  return applied;
}

nlohmann::json Handle(Supervisor& supervisor, const std::string& config_path,
                      const nlohmann::json& request) {
  std::string command = request.value("command", "");
  std::string name = request.contains("instrument") && request["instrument"].is_string()
                         ? request["instrument"].get<std::string>()
                         : "";
  if (command == "status") {
    auto reply = supervisor.StatusJson();
    reply["ok"] = true;
    return reply;
  }
  if (command == "reload") return Reply(Reload(supervisor, config_path));
  if (command == "start") return Reply(supervisor.StartInstrument(name));
  if (command == "stop") return Reply(supervisor.StopInstrument(name));
  if (command == "restart") return Reply(supervisor.RestartInstrument(name));
  if (command == "events") {
    std::string topic = request.contains("topic") && request["topic"].is_string()
                            ? request["topic"].get<std::string>()
                            : "";
    int limit = request.contains("limit") && request["limit"].is_number_integer()
                    ? request["limit"].get<int>()
                    : 100;
    return {{"ok", true},
            {"events",
             supervisor.journal().Recent(topic, static_cast<std::size_t>(std::max(limit, 0)))}};
  }
  if (command == "sweep") {
    supervisor.SweepRetention();
    return Reply({});
  }
  return {{"ok", false}, {"error", "unknown command '" + command + "'"}};
}

int Main(int argc, char** argv) {
  CLI::App app{"custos-sensord: runs a sensor's instruments in containers"};
  std::string config_path;
  bool verbose = false;
  app.add_option("-c,--config", config_path, "sensor configuration file")->required();
  app.add_flag("-v,--verbose", verbose, "log debug messages");
  CLI11_PARSE(app, argc, argv);
  InitLogging("sensord", verbose);

  auto config = LoadSensorConfig(config_path);
  if (!config) {
    std::cerr << "custos-sensord: " << config.error().message << "\n";
    return 2;
  }
  // Container inits are orphaned when the runtime exits; as subreaper we
  // inherit them and learn how they exit.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    std::cerr << "custos-sensord: cannot become a child subreaper\n";
    return 1;
  }
  auto loop = EventLoop::Create({SIGTERM, SIGINT, SIGHUP, SIGCHLD});
  if (!loop) {
    std::cerr << "custos-sensord: " << loop.error().message << "\n";
    return 1;
  }
  Supervisor supervisor(**loop, *config);
  if (auto prepared = supervisor.Prepare(); !prepared) {
    spdlog::critical("{}", prepared.error().message);
    supervisor.Shutdown();
    return 1;
  }
  AdminServer admin(
      **loop, supervisor.platform().AdminSocket(),
      [&](const nlohmann::json& request) { return Handle(supervisor, config_path, request); });
  if (auto listening = admin.Listen(); !listening) {
    spdlog::critical("{}", listening.error().message);
    supervisor.Shutdown();
    return 1;
  }
  (*loop)->OnSignal(SIGCHLD, [&] { supervisor.ReapChildren(); });
  (*loop)->OnSignal(SIGHUP, [&] { (void)Reload(supervisor, config_path); });
  (*loop)->OnSignal(SIGTERM, [&] { (*loop)->Quit(); });
  (*loop)->OnSignal(SIGINT, [&] { (*loop)->Quit(); });
  if (auto applied = supervisor.Apply(*config); !applied) {
    spdlog::critical("{}", applied.error().message);
    supervisor.Shutdown();
    return 1;
  }
  spdlog::info("sensor {} running {} instruments; admin socket {}", config->name,
               config->instruments.size(), supervisor.platform().AdminSocket());
  (*loop)->Run();
  spdlog::info("shutting down");
  supervisor.Shutdown();
  return 0;
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) { return custos::Main(argc, argv); }
