// The desired state the fleet sends (its `policy:` and `instruments:` for
// this sensor) as sensord applies and keeps it: validated against the local
// file's `sensor:` and `fleet:` sections, applied like a reload, and saved
// in the identity folder (desired_state.json: {"version", "config"}) so it
// survives a restart. Functions are thread-safe with respect to each other
// only through the file system; sensord calls them on its event loop.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "sensor/sensor_config.h"

namespace custos::sensor {

struct AppliedState {
  std::uint64_t version = 0;
  std::string config;  // YAML text as the fleet sent it
};

Result<std::optional<AppliedState>> LoadAppliedState(const std::filesystem::path& identity_dir);
// Written atomically (temp file, fsync, rename, folder fsync), mode 0600.
Status SaveAppliedState(const std::filesystem::path& identity_dir, const AppliedState& state);

struct EffectiveConfig {
  SensorConfig config;
  std::uint64_t state_version = 0;  // 0: the file's own policy and instruments
};

// What sensord runs: the file at `path`, with policy: and instruments: from
// the saved desired state when the file has a fleet: section and a state was
// saved. A saved state that no longer validates (a manifest gone) is logged
// and the file's own sections are used, with state_version 0 so the fleet
// sends its state again. Errors only for the file itself.
Result<EffectiveConfig> LoadEffectiveConfig(const std::string& path);

// Validates `config_text` with the file at `path`, saves it, then calls
// `apply`; if `apply` refuses, the previously saved state is put back, so a
// refused state is neither running nor remembered.
Status ApplyDesiredState(const std::string& path, std::uint64_t version,
                         const std::string& config_text,
                         const std::function<Status(const SensorConfig&)>& apply);

}  // namespace custos::sensor
