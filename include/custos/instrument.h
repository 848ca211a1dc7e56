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
  std::string data_dir = "/data";  // persistent, kept across restarts, pruned by retention
  std::string tmp_dir = "/tmp";    // transient, gone at stop
  std::chrono::seconds retention{0};
  nlohmann::json settings = nlohmann::json::object();  // the configuration's `settings`

  static Result<InstrumentContext> Load();
  // Parses the settings document (from the file or from BusClient::Settings).
  static Result<InstrumentContext> FromDocument(const std::string& json);
};

}  // namespace custos
