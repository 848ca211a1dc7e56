// Instrument SDK: what the platform tells an instrument about itself. Read
// once at start from the environment and the settings file the platform
// put in its root filesystem (the same document the bus's Settings() gives).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "custos/result.h"

namespace custos {

struct InstrumentContext {
  std::string name;                // CUSTOS_INSTRUMENT
  std::string network;             // none, passive, active or capture; empty if not said
  std::string data_dir = "/data";  // persistent, kept across restarts, pruned by retention
  std::string tmp_dir = "/tmp";    // transient, gone at stop
  std::chrono::seconds retention{0};
  nlohmann::json settings = nlohmann::json::object();  // the configuration's `settings`

  static Result<InstrumentContext> Load();
  // Parses the settings document (from the file or from BusClient::Settings).
  static Result<InstrumentContext> FromDocument(const std::string& json);
};

// The platform stops an instrument with SIGTERM. InstallStopHandlers makes
// SIGTERM and SIGINT set a flag (and interrupt blocking calls, which return
// EINTR) instead of killing the process; StopRequested reads the flag.
// Remember: an instrument is pid 1 of its namespace, and signals without a
// handler never reach it.
void InstallStopHandlers();
bool StopRequested();

}  // namespace custos
