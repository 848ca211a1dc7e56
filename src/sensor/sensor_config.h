// The sensor's configuration: one YAML file naming the instruments to run,
// each with its manifest, network mode, limits, retention and settings.
// docs/configuration.md documents every field; LoadSensorConfig validates the
// whole file and returns an Error naming file, line and field on any fault.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace custos {

// kCapture is the capture engine's: it owns the monitored interface, and its
// namespace holds the tap ends of every passive instrument's mirror link.
// kRing has no interface at all: the instrument reads the engine's shared
// capture ring (include/custos/capture_ring.h).
enum class NetworkMode { kNone, kPassive, kActive, kCapture, kRing };

const char* NetworkModeName(NetworkMode mode);

// What an instrument's author declares about it (instruments/<name>/manifest.yaml).
struct InstrumentManifest {
  std::string name;
  std::string executable;                 // absolute host path of the binary
  std::vector<std::string> args;          // arguments after the executable
  std::vector<std::string> files;         // extra host files copied into its root filesystem
  std::vector<std::string> capabilities;  // e.g. CAP_NET_RAW
  std::vector<NetworkMode> networks;      // modes it can work in
  bool sockets = true;                    // false: seccomp refuses socket() and socketpair()

  bool operator==(const InstrumentManifest&) const = default;
};

struct ResourceLimits {
  std::uint64_t memory_bytes = 256ull << 20;
  std::uint64_t pids = 64;
  double cpus = 1.0;  // CPU time share, in cores
  std::uint64_t open_files = 1024;

  bool operator==(const ResourceLimits&) const = default;
};

// One entry of `instruments:` in the sensor configuration.
struct InstrumentConfig {
  std::string name;
  InstrumentManifest manifest;
  NetworkMode network = NetworkMode::kNone;
  std::string interface;       // active mode: host interface to hand over
  std::string capture_filter;  // passive and ring mode: pcap-filter(7) expression
  std::chrono::milliseconds retention{std::chrono::hours(24 * 7)};
  ResourceLimits limits;
  std::uint64_t transient_bytes = 64ull << 20;
  std::vector<std::string> extra_args;
  std::string settings_json = "{}";    // free-form settings for the instrument
  std::vector<std::string> publish;    // bus topics it may publish on
  std::vector<std::string> subscribe;  // bus topics it may subscribe to

  bool operator==(const InstrumentConfig&) const = default;
};

// One entry of policy.messages: `from` may send `to` messages of these types
// (the type "file" allows file distribution).
struct MessagePermission {
  std::string from;
  std::string to;
  std::vector<std::string> types;

  bool operator==(const MessagePermission&) const = default;
};

// The optional `fleet:` section: the link to the fleet server. Without it,
// sensord runs alone.
struct FleetConfig {
  std::string identity = "/var/lib/custos/identity";  // what `custos sensor enroll` wrote
  std::string spool_dir;                              // empty: <data_root>/spool
  std::uint64_t spool_max_bytes = 256ull << 20;
  std::chrono::seconds heartbeat{5};
  // The encrypted data root: an image file or a block device with an ext4
  // that sensord mounts at data_root once the fleet's data key unlocks it.
  // Empty: data_root is an ordinary folder.
  std::string data_volume;
  std::uint64_t data_volume_bytes = 1ull << 30;  // size of an image made on first start

  bool operator==(const FleetConfig&) const = default;
};

struct SensorConfig {
  std::string name = "sensor";
  std::string state_dir = "/run/custos";
  std::string data_root = "/var/lib/custos";
  std::string log_dir = "/var/log/custos";
  std::string runtime = "runc";
  std::uint64_t uid_base = 1'000'000;
  std::chrono::milliseconds retention_sweep{std::chrono::minutes(1)};
  std::chrono::milliseconds restart_backoff_initial{std::chrono::seconds(1)};
  std::chrono::milliseconds restart_backoff_max{std::chrono::minutes(1)};
  std::chrono::milliseconds stop_grace{std::chrono::seconds(5)};
  std::vector<std::string> allowed_capabilities;
  std::vector<std::string> active_interfaces;
  std::vector<MessagePermission> messages;
  std::vector<std::string> uplink;  // policy.uplink: bus topics forwarded to the fleet
  std::vector<InstrumentConfig> instruments;
  std::optional<FleetConfig> fleet;
};

Result<SensorConfig> LoadSensorConfig(const std::string& path);
Result<SensorConfig> ParseSensorConfig(const std::string& text, const std::string& name);
// The file at `path` for `sensor:` and `fleet:`, with `policy:` and
// `instruments:` taken from `policy_text` instead (a desired state sent by
// the fleet; errors name it `policy_name`). Relative manifest paths resolve
// against the file's folder.
Result<SensorConfig> LoadSensorConfigWithPolicy(const std::string& path,
                                                const std::string& policy_text,
                                                const std::string& policy_name);
Result<InstrumentManifest> LoadManifest(const std::string& path);
// Parses manifest text; relative paths resolve against `name`'s folder.
Result<InstrumentManifest> ParseManifestText(const std::string& text, const std::string& name);

// Names of instruments and sensors become container, netns and interface
// names, so they are limited to [a-z0-9-], 1 to 15 characters.
bool IsValidName(const std::string& name);

}  // namespace custos
