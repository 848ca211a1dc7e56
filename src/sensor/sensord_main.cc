// custos-sensord: runs the sensor's instruments in containers as its
// configuration says, until SIGTERM or SIGINT; SIGHUP re-reads the file.
// A re-key ordered by the fleet shuts everything down and starts sensord
// afresh (same pid, same arguments): the start re-encrypts the data root
// under the pending key before any instrument runs.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "common/log.h"
#include "sensor/admin_server.h"
#include "sensor/data_unlock.h"
#include "sensor/event_loop.h"
#include "sensor/fleet_link.h"
#include "sensor/fleet_state.h"
#include "sensor/sensor_config.h"
#include "sensor/supervisor.h"
#include "storage/process_hardening.h"

namespace custos {
namespace {

nlohmann::json Reply(const Status& status) {
  if (status) return {{"ok", true}};
  return {{"ok", false}, {"error", status.error().message}};
}

// The link to the fleet, when the configuration has a fleet: section.
struct FleetSide {
  std::optional<FleetConfig> config;        // as started: it cannot change at run time
  std::unique_ptr<sensor::FleetLink> link;  // null: no uplink, for `off_reason`
  std::string off_reason;
};

Status Apply(Supervisor& supervisor, FleetSide& fleet, const SensorConfig& config) {
  if (config.fleet != fleet.config) {
    return Error{"the fleet: section cannot change while sensord runs; restart it"};
  }
  CUSTOS_TRY(supervisor.Apply(config));
  if (fleet.link) fleet.link->Applied(config);
  return {};
}

Status Reload(Supervisor& supervisor, FleetSide& fleet, const std::string& config_path) {
  if (supervisor.platform().storage_locked) {
    return Error{
        "the data root is locked, waiting for the fleet's data key; nothing to reload yet"};
  }
  // The fleet's desired state, if one was applied, still replaces the
  // file's policy and instruments.
  auto config = sensor::LoadEffectiveConfig(config_path);
  if (!config) {
    spdlog::error("configuration refused, instruments left as they were: {}",
                  config.error().message);
    return config.error();
  }
  auto applied = Apply(supervisor, fleet, config->config);
  if (applied) {
    spdlog::info("configuration {} applied", config_path);
  } else {
    spdlog::error("configuration refused, instruments left as they were: {}",
                  applied.error().message);
  }
  return applied;
}

nlohmann::json Handle(Supervisor& supervisor, FleetSide& fleet, const std::string& config_path,
                      const sensor::DataUnlocker* unlocker, const nlohmann::json& request) {
  std::string command = request.value("command", "");
  std::string name = request.contains("instrument") && request["instrument"].is_string()
                         ? request["instrument"].get<std::string>()
                         : "";
  if (command == "status") {
    auto reply = supervisor.StatusJson();
    reply["ok"] = true;
    if (fleet.link) {
      reply["uplink"] = fleet.link->StatusJson();
    } else if (fleet.config) {
      reply["uplink"] = {{"enabled", false}, {"last_error", fleet.off_reason}};
    }
    if (unlocker != nullptr) reply["storage"] = unlocker->StatusJson();
    return reply;
  }
  if (command == "reload") return Reply(Reload(supervisor, fleet, config_path));
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

int Main(int argc, char** argv, bool& start_again) {
  CLI::App app{"custos-sensord: runs a sensor's instruments in containers"};
  std::string config_path;
  bool verbose = false;
  app.add_option("-c,--config", config_path, "sensor configuration file")->required();
  app.add_flag("-v,--verbose", verbose, "log debug messages");
  CLI11_PARSE(app, argc, argv);
  InitLogging("sensord", verbose);

  auto effective = sensor::LoadEffectiveConfig(config_path);
  if (!effective) {
    std::cerr << "custos-sensord: " << effective.error().message << "\n";
    return 2;
  }
  const SensorConfig& config = effective->config;
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
  // With an encrypted data root, the key must stay out of core dumps.
  bool encrypted = config.fleet && !config.fleet->data_volume.empty();
  if (encrypted) {
    if (auto hardened = storage::HardenProcess(); !hardened) {
      spdlog::critical("{}", hardened.error().message);
      return 1;
    }
  }
  FleetSide fleet{config.fleet, nullptr, ""};
  fleet.link =
      sensor::FleetLink::Create(config, config_path, effective->state_version, &fleet.off_reason);
  Supervisor supervisor(**loop, config);
  supervisor.platform().storage_locked = encrypted;
  if (fleet.link) supervisor.SetEventTap(fleet.link->Tap());
  if (auto prepared = supervisor.Prepare(); !prepared) {
    spdlog::critical("{}", prepared.error().message);
    supervisor.Shutdown();
    return 1;
  }
  std::unique_ptr<sensor::DataUnlocker> unlocker;
  std::unique_ptr<storage::EncryptedStore> store;
  AdminServer admin(**loop, supervisor.platform().AdminSocket(),
                    [&](const nlohmann::json& request) {
                      return Handle(supervisor, fleet, config_path, unlocker.get(), request);
                    });
  if (auto listening = admin.Listen(); !listening) {
    spdlog::critical("{}", listening.error().message);
    supervisor.Shutdown();
    return 1;
  }
  (*loop)->OnSignal(SIGCHLD, [&] { supervisor.ReapChildren(); });
  (*loop)->OnSignal(SIGHUP, [&] { (void)Reload(supervisor, fleet, config_path); });
  // A stop asked for during a re-key's shutdown is a stop, not a restart.
  (*loop)->OnSignal(SIGTERM, [&] {
    start_again = false;
    (*loop)->Quit();
  });
  (*loop)->OnSignal(SIGINT, [&] {
    start_again = false;
    (*loop)->Quit();
  });
  // Instruments and the uplink start once their storage can be written.
  auto run = [&]() -> bool {
    if (store) {
      auto spool = store->UnlockSpool();
      if (!spool) {
        spdlog::critical("cannot unlock the uplink's spool: {}", spool.error().message);
        return false;
      }
    }
    if (auto applied = supervisor.Apply(config); !applied) {
      spdlog::critical("{}", applied.error().message);
      return false;
    }
    if (fleet.link) {
      sensor::FleetLink::Actions actions;
      actions.apply = [&](const SensorConfig& wanted) {
        auto applied = Apply(supervisor, fleet, wanted);
        if (applied) {
          spdlog::info("desired state from the fleet applied");
        } else {
          spdlog::error("desired state from the fleet refused, instruments left as they were: {}",
                        applied.error().message);
        }
        return applied;
      };
      actions.status = [&] { return supervisor.StatusJson(); };
      actions.restart = [&](const std::string& name) { return supervisor.RestartInstrument(name); };
      actions.rekey = [&]() -> Status {
        if (!store) return Error{"this sensor's data root is not encrypted"};
        if (start_again) return Error{"a re-key is already under way"};
        start_again = true;
        spdlog::info("the fleet ordered a re-key: stopping, then starting again to re-encrypt");
        // A moment for the command's answer to leave before the uplink stops.
        (*loop)->After(std::chrono::milliseconds(500), [&] { (*loop)->Quit(); });
        return {};
      };
      if (auto started = fleet.link->Start(**loop, std::move(actions)); !started) {
        spdlog::error("uplink off: {}", started.error().message);
        fleet.off_reason = started.error().message;
        fleet.link.reset();
      }
    }
    return true;
  };
  if (encrypted) {
    spdlog::info("data root {} locked, waiting for the fleet's data key", config.data_root);
    unlocker = std::make_unique<sensor::DataUnlocker>(
        *config.fleet, config.data_root, **loop,
        [&](std::unique_ptr<storage::EncryptedStore> opened) {
          store = std::move(opened);
          supervisor.platform().store = store.get();
          supervisor.platform().storage_locked = false;
          spdlog::info("data root unlocked with the fleet's data key");
          if (!run()) (*loop)->Quit();
        });
    unlocker->Start();
  } else if (!run()) {
    supervisor.Shutdown();
    return 1;
  }
  spdlog::info("sensor {} running {} instruments; admin socket {}", config.name,
               config.instruments.size(), supervisor.platform().AdminSocket());
  (*loop)->Run();
  spdlog::info("shutting down");
  unlocker.reset();
  supervisor.Shutdown();
  // After the instruments: the last events they published reach the spool.
  if (fleet.link) fleet.link->Stop();
  if (store) {
    // Keys out of the kernel, volume unmounted: the data is unreadable again.
    supervisor.platform().store = nullptr;
    if (auto closed = store->Close(); !closed) {
      spdlog::error("data root: {}", closed.error().message);
    }
  }
  return 0;
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) {
  bool start_again = false;
  int code = custos::Main(argc, argv, start_again);
  if (code != 0 || !start_again) return code;
  // Every instrument is stopped, the keys are out of the kernel and the
  // volume is unmounted (what could not be is cleaned up by the next start,
  // as after a crash).
  spdlog::info("starting again to re-key");
  spdlog::default_logger()->flush();
  ::execv("/proc/self/exe", argv);
  std::perror("custos-sensord: cannot start again to re-key");
  return 1;
}
