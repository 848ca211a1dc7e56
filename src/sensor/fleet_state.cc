#include "sensor/fleet_state.h"

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/log.h"
#include "sensor/fleet_identity.h"

namespace custos::sensor {
namespace fs = std::filesystem;

namespace {

std::string StateName(std::uint64_t version) { return "desired state v" + std::to_string(version); }

Status RestoreState(const fs::path& identity_dir, const std::optional<AppliedState>& previous) {
  if (previous) return SaveAppliedState(identity_dir, *previous);
  std::error_code error;
  fs::remove(IdentityPaths(identity_dir).desired_state, error);
  if (error) return Error{"cannot remove the saved desired state: " + error.message()};
  return SyncDirectory(identity_dir);
}

}  // namespace

Result<std::optional<AppliedState>> LoadAppliedState(const fs::path& identity_dir) {
  fs::path path = IdentityPaths(identity_dir).desired_state;
  std::error_code ignored;
  if (!fs::exists(path, ignored)) return std::optional<AppliedState>();
  auto text = ReadFile(path);
  if (!text) return text.error();
  auto saved = nlohmann::json::parse(*text, nullptr, false);
  if (!saved.is_object() || !saved.contains("version") || !saved["version"].is_number_unsigned() ||
      !saved.contains("config") || !saved["config"].is_string()) {
    return Error{path.string() + ": not {\"version\": N, \"config\": TEXT}"};
  }
  return std::optional<AppliedState>(
      AppliedState{saved["version"].get<std::uint64_t>(), saved["config"].get<std::string>()});
}

Status SaveAppliedState(const fs::path& identity_dir, const AppliedState& state) {
  nlohmann::json saved = {{"version", state.version}, {"config", state.config}};
  CUSTOS_TRY(WriteFileAtomic(IdentityPaths(identity_dir).desired_state,
                             saved.dump(1, ' ', false, nlohmann::json::error_handler_t::replace),
                             0600));
  return SyncDirectory(identity_dir);
}

Result<EffectiveConfig> LoadEffectiveConfig(const std::string& path) {
  auto file = LoadSensorConfig(path);
  if (!file) return file.error();
  EffectiveConfig effective{std::move(*file), 0};
  if (!effective.config.fleet) return effective;
  const std::string& identity = effective.config.fleet->identity;
  auto state = LoadAppliedState(identity);
  if (!state) {
    spdlog::error("ignoring the saved desired state: {}", state.error().message);
    return effective;
  }
  if (!*state) return effective;
  auto merged = LoadSensorConfigWithPolicy(path, (*state)->config, StateName((*state)->version));
  if (!merged) {
    spdlog::error("the saved {} no longer validates, running the file's own policy: {}",
                  StateName((*state)->version), merged.error().message);
    return effective;
  }
  return EffectiveConfig{std::move(*merged), (*state)->version};
}

Status ApplyDesiredState(const std::string& path, std::uint64_t version,
                         const std::string& config_text,
                         const std::function<Status(const SensorConfig&)>& apply) {
  auto config = LoadSensorConfigWithPolicy(path, config_text, StateName(version));
  if (!config) return config.error();
  if (!config->fleet) return Error{path + " has no fleet: section any more"};
  fs::path identity = config->fleet->identity;
  auto previous = LoadAppliedState(identity);
  if (!previous) return previous.error();
  CUSTOS_TRY(SaveAppliedState(identity, AppliedState{version, config_text}));
  auto applied = apply(*config);
  if (!applied) {
    if (auto restored = RestoreState(identity, *previous); !restored) {
      spdlog::error("cannot put back the previous desired state: {}", restored.error().message);
    }
    return applied;
  }
  return {};
}

}  // namespace custos::sensor
