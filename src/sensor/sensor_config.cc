#include "sensor/sensor_config.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "bus/frame.h"
#include "capture/bpf_filter.h"
#include "sandbox/capabilities.h"
#include "sensor/yaml_reader.h"

namespace custos {
namespace fs = std::filesystem;
namespace {

constexpr std::uint64_t kMaxUid = 4'000'000'000ull;

Result<NetworkMode> ParseNetworkMode(const YamlField& field) {
  auto text = field.String();
  if (!text) return text.error();
  if (*text == "none") return NetworkMode::kNone;
  if (*text == "passive") return NetworkMode::kPassive;
  if (*text == "active") return NetworkMode::kActive;
  if (*text == "capture") return NetworkMode::kCapture;
  if (*text == "ring") return NetworkMode::kRing;
  return field.Fail("expected none, passive, active, capture or ring, got '" + *text + "'");
}

Result<std::string> ResolvePath(const YamlField& field, const fs::path& base) {
  auto text = field.String();
  if (!text) return text.error();
  fs::path path(*text);
  if (path.is_relative()) path = base / path;
  return path.lexically_normal().string();
}

Result<InstrumentManifest> ParseManifest(const YamlField& root, const fs::path& base) {
  CUSTOS_TRY(root.OnlyKeys({"name", "description", "executable", "args", "files", "capabilities",
                            "networks", "sockets"}));
  InstrumentManifest manifest;
  auto name = root.Child("name").String();
  if (!name) return name.error();
  manifest.name = *name;
  auto executable = ResolvePath(root.Child("executable"), base);
  if (!executable) return executable.error();
  manifest.executable = *executable;
  auto args = root.Child("args").StringList();
  if (!args) return args.error();
  manifest.args = *args;
  auto files = root.Child("files").StringList();
  if (!files) return files.error();
  for (const auto& file : *files) {
    if (!fs::path(file).is_absolute()) {
      return root.Child("files").Fail("'" + file + "' must be an absolute path");
    }
  }
  manifest.files = *files;
  auto capabilities = root.Child("capabilities").StringList();
  if (!capabilities) return capabilities.error();
  for (const auto& capability : *capabilities) {
    if (!IsKnownCapability(capability)) {
      return root.Child("capabilities").Fail("unknown capability '" + capability + "'");
    }
  }
  manifest.capabilities = *capabilities;
  auto sockets = root.Child("sockets").Bool(true);
  if (!sockets) return sockets.error();
  manifest.sockets = *sockets;
  auto networks = root.Child("networks");
  if (!networks.present()) {
    manifest.networks = {NetworkMode::kNone};
  } else {
    if (!networks.node().IsSequence()) return networks.Fail("expected a list");
    for (const auto& item : networks.Items()) {
      auto mode = ParseNetworkMode(item);
      if (!mode) return mode.error();
      manifest.networks.push_back(*mode);
    }
  }
  return manifest;
}

Result<InstrumentConfig> ParseInstrument(const YamlField& item, const fs::path& base,
                                         const SensorConfig& sensor) {
  CUSTOS_TRY(item.OnlyKeys({"name", "manifest", "network", "interface", "capture_filter",
                            "retention", "limits", "transient", "args", "settings", "bus"}));
  InstrumentConfig instrument;
  auto name = item.Child("name").String();
  if (!name) return name.error();
  if (!IsValidName(*name)) {
    return item.Child("name").Fail("'" + *name + "' must be 1-15 characters of a-z, 0-9 and -");
  }
  instrument.name = *name;

  auto manifest_path = ResolvePath(item.Child("manifest"), base);
  if (!manifest_path) return manifest_path.error();
  auto manifest = LoadManifest(*manifest_path);
  if (!manifest) return item.Child("manifest").Fail(manifest.error().message);
  instrument.manifest = *manifest;

  auto network_field = item.Child("network");
  if (network_field.present()) {
    auto mode = ParseNetworkMode(network_field);
    if (!mode) return mode.error();
    instrument.network = *mode;
  }
  const auto& supported = instrument.manifest.networks;
  if (std::find(supported.begin(), supported.end(), instrument.network) == supported.end()) {
    return network_field.Fail(std::string("the manifest does not allow network mode '") +
                              NetworkModeName(instrument.network) + "'");
  }
  auto interface = item.Child("interface").StringOr("");
  if (!interface) return interface.error();
  instrument.interface = *interface;
  bool hands_over = instrument.network == NetworkMode::kActive ||
                    (instrument.network == NetworkMode::kCapture && !instrument.interface.empty());
  if (hands_over) {
    if (instrument.network == NetworkMode::kActive && instrument.interface.empty())
      return item.Child("interface").Fail("is required in active mode");
    const auto& allowed = sensor.active_interfaces;
    if (std::find(allowed.begin(), allowed.end(), instrument.interface) == allowed.end()) {
      return item.Child("interface")
          .Fail("'" + instrument.interface + "' is not in policy.active_interfaces");
    }
  } else if (!instrument.interface.empty()) {
    return item.Child("interface").Fail("is only allowed in active and capture mode");
  }

  auto filter = item.Child("capture_filter").StringOr("");
  if (!filter) return filter.error();
  if (!filter->empty()) {
    if (instrument.network != NetworkMode::kPassive && instrument.network != NetworkMode::kRing)
      return item.Child("capture_filter").Fail("is only allowed in passive and ring mode");
    if (auto compiled = capture::BpfFilter::Compile(*filter); !compiled)
      return item.Child("capture_filter").Fail(compiled.error().message);
    instrument.capture_filter = *filter;
  }

  for (const auto& capability : instrument.manifest.capabilities) {
    // Either would let a passive instrument lift the egress guard on mirror0.
    // Either would let the engine lift the guard on the monitored interface.
    if ((instrument.network == NetworkMode::kPassive ||
         instrument.network == NetworkMode::kCapture || instrument.network == NetworkMode::kRing) &&
        (capability == "CAP_NET_ADMIN" || capability == "CAP_SYS_ADMIN")) {
      return item.Child("network").Fail(std::string("a ") + NetworkModeName(instrument.network) +
                                        " instrument may not hold " + capability);
    }
    const auto& allowed = sensor.allowed_capabilities;
    if (std::find(allowed.begin(), allowed.end(), capability) == allowed.end()) {
      return item.Child("manifest")
          .Fail("the manifest asks for " + capability +
                ", which policy.allowed_capabilities does not grant");
    }
  }

  auto retention = item.Child("retention").Duration(instrument.retention);
  if (!retention) return retention.error();
  if (retention->count() <= 0) return item.Child("retention").Fail("must be longer than 0");
  instrument.retention = *retention;

  auto limits = item.Child("limits");
  if (limits.present()) {
    CUSTOS_TRY(limits.OnlyKeys({"memory", "pids", "cpus", "open_files"}));
    auto memory = limits.Child("memory").Size(instrument.limits.memory_bytes);
    if (!memory) return memory.error();
    if (*memory < (4ull << 20)) return limits.Child("memory").Fail("must be at least 4M");
    instrument.limits.memory_bytes = *memory;
    auto pids = limits.Child("pids").Unsigned(instrument.limits.pids, 1'000'000);
    if (!pids) return pids.error();
    if (*pids < 1) return limits.Child("pids").Fail("must be at least 1");
    instrument.limits.pids = *pids;
    auto cpus = limits.Child("cpus").Number(instrument.limits.cpus);
    if (!cpus) return cpus.error();
    if (!(*cpus >= 0.01 && *cpus <= 1024)) return limits.Child("cpus").Fail("must be 0.01 to 1024");
    instrument.limits.cpus = *cpus;
    auto files = limits.Child("open_files").Unsigned(instrument.limits.open_files, 1 << 20);
    if (!files) return files.error();
    if (*files < 16) return limits.Child("open_files").Fail("must be at least 16");
    instrument.limits.open_files = *files;
  }
  auto transient = item.Child("transient").Size(instrument.transient_bytes);
  if (!transient) return transient.error();
  if (*transient < (1ull << 20)) return item.Child("transient").Fail("must be at least 1M");
  instrument.transient_bytes = *transient;
  auto args = item.Child("args").StringList();
  if (!args) return args.error();
  instrument.extra_args = *args;
  auto bus = item.Child("bus");
  if (bus.present()) {
    CUSTOS_TRY(bus.OnlyKeys({"publish", "subscribe"}));
    for (auto [key, target] : {std::pair{"publish", &instrument.publish},
                               std::pair{"subscribe", &instrument.subscribe}}) {
      auto topics = bus.Child(key).StringList();
      if (!topics) return topics.error();
      for (const auto& topic : *topics) {
        if (!bus::IsValidName(topic)) {
          return bus.Child(key).Fail("'" + topic +
                                     "' is not a topic name (1-128 of a-z, 0-9, '.', '_', '-')");
        }
      }
      *target = *topics;
    }
  }
  auto settings = item.Child("settings");
  if (settings.present() && !settings.node().IsMap()) return settings.Fail("expected a map");
  auto json = settings.AsJson();
  if (!json) return json.error();
  instrument.settings_json = *json;
  return instrument;
}

Status ParseSensorSection(const YamlField& section, SensorConfig& config) {
  if (!section.present()) return section.Fail("is required");
  CUSTOS_TRY(section.OnlyKeys({"name", "state_dir", "data_root", "log_dir", "runtime", "uid_base",
                               "retention_sweep", "restart_backoff", "stop_grace"}));
  auto name = section.Child("name").String();
  if (!name) return name.error();
  if (!IsValidName(*name)) {
    return section.Child("name").Fail("'" + *name + "' must be 1-15 characters of a-z, 0-9 and -");
  }
  config.name = *name;
  for (auto [key, target] :
       {std::pair{"state_dir", &config.state_dir}, std::pair{"data_root", &config.data_root},
        std::pair{"log_dir", &config.log_dir}}) {
    auto value = section.Child(key).StringOr(*target);
    if (!value) return value.error();
    if (!fs::path(*value).is_absolute()) return section.Child(key).Fail("must be an absolute path");
    *target = *value;
  }
  auto runtime = section.Child("runtime").StringOr(config.runtime);
  if (!runtime) return runtime.error();
  config.runtime = *runtime;
  auto uid_base = section.Child("uid_base").Unsigned(config.uid_base, kMaxUid);
  if (!uid_base) return uid_base.error();
  if (*uid_base < 65536) return section.Child("uid_base").Fail("must be at least 65536");
  config.uid_base = *uid_base;
  auto sweep = section.Child("retention_sweep").Duration(config.retention_sweep);
  if (!sweep) return sweep.error();
  if (sweep->count() < 100) return section.Child("retention_sweep").Fail("must be at least 100ms");
  config.retention_sweep = *sweep;
  auto backoff = section.Child("restart_backoff");
  if (backoff.present()) {
    CUSTOS_TRY(backoff.OnlyKeys({"initial", "max"}));
    auto initial = backoff.Child("initial").Duration(config.restart_backoff_initial);
    if (!initial) return initial.error();
    auto max = backoff.Child("max").Duration(config.restart_backoff_max);
    if (!max) return max.error();
    if (*max < *initial) return backoff.Child("max").Fail("must not be shorter than initial");
    config.restart_backoff_initial = *initial;
    config.restart_backoff_max = *max;
  }
  auto grace = section.Child("stop_grace").Duration(config.stop_grace);
  if (!grace) return grace.error();
  config.stop_grace = *grace;
  return {};
}

Status ParsePolicy(const YamlField& policy, SensorConfig& config) {
  if (!policy.present()) return {};
  CUSTOS_TRY(policy.OnlyKeys({"allowed_capabilities", "active_interfaces", "messages", "uplink"}));
  auto capabilities = policy.Child("allowed_capabilities").StringList();
  if (!capabilities) return capabilities.error();
  for (const auto& capability : *capabilities) {
    if (!IsKnownCapability(capability)) {
      return policy.Child("allowed_capabilities").Fail("unknown capability '" + capability + "'");
    }
  }
  config.allowed_capabilities = *capabilities;
  auto interfaces = policy.Child("active_interfaces").StringList();
  if (!interfaces) return interfaces.error();
  config.active_interfaces = *interfaces;
  auto messages = policy.Child("messages");
  if (messages.present() && !messages.node().IsSequence()) return messages.Fail("expected a list");
  for (const auto& entry : messages.Items()) {
    CUSTOS_TRY(entry.OnlyKeys({"from", "to", "types"}));
    MessagePermission permission;
    auto from = entry.Child("from").String();
    if (!from) return from.error();
    auto to = entry.Child("to").String();
    if (!to) return to.error();
    auto types = entry.Child("types").StringList();
    if (!types) return types.error();
    if (types->empty()) return entry.Child("types").Fail("names no message type");
    for (const auto& type : *types) {
      if (!bus::IsValidName(type))
        return entry.Child("types").Fail("'" + type + "' is not a message type name");
    }
    config.messages.push_back({*from, *to, *types});
  }
  auto uplink = policy.Child("uplink").StringList();
  if (!uplink) return uplink.error();
  for (const auto& topic : *uplink) {
    if (!bus::IsValidName(topic)) {
      return policy.Child("uplink").Fail(
          "'" + topic + "' is not a topic name (1-128 of a-z, 0-9, '.', '_', '-')");
    }
  }
  config.uplink = *uplink;
  return {};
}

// After `sensor:`, whose data_root gives the spool's default place.
Status ParseFleet(const YamlField& section, SensorConfig& config) {
  if (!section.present()) return {};
  CUSTOS_TRY(section.OnlyKeys({"identity", "spool_dir", "spool_max_bytes", "heartbeat_seconds",
                               "data_volume", "data_volume_size"}));
  FleetConfig fleet;
  fleet.spool_dir = config.data_root + "/spool";
  for (auto [key, target] :
       {std::pair{"identity", &fleet.identity}, std::pair{"spool_dir", &fleet.spool_dir}}) {
    auto value = section.Child(key).StringOr(*target);
    if (!value) return value.error();
    if (!fs::path(*value).is_absolute()) return section.Child(key).Fail("must be an absolute path");
    *target = fs::path(*value).lexically_normal().string();
  }
  // An instrument must not reach the spool through its own storage.
  auto instruments = (fs::path(config.data_root) / "instruments").lexically_normal();
  auto relative = fs::path(fleet.spool_dir).lexically_relative(instruments);
  if (!relative.empty() && *relative.begin() != "..") {
    return section.Child("spool_dir").Fail("must not be inside " + instruments.string());
  }
  auto max_bytes = section.Child("spool_max_bytes").Size(fleet.spool_max_bytes);
  if (!max_bytes) return max_bytes.error();
  // The largest event (1 MiB) must fit, with room for the segments around it.
  if (*max_bytes < (4ull << 20))
    return section.Child("spool_max_bytes").Fail("must be at least 4M");
  fleet.spool_max_bytes = *max_bytes;
  auto heartbeat = section.Child("heartbeat_seconds").Unsigned(fleet.heartbeat.count(), 3600);
  if (!heartbeat) return heartbeat.error();
  if (*heartbeat < 1) return section.Child("heartbeat_seconds").Fail("must be at least 1");
  fleet.heartbeat = std::chrono::seconds(*heartbeat);
  auto volume = section.Child("data_volume").StringOr("");
  if (!volume) return volume.error();
  if (!volume->empty()) {
    if (!fs::path(*volume).is_absolute())
      return section.Child("data_volume").Fail("must be an absolute path");
    auto inside = fs::path(*volume).lexically_normal().lexically_relative(config.data_root);
    if (!inside.empty() && *inside.begin() != "..")
      return section.Child("data_volume").Fail("must not be inside data_root, where it is mounted");
    fleet.data_volume = fs::path(*volume).lexically_normal().string();
    // The spool must be the encrypted one, inside the volume.
    if (fleet.spool_dir != (fs::path(config.data_root) / "spool").lexically_normal().string())
      return section.Child("spool_dir").Fail("must be <data_root>/spool with a data_volume");
  }
  auto volume_bytes = section.Child("data_volume_size").Size(fleet.data_volume_bytes);
  if (!volume_bytes) return volume_bytes.error();
  if (*volume_bytes < (64ull << 20))
    return section.Child("data_volume_size").Fail("must be at least 64M");
  fleet.data_volume_bytes = *volume_bytes;
  config.fleet = fleet;
  return {};
}

// `local` gives sensor: and fleet:, `policy_root` policy: and instruments:
// (the same document unless a fleet's desired state supplies the latter).
Result<SensorConfig> ParseRoot(const YamlField& local, const YamlField& policy_root,
                               const fs::path& base) {
  CUSTOS_TRY(local.OnlyKeys({"sensor", "fleet", "policy", "instruments"}));
  if (&local != &policy_root && policy_root.present()) {
    CUSTOS_TRY(policy_root.OnlyKeys({"policy", "instruments"}));
  }
  SensorConfig config;
  CUSTOS_TRY(ParseSensorSection(local.Child("sensor"), config));
  CUSTOS_TRY(ParseFleet(local.Child("fleet"), config));
  const YamlField& root = policy_root;
  CUSTOS_TRY(ParsePolicy(root.Child("policy"), config));
  auto instruments = root.Child("instruments");
  if (instruments.present() && !instruments.node().IsSequence()) {
    return instruments.Fail("expected a list of instruments");
  }
  std::set<std::string> names;
  std::set<std::string> interfaces;
  int captures = 0;
  for (const auto& item : instruments.Items()) {
    auto instrument = ParseInstrument(item, base, config);
    if (!instrument) return instrument.error();
    if (!names.insert(instrument->name).second) {
      return item.Child("name").Fail("'" + instrument->name + "' is used twice");
    }
    if (instrument->network == NetworkMode::kCapture && captures++ > 0) {
      return item.Child("network").Fail("only one instrument may be the capture engine");
    }
    if (!instrument->interface.empty() && !interfaces.insert(instrument->interface).second) {
      return item.Child("interface")
          .Fail("'" + instrument->interface + "' is given to two instruments");
    }
    config.instruments.push_back(std::move(*instrument));
  }
  // Policy may only name instruments that exist, so a typo cannot hide.
  auto messages = root.Child("policy").Child("messages").Items();
  for (size_t i = 0; i < config.messages.size(); ++i) {
    for (const auto* name : {&config.messages[i].from, &config.messages[i].to}) {
      if (!names.contains(*name))
        return messages[i].Fail("names no configured instrument '" + *name + "'");
    }
  }
  return config;
}

}  // namespace

const char* NetworkModeName(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kNone:
      return "none";
    case NetworkMode::kPassive:
      return "passive";
    case NetworkMode::kActive:
      return "active";
    case NetworkMode::kCapture:
      return "capture";
    case NetworkMode::kRing:
      return "ring";
  }
  return "?";
}

bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 15) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return name.front() != '-';
}

Result<InstrumentManifest> LoadManifest(const std::string& path) {
  auto root = LoadYamlFile(path);
  if (!root) return root.error();
  try {
    return ParseManifest(*root, fs::path(path).parent_path());
  } catch (const YAML::Exception& e) {
    return Error{path + ": " + e.what()};
  }
}

Result<InstrumentManifest> ParseManifestText(const std::string& text, const std::string& name) {
  auto root = LoadYamlText(text, name);
  if (!root) return root.error();
  try {
    return ParseManifest(*root, fs::path(name).parent_path());
  } catch (const YAML::Exception& e) {
    return Error{name + ": " + e.what()};
  }
}

Result<SensorConfig> ParseSensorConfig(const std::string& text, const std::string& name) {
  auto root = LoadYamlText(text, name);
  if (!root) return root.error();
  try {
    return ParseRoot(*root, *root, fs::path(name).parent_path());
  } catch (const YAML::Exception& e) {
    return Error{name + ": " + e.what()};
  }
}

Result<SensorConfig> LoadSensorConfig(const std::string& path) {
  auto root = LoadYamlFile(path);
  if (!root) return root.error();
  try {
    return ParseRoot(*root, *root, fs::absolute(path).parent_path());
  } catch (const YAML::Exception& e) {
    return Error{path + ": " + e.what()};
  }
}

Result<SensorConfig> LoadSensorConfigWithPolicy(const std::string& path,
                                                const std::string& policy_text,
                                                const std::string& policy_name) {
  auto local = LoadYamlFile(path);
  if (!local) return local.error();
  auto policy = LoadYamlText(policy_text, policy_name);
  if (!policy) return policy.error();
  try {
    return ParseRoot(*local, *policy, fs::absolute(path).parent_path());
  } catch (const YAML::Exception& e) {
    return Error{path + ": " + e.what()};
  }
}

}  // namespace custos
