#include "sensor/instrument.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cerrno>
#include <filesystem>
#include <functional>

#include "common/files.h"
#include "common/log.h"
#include "common/process.h"
#include "sandbox/cgroup_stats.h"
#include "sandbox/netns.h"
#include "sandbox/nftables.h"
#include "sandbox/oci_bundle.h"
#include "sandbox/rootfs.h"
#include "storage/instrument_storage.h"

namespace custos {
namespace {

constexpr const char* kSettingsPath = "/etc/custos/instrument.json";
constexpr const char* kDataPath = "/data";
constexpr const char* kBusPath = "/run/custos/bus";
constexpr const char* kUiPath = "/run/custos/ui";
constexpr const char* kTapPath = "/run/custos/taps";
// Where a ring instrument finds the ring and its cursor (runc --preserve-fds).
constexpr int kRingFd = 3;
constexpr int kRingCursorFd = 4;

// Interface names are limited to 15 characters; a hash keeps the host end's
// name short and unique per sensor and instrument.
std::string HostEndName(const std::string& sensor, const std::string& instrument) {
  char name[16];
  std::snprintf(name, sizeof name, "cm%08zx",
                std::hash<std::string>{}(sensor + "/" + instrument) & 0xffffffff);
  return name;
}

// Waits for the process behind `pidfd` to exit, up to `timeout`.
bool WaitForExit(int pidfd, std::chrono::milliseconds timeout) {
  pollfd entry{pidfd, POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    int ready = ::poll(&entry, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

const char* InstrumentStateName(InstrumentState state) {
  switch (state) {
    case InstrumentState::kStopped:
      return "stopped";
    case InstrumentState::kRunning:
      return "running";
    case InstrumentState::kBackoff:
      return "backoff";
    case InstrumentState::kExited:
      return "exited";
  }
  return "?";
}

Instrument::Instrument(InstrumentConfig config, SensorPlatform& platform)
    : config_(std::move(config)), platform_(platform) {}

Instrument::~Instrument() {
  if (running()) Stop();
}

std::string Instrument::persistent_dir() const {
  return PersistentDirectory(platform_.sensor.data_root, config_.name);
}

std::string Instrument::SettingsDocument() const {
  nlohmann::json settings = {
      {"instrument", config_.name},
      {"sensor", platform_.sensor.name},
      {"network", NetworkModeName(config_.network)},
      {"retention_seconds",
       std::chrono::duration_cast<std::chrono::seconds>(config_.retention).count()},
      {"bus", {{"publish", config_.publish}, {"subscribe", config_.subscribe}}},
      {"settings", nlohmann::json::parse(config_.settings_json)}};
  return settings.dump(1);
}

Status Instrument::WriteSettings(const std::string& path, std::uint32_t host_uid) const {
  // Settings may carry secrets: readable by the instrument's root alone.
  CUSTOS_TRY(WriteFileAtomic(path, SettingsDocument(), 0400));
  if (::chown(path.c_str(), host_uid, host_uid) != 0) return ErrnoError("chown " + path);
  return {};
}

Result<ContainerSpec> Instrument::BuildSpec(std::uint32_t host_uid, const std::string& persistent) {
  const auto& manifest = config_.manifest;
  auto needed = platform_.resolver.FilesFor(manifest.executable);
  if (!needed) return needed.error();
  std::string executable = ExecutableInRootfs(manifest.executable);
  std::vector<RootfsFile> files{{manifest.executable, executable}};
  for (size_t i = 1; i < needed->size(); ++i) files.push_back({(*needed)[i], (*needed)[i]});
  for (const auto& file : manifest.files) files.push_back({file, file});
  std::string rootfs = platform_.RootfsDir(config_.name);
  CUSTOS_TRY(AssembleRootfs(files, rootfs));
  CUSTOS_TRY(MakeDirectories(rootfs + "/etc/custos", 0755));
  CUSTOS_TRY(WriteSettings(rootfs + kSettingsPath, host_uid));
  ContainerSpec spec;
  spec.id = platform_.ContainerId(config_.name);
  spec.hostname = config_.name;
  spec.args.push_back(executable);
  spec.args.insert(spec.args.end(), manifest.args.begin(), manifest.args.end());
  spec.args.insert(spec.args.end(), config_.extra_args.begin(), config_.extra_args.end());
  auto retention_s = std::chrono::duration_cast<std::chrono::seconds>(config_.retention).count();
  spec.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
              "CUSTOS_INSTRUMENT=" + config_.name,
              "CUSTOS_SETTINGS=" + std::string(kSettingsPath),
              "CUSTOS_DATA=" + std::string(kDataPath),
              "CUSTOS_RETENTION_SECONDS=" + std::to_string(retention_s),
              "CUSTOS_BUS=" + std::string(kBusPath) + "/bus.sock",
              "CUSTOS_UI_SOCKET=" + std::string(kUiPath) + "/ui.sock",
              "TMPDIR=/tmp"};
  if (config_.network == NetworkMode::kCapture && !config_.interface.empty()) {
    spec.env.push_back("CUSTOS_CAPTURE_INTERFACE=" + config_.interface);
  }
  if (config_.network == NetworkMode::kRing) {
    spec.env.push_back("CUSTOS_RING_FD=" + std::to_string(kRingFd));
    spec.env.push_back("CUSTOS_RING_CURSOR_FD=" + std::to_string(kRingCursorFd));
  }
  if (!config_.capture_filter.empty())
    spec.env.push_back("CUSTOS_CAPTURE_FILTER=" + config_.capture_filter);
  spec.rootfs = rootfs;
  spec.mounts.push_back({persistent, kDataPath, false});
  if (platform_.broker != nullptr)
    spec.mounts.push_back({platform_.BusDir(config_.name), kBusPath, true});
  spec.mounts.push_back({platform_.UiDir(config_.name), kUiPath, false});
  if (config_.network == NetworkMode::kCapture)
    spec.mounts.push_back({platform_.TapDir(), kTapPath, true});
  spec.tmpfs_bytes = config_.transient_bytes;
  spec.host_uid = host_uid;
  spec.uid_count = kUidRangeSize;
  spec.capabilities = manifest.capabilities;
  spec.sockets = manifest.sockets;
  spec.memory_bytes = config_.limits.memory_bytes;
  spec.pids = config_.limits.pids;
  spec.cpus = config_.limits.cpus;
  spec.open_files = config_.limits.open_files;
  spec.cgroup_path = platform_.CgroupPath(config_.name);
  return spec;
}

Status Instrument::OpenBusEndpoint(std::uint32_t host_uid, const std::string& persistent) {
  if (platform_.broker == nullptr) return {};
  std::string dir = platform_.BusDir(config_.name);
  CUSTOS_TRY(MakeDirectories(dir, 0711));
  return platform_.broker->AddEndpoint(
      {config_.name, dir + "/bus.sock", host_uid, persistent, SettingsDocument()});
}

Status Instrument::PrepareUiDirectory(std::uint32_t host_uid) {
  CUSTOS_TRY(MakeDirectories(platform_.sensor.state_dir + "/ui", 0711));
  std::string dir = platform_.UiDir(config_.name);
  CUSTOS_TRY(MakeDirectories(dir, 0700));
  if (::chown(dir.c_str(), host_uid, host_uid) != 0) return ErrnoError("chown " + dir);
  return {};
}

Status Instrument::AttachCapture(const std::string& pin) {
  // Tap ends created here must not chatter either.
  for (const char* key :
       {"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}) {
    auto result = RunInNetns(pin, {"sysctl", "-q", "-w", key});
    if (!result) return result.error();
  }
  if (!config_.interface.empty()) {
    CUSTOS_TRY(MoveInterfaceIn(config_.interface, pin));
    interface_moved_ = true;
    // Nothing ever leaves the sensor onto the monitored network.
    CUSTOS_TRY(AddDropChain(pin, "egress", config_.interface, "out_monitored"));
  }
  platform_.hub_netns = pin;
  platform_.capture_pid = pid_;
  return {};
}

Status Instrument::WriteTapInfo(const std::string& key) const {
  nlohmann::json info = {{"instrument", config_.name}, {"filter", config_.capture_filter}};
  return WriteFileAtomic(platform_.TapDir() + "/" + key + ".json", info.dump(), 0644);
}

void Instrument::ReleaseRing() {
  if (!ring_) return;
  // The engine must not wait for a consumer that is gone.
  ring_->view.Reset();
  platform_.ring_slots[ring_->slot] = "";
  std::error_code ignored;
  std::filesystem::remove(platform_.TapDir() + "/ring-" + std::to_string(ring_->slot) + ".json",
                          ignored);
  ring_.reset();
}

Status Instrument::AcquireRing() {
  if (platform_.capture_pid <= 0)
    return Error{"no capture engine is running to provide the capture ring"};
  int slot = -1;
  for (int i = 0; i < capture::kRingConsumers && slot < 0; ++i)
    if (platform_.ring_slots[i].empty()) slot = i;
  auto grant = GrantRing(platform_.capture_pid, slot, std::chrono::seconds(5));
  if (!grant) return grant.error();
  platform_.ring_slots[slot] = config_.name;
  ring_.emplace(std::move(*grant));
  return WriteTapInfo("ring-" + std::to_string(slot));
}

Status Instrument::AttachNetwork() {
  std::string pin = platform_.NetnsPin(config_.name);
  CUSTOS_TRY(PinNetns(pid_, pin));
  netns_pinned_ = true;
  if (config_.network == NetworkMode::kPassive) {
    // Written first: the engine reads it when the tap end appears.
    std::string host_end = HostEndName(platform_.sensor.name, config_.name);
    CUSTOS_TRY(WriteTapInfo(host_end));
    auto link = CreateMirrorLink(platform_.hub_netns, pin, host_end);
    if (!link) {
      std::error_code ignored;
      std::filesystem::remove(platform_.TapDir() + "/" + host_end + ".json", ignored);
      return link.error();
    }
    mirror_ = *link;
  } else if (config_.network == NetworkMode::kActive) {
    CUSTOS_TRY(MoveInterfaceIn(config_.interface, pin));
    interface_moved_ = true;
  } else if (config_.network == NetworkMode::kCapture) {
    CUSTOS_TRY(AttachCapture(pin));
  }
  return {};
}

Status Instrument::Start() {
  if (running()) return Error{config_.name + " is already running"};
  auto host_uid = platform_.uid_slots.HostUidFor(config_.name);
  if (!host_uid) return host_uid.error();
  if (platform_.storage_locked) {
    return Error{"the data root is locked, waiting for the fleet's data key"};
  }
  if (platform_.store != nullptr) {
    // Its own fscrypt key, derived from the data key: the directory is
    // readable only while the instrument runs.
    auto unlocked = platform_.store->Unlock(config_.name);
    if (!unlocked) return unlocked.error();
  }
  auto persistent = PreparePersistentDirectory(platform_.sensor.data_root, config_.name, *host_uid);
  if (!persistent) return persistent.error();
  std::string bundle = platform_.BundleDir(config_.name);
  CUSTOS_TRY(MakeDirectories(bundle, 0700));
  CUSTOS_TRY(OpenBusEndpoint(*host_uid, *persistent));
  CUSTOS_TRY(PrepareUiDirectory(*host_uid));
  auto spec = BuildSpec(*host_uid, *persistent);
  if (!spec) return spec.error();
  CUSTOS_TRY(WriteOciBundle(*spec, bundle));

  CUSTOS_TRY(MakeDirectories(platform_.sensor.log_dir, 0750));
  CUSTOS_TRY(MakeDirectories(platform_.TapDir(), 0755));
  auto log = LogPump::Open(*platform_.loop, platform_.LogFile(config_.name));
  if (!log) return log.error();
  log_ = std::move(*log);

  std::vector<int> pass_fds;
  if (config_.network == NetworkMode::kRing) {
    if (auto acquired = AcquireRing(); !acquired) {
      ReleaseRing();
      return acquired.error();
    }
    pass_fds = {ring_->ring.get(), ring_->cursor.get()};
  }
  // Without a network of its own to plumb, create and start are one call.
  bool plumb = config_.network != NetworkMode::kNone && config_.network != NetworkMode::kRing;
  auto pid = plumb ? platform_.runtime.Create(spec->id, bundle, log_->write_end(), pass_fds)
                   : platform_.runtime.Run(spec->id, bundle, log_->write_end(), pass_fds);
  // The container holds the write end now; ours would keep the pipe open.
  log_->CloseWriteEnd();
  if (!pid) {
    log_.reset();
    ReleaseRing();
    (void)platform_.runtime.Delete(spec->id, true);
    std::error_code ignored;
    std::filesystem::remove_all(bundle, ignored);
    return pid.error();
  }
  pid_ = *pid;
  pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  auto fail = [&](const Error& error) -> Status {
    (void)platform_.runtime.Kill(spec->id, SIGKILL);
    Stop();
    return error;
  };
  if (!pidfd_.valid()) return fail(ErrnoError("pidfd_open"));
  if (plumb) {
    if (auto attached = AttachNetwork(); !attached) return fail(attached.error());
    if (auto started = platform_.runtime.Start(spec->id); !started) return fail(started.error());
  }
  started_at_ = std::chrono::steady_clock::now();
  state_ = InstrumentState::kRunning;
  last_error_.clear();
  spdlog::info("instrument {} started (pid {}, network {})", config_.name, pid_,
               NetworkModeName(config_.network));
  return {};
}

void Instrument::Stop() {
  if (!running()) return;
  std::string id = platform_.ContainerId(config_.name);
  // A container created but never started ignores SIGTERM; the kill below covers it.
  (void)platform_.runtime.Kill(id, SIGTERM);
  if (!WaitForExit(pidfd_.get(), platform_.sensor.stop_grace)) {
    spdlog::warn("instrument {} did not stop within {} ms; killing it", config_.name,
                 platform_.sensor.stop_grace.count());
    (void)platform_.runtime.Kill(id, SIGKILL);
    WaitForExit(pidfd_.get(), std::chrono::seconds(10));
  }
  int status = 0;
  int code = -1;
  // Non-blocking: a process stuck in the kernel must not hang the daemon.
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    code = ExitCodeFromStatus(status);
  } else {
    spdlog::error("instrument {} (pid {}) did not exit after SIGKILL", config_.name, pid_);
  }
  last_exit_ = code;
  Cleanup();
  state_ = InstrumentState::kStopped;
  spdlog::info("instrument {} stopped", config_.name);
}

void Instrument::Exited(int exit_code) {
  last_exit_ = exit_code;
  Cleanup();
  spdlog::log(exit_code == 0 ? spdlog::level::info : spdlog::level::warn,
              "instrument {} exited with code {}", config_.name, exit_code);
}

void Instrument::Cleanup() {
  if (log_) {
    log_->Drain();
    log_.reset();
  }
  // Read before the runtime deletes the cgroup with its counters.
  if (auto kills = CgroupOomKills(platform_.CgroupPath(config_.name))) oom_kills_ += *kills;
  std::string pin = platform_.NetnsPin(config_.name);
  if (interface_moved_) {
    if (auto moved = MoveInterfaceBack(config_.interface, pin); !moved) {
      spdlog::error("instrument {}: cannot hand back {}: {}", config_.name, config_.interface,
                    moved.error().message);
    }
    interface_moved_ = false;
  }
  if (config_.network == NetworkMode::kCapture && platform_.hub_netns == pin) {
    platform_.hub_netns = NamedNetnsPath(platform_.HubNetnsName());
  }
  if (config_.network == NetworkMode::kCapture && platform_.capture_pid == pid_) {
    platform_.capture_pid = -1;
  }
  ReleaseRing();
  std::error_code ignored_error;
  if (mirror_) {
    std::filesystem::remove(platform_.TapDir() + "/" + mirror_->host_end + ".json", ignored_error);
    if (auto destroyed = DestroyMirrorLink(*mirror_); !destroyed) {
      spdlog::error("instrument {}: {}", config_.name, destroyed.error().message);
    }
    mirror_.reset();
  }
  if (netns_pinned_) {
    (void)UnpinNetns(pin);
    netns_pinned_ = false;
  }
  if (auto deleted = platform_.runtime.Delete(platform_.ContainerId(config_.name), true);
      !deleted) {
    spdlog::error("instrument {}: {}", config_.name, deleted.error().message);
  }
  std::error_code ignored;
  std::filesystem::remove_all(platform_.BundleDir(config_.name), ignored);
  pidfd_.reset();
  pid_ = -1;
  if (platform_.store != nullptr) {
    if (auto locked = platform_.store->Lock(config_.name); !locked) {
      spdlog::warn("instrument {}: storage stays unlocked: {}", config_.name,
                   locked.error().message);
    }
  }
}

std::chrono::steady_clock::duration Instrument::Uptime() const {
  if (!running()) return {};
  return std::chrono::steady_clock::now() - started_at_;
}

nlohmann::json Instrument::StatusJson() const {
  nlohmann::json status = {
      {"name", config_.name},
      {"state", InstrumentStateName(state_)},
      {"network", NetworkModeName(config_.network)},
      {"restarts", restarts_},
      {"oom_kills", oom_kills_},
      {"retention_seconds",
       std::chrono::duration_cast<std::chrono::seconds>(config_.retention).count()},
      {"log", platform_.LogFile(config_.name)}};
  status["pid"] = running() ? nlohmann::json(pid_) : nlohmann::json(nullptr);
  status["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(Uptime()).count();
  status["last_exit"] = last_exit_ ? nlohmann::json(*last_exit_) : nlohmann::json(nullptr);
  if (!last_error_.empty()) status["last_error"] = last_error_;
  auto memory = running() ? CgroupMemoryBytes(platform_.CgroupPath(config_.name)) : std::nullopt;
  status["memory_bytes"] = memory ? nlohmann::json(*memory) : nlohmann::json(nullptr);
  status["memory_limit_bytes"] = config_.limits.memory_bytes;
  if (mirror_) {
    status["mirror_host_end"] = mirror_->host_end;
    // Counted by the kernel on the tap end, not reported by any instrument.
    if (auto stats = ReadInterfaceStats(mirror_->hub_netns, mirror_->host_end)) {
      status["mirror"] = {{"delivered", stats->tx_packets}, {"dropped", stats->tx_dropped}};
    }
  }
  if (ring_) {
    // Counted by the instrument in its cursor page: its own account.
    const auto& cursor = ring_->view.page();
    status["ring"] = {{"slot", ring_->slot},
                      {"delivered", cursor.delivered.load(std::memory_order_relaxed)},
                      {"dropped", cursor.dropped.load(std::memory_order_relaxed)},
                      {"filtered", cursor.filtered.load(std::memory_order_relaxed)}};
  }
  return status;
}

}  // namespace custos
