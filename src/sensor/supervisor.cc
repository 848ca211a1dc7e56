#include "sensor/supervisor.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>

#include "common/files.h"
#include "common/log.h"
#include "common/process.h"
#include "common/units.h"
#include "sandbox/cgroup_stats.h"
#include "sandbox/netns.h"
#include "sandbox/veth.h"
#include "storage/retention.h"

namespace custos {
namespace fs = std::filesystem;

namespace {

// The runtime mounts an instrument's root filesystem and storage from inside
// its user namespace, as an unprivileged uid, so every folder on the way
// there must be searchable by others.
Status CheckSearchable(const fs::path& path) {
  for (fs::path at = path; !at.empty() && at != at.root_path(); at = at.parent_path()) {
    struct stat info {};
    if (::stat(at.c_str(), &info) != 0) return ErrnoError("cannot stat " + at.string());
    if ((info.st_mode & S_IXOTH) == 0) {
      return Error{at.string() +
                   " must be searchable by others (chmod o+x) so containers can reach " +
                   path.string()};
    }
  }
  return {};
}

// After a crash, an active instrument's interface may still sit in its
// pinned namespace: move every interface but lo and mirror0 back here.
void HandBackInterfaces(const std::string& pin) {
  auto listing = RunInNetns(pin, {"ip", "-j", "link", "show"});
  if (!listing) return;
  auto links = nlohmann::json::parse(*listing, nullptr, false);
  if (!links.is_array()) return;
  for (const auto& link : links) {
    std::string name = link.value("ifname", "");
    // Tap ends (cm*) of a dead capture engine die with its namespace.
    if (name.empty() || name == "lo" || name == kMirrorInterface || name.rfind("cm", 0) == 0)
      continue;
    if (auto moved = MoveInterfaceBack(name, pin); moved) {
      spdlog::warn("handed back {} left in {} by an earlier run", name, pin);
    } else {
      spdlog::error("cannot hand back {}: {}", name, moved.error().message);
    }
  }
}

bus::BusPolicy BusPolicyOf(const SensorConfig& config) {
  bus::BusPolicy policy;
  for (const auto& permission : config.messages) {
    for (const auto& type : permission.types)
      policy.messages.insert({permission.from, permission.to, type});
  }
  for (const auto& instrument : config.instruments) {
    policy.publish[instrument.name].insert(instrument.publish.begin(), instrument.publish.end());
    policy.subscribe[instrument.name].insert(instrument.subscribe.begin(),
                                             instrument.subscribe.end());
  }
  return policy;
}

nlohmann::json BusStatusJson(const bus::EndpointStats& stats) {
  auto topics = nlohmann::json::object();
  std::uint64_t dropped = stats.messages_dropped;
  for (const auto& [topic, counters] : stats.topics) {
    topics[topic] = {{"published", counters.published},
                     {"delivered", counters.delivered},
                     {"dropped", counters.dropped}};
    dropped += counters.dropped;
  }
  return {{"connections", stats.connections},
          {"messages_sent", stats.messages_sent},
          {"messages_received", stats.messages_received},
          {"refused", stats.refused},
          {"malformed", stats.malformed},
          {"overflowed", stats.overflowed},
          {"messages_dropped", stats.messages_dropped},
          {"files_received", stats.files_received},
          {"queued_bytes", stats.queued_bytes},
          {"dropped", dropped},
          {"topics", topics}};
}

}  // namespace

Supervisor::Supervisor(EventLoop& loop, const SensorConfig& config)
    : loop_(loop), platform_(config) {
  platform_.loop = &loop;
}

Supervisor::~Supervisor() { Shutdown(); }

Status Supervisor::Prepare() {
  const auto& sensor = platform_.sensor;
  // Traversable but not listable: container roots (unprivileged host uids)
  // must reach their root filesystem below it.
  CUSTOS_TRY(MakeDirectories(sensor.state_dir, 0711));
  CUSTOS_TRY(MakeDirectories(sensor.state_dir + "/rootfs", 0711));
  CUSTOS_TRY(MakeDirectories(sensor.state_dir + "/bundles", 0700));
  CUSTOS_TRY(MakeDirectories(sensor.state_dir + "/netns", 0700));
  CUSTOS_TRY(MakeDirectories(platform_.RuntimeRoot(), 0700));
  CUSTOS_TRY(MakeDirectories(sensor.data_root, 0711));
  CUSTOS_TRY(MakeDirectories(sensor.log_dir, 0750));
  CUSTOS_TRY(CheckSearchable(sensor.state_dir + "/rootfs"));
  CUSTOS_TRY(CheckSearchable(sensor.data_root));
  CUSTOS_TRY(platform_.uid_slots.Load());

  // A sensord that was killed leaves containers, pins and its hub behind.
  auto stale = platform_.runtime.List();
  if (!stale) return stale.error();
  for (const auto& id : *stale) {
    spdlog::warn("removing container {} left by an earlier run", id);
    (void)platform_.runtime.Delete(id, true);
  }
  std::error_code ignored;
  for (const auto& pin : fs::directory_iterator(sensor.state_dir + "/netns", ignored)) {
    HandBackInterfaces(pin.path().string());
    (void)UnpinNetns(pin.path().string());
  }
  fs::remove_all(sensor.state_dir + "/bundles", ignored);
  CUSTOS_TRY(MakeDirectories(sensor.state_dir + "/bundles", 0700));
  CUSTOS_TRY(DeleteNamedNetns(platform_.HubNetnsName()));
  CUSTOS_TRY(CreateNamedNetns(platform_.HubNetnsName()));
  // Host ends of mirror links must not chatter (IPv6 DAD, router solicitations).
  for (const char* key :
       {"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}) {
    auto result =
        RunChecked({"ip", "netns", "exec", platform_.HubNetnsName(), "sysctl", "-q", "-w", key});
    if (!result) return result.error();
  }
  fs::remove_all(sensor.state_dir + "/bus", ignored);
  fs::remove_all(sensor.state_dir + "/ui", ignored);
  CUSTOS_TRY(MakeDirectories(sensor.state_dir + "/bus", 0711));
  auto broker = bus::Broker::Start(bus::BrokerLimits{});
  if (!broker) return broker.error();
  broker_ = std::move(*broker);
  broker_->SetPlatformSink(
      [this](std::string_view topic, std::string_view sender, std::string_view payload) {
        journal_.Record(topic, sender, payload);
        if (event_tap_) event_tap_(topic, sender, payload);
      });
  platform_.broker = broker_.get();
  ScheduleSweep();
  return {};
}

Supervisor::Entry* Supervisor::Find(const std::string& name) {
  auto found = entries_.find(name);
  return found == entries_.end() ? nullptr : &found->second;
}

Status Supervisor::Apply(const SensorConfig& config) {
  const auto& current = platform_.sensor;
  std::error_code ignored_error;
  for (auto [field, same] : {std::pair{"name", config.name == current.name},
                             std::pair{"state_dir", config.state_dir == current.state_dir},
                             std::pair{"data_root", config.data_root == current.data_root},
                             std::pair{"log_dir", config.log_dir == current.log_dir},
                             std::pair{"runtime", config.runtime == current.runtime},
                             std::pair{"uid_base", config.uid_base == current.uid_base}}) {
    if (!same) {
      return Error{std::string("sensor.") + field +
                   " cannot change while sensord runs; restart it"};
    }
  }
  platform_.sensor.retention_sweep = config.retention_sweep;
  platform_.sensor.restart_backoff_initial = config.restart_backoff_initial;
  platform_.sensor.restart_backoff_max = config.restart_backoff_max;
  platform_.sensor.stop_grace = config.stop_grace;
  platform_.sensor.allowed_capabilities = config.allowed_capabilities;
  platform_.sensor.active_interfaces = config.active_interfaces;

  if (broker_) broker_->SetPolicy(BusPolicyOf(config));
  // Stop what is gone or changed before starting anything, so a renamed
  // instrument's interface is free for its new owner.
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto wanted = std::find_if(config.instruments.begin(), config.instruments.end(),
                               [&](const InstrumentConfig& c) { return c.name == it->first; });
    if (wanted == config.instruments.end() || !(*wanted == it->second.instrument->config())) {
      CancelRestart(it->second);
      it->second.instrument->Stop();
      if (broker_) broker_->RemoveEndpoint(it->first);
      fs::remove_all(platform_.UiDir(it->first), ignored_error);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  // The capture engine first: passive instruments put their tap ends in its namespace.
  std::vector<const InstrumentConfig*> order;
  for (const auto& instrument : config.instruments) order.push_back(&instrument);
  std::stable_partition(order.begin(), order.end(), [](const InstrumentConfig* c) {
    return c->network == NetworkMode::kCapture;
  });
  for (const InstrumentConfig* wanted : order) {
    const auto& instrument = *wanted;
    if (entries_.contains(instrument.name)) continue;
    auto& entry = entries_[instrument.name];
    entry.instrument = std::make_unique<Instrument>(instrument, platform_);
    Launch(entry);
  }
  return {};
}

void Supervisor::Launch(Entry& entry) {
  auto& instrument = *entry.instrument;
  if (auto started = instrument.Start(); !started) {
    spdlog::error("instrument {} failed to start: {}", instrument.config().name,
                  started.error().message);
    instrument.set_last_error(started.error().message);
    ScheduleRestart(entry);
    return;
  }
  if (instrument.config().network == NetworkMode::kCapture) ReattachPassive();
}

void Supervisor::ReattachPassive() {
  // Their tap ends lived in the namespace of an engine that is gone, and
  // ring instruments read the old engine's ring.
  for (auto& [name, entry] : entries_) {
    auto& passive = *entry.instrument;
    auto network = passive.config().network;
    if ((network != NetworkMode::kPassive && network != NetworkMode::kRing) || !passive.running())
      continue;
    spdlog::info("instrument {} restarts to join the new capture engine", name);
    passive.Stop();
    if (auto started = passive.Start(); !started) {
      passive.set_last_error(started.error().message);
      ScheduleRestart(entry);
    }
  }
}

void Supervisor::ScheduleRestart(Entry& entry) {
  auto& instrument = *entry.instrument;
  const auto& sensor = platform_.sensor;
  auto delay = sensor.restart_backoff_initial;
  for (int i = 0; i < entry.consecutive_failures && delay < sensor.restart_backoff_max; ++i)
    delay *= 2;
  delay = std::min(delay, sensor.restart_backoff_max);
  ++entry.consecutive_failures;
  instrument.set_state(InstrumentState::kBackoff);
  std::string name = instrument.config().name;
  spdlog::info("instrument {} restarts in {} ms", name, delay.count());
  entry.restart_timer = loop_.After(delay, [this, name] {
    Entry* current = Find(name);
    if (current == nullptr) return;
    current->restart_timer = 0;
    current->instrument->CountRestart();
    Launch(*current);
  });
}

void Supervisor::CancelRestart(Entry& entry) {
  if (entry.restart_timer != 0) loop_.Cancel(entry.restart_timer);
  entry.restart_timer = 0;
}

Status Supervisor::StartInstrument(const std::string& name) {
  Entry* entry = Find(name);
  if (entry == nullptr) return Error{"no instrument named '" + name + "' in the configuration"};
  if (entry->instrument->running()) return Error{name + " is already running"};
  CancelRestart(*entry);
  entry->consecutive_failures = 0;
  auto started = entry->instrument->Start();
  if (!started) {
    entry->instrument->set_last_error(started.error().message);
  } else if (entry->instrument->config().network == NetworkMode::kCapture) {
    ReattachPassive();
  }
  return started;
}

Status Supervisor::StopInstrument(const std::string& name) {
  Entry* entry = Find(name);
  if (entry == nullptr) return Error{"no instrument named '" + name + "' in the configuration"};
  CancelRestart(*entry);
  entry->instrument->Stop();
  entry->instrument->set_state(InstrumentState::kStopped);
  return {};
}

Status Supervisor::RestartInstrument(const std::string& name) {
  CUSTOS_TRY(StopInstrument(name));
  return StartInstrument(name);
}

void Supervisor::ReapChildren() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    int code = ExitCodeFromStatus(status);
    for (auto& [name, entry] : entries_) {
      auto& instrument = *entry.instrument;
      if (instrument.pid() != pid) continue;
      auto uptime = instrument.Uptime();
      instrument.Exited(code);
      if (code == 0) {
        instrument.set_state(InstrumentState::kExited);
      } else {
        // One that ran longer than the longest backoff counts as healthy again.
        if (uptime > platform_.sensor.restart_backoff_max) entry.consecutive_failures = 0;
        ScheduleRestart(entry);
      }
      break;
    }
  }
}

void Supervisor::ScheduleSweep() {
  sweep_timer_ = loop_.After(platform_.sensor.retention_sweep, [this] {
    SweepRetention();
    ScheduleSweep();
  });
}

void Supervisor::SweepRetention() {
  auto now = std::chrono::system_clock::now();
  for (auto& [name, entry] : entries_) {
    const auto& config = entry.instrument->config();
    std::string dir = entry.instrument->persistent_dir();
    if (!fs::exists(dir)) continue;
    auto report = SweepExpired(dir, now - config.retention);
    if (!report) {
      spdlog::error("retention sweep of {}: {}", name, report.error().message);
      continue;
    }
    entry.files_expired += report->deleted;
    if (report->deleted > 0) {
      spdlog::info("retention: deleted {} files of {} older than {}", report->deleted, name,
                   FormatDuration(config.retention));
    }
  }
}

void Supervisor::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (sweep_timer_ != 0) loop_.Cancel(sweep_timer_);
  // The capture engine last: its namespace holds the others' tap ends.
  for (bool capture : {false, true}) {
    for (auto& [name, entry] : entries_) {
      if ((entry.instrument->config().network == NetworkMode::kCapture) != capture) continue;
      CancelRestart(entry);
      entry.instrument->Stop();
    }
  }
  entries_.clear();
  platform_.broker = nullptr;
  broker_.reset();
  if (auto deleted = DeleteNamedNetns(platform_.HubNetnsName()); !deleted) {
    spdlog::error("{}", deleted.error().message);
  }
  RemoveEmptyCgroup(platform_.CgroupParent());
  RemoveEmptyCgroup("/custos");
  std::error_code ignored;
  fs::remove_all(platform_.sensor.state_dir + "/bundles", ignored);
  fs::remove_all(platform_.sensor.state_dir + "/rootfs", ignored);
  fs::remove_all(platform_.sensor.state_dir + "/bus", ignored);
  fs::remove_all(platform_.sensor.state_dir + "/ui", ignored);
  fs::remove(platform_.sensor.state_dir + "/netns", ignored);
}

nlohmann::json Supervisor::StatusJson() const {
  auto instruments = nlohmann::json::array();
  auto bus_stats = broker_ ? broker_->Stats() : std::map<std::string, bus::EndpointStats>{};
  for (const auto& [name, entry] : entries_) {
    auto status = entry.instrument->StatusJson();
    status["files_expired"] = entry.files_expired;
    if (auto stats = bus_stats.find(name); stats != bus_stats.end())
      status["bus"] = BusStatusJson(stats->second);
    instruments.push_back(status);
  }
  nlohmann::json events = journal_.Counts();
  return {{"sensor", platform_.sensor.name}, {"instruments", instruments}, {"events", events}};
}

}  // namespace custos
