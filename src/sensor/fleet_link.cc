#include "sensor/fleet_link.h"

#include "common/log.h"
#include "sensor/fleet_identity.h"
#include "sensor/fleet_state.h"

namespace custos::sensor {

using nlohmann::json;

std::unique_ptr<FleetLink> FleetLink::Create(const SensorConfig& config,
                                             const std::string& config_path,
                                             std::uint64_t state_version, std::string* why_not) {
  if (!config.fleet) {
    *why_not = "no fleet: section in the configuration";
    return nullptr;
  }
  const FleetConfig& fleet = *config.fleet;
  if (!IsEnrolled(fleet.identity)) {
    *why_not = "not enrolled: " + fleet.identity + " holds no fleet.json (custos sensor enroll)";
    spdlog::warn("uplink off: {}", *why_not);
    return nullptr;
  }
  auto identity = LoadFleetIdentity(fleet.identity);
  if (!identity) {
    *why_not = identity.error().message;
    spdlog::error("uplink off: {}", *why_not);
    return nullptr;
  }
  UplinkOptions options;
  options.identity = std::move(*identity);
  options.spool_dir = fleet.spool_dir;
  options.spool_max_bytes = fleet.spool_max_bytes;
  options.data_root = config.data_root;
  options.heartbeat = fleet.heartbeat;
  options.state_version = state_version;
  return std::unique_ptr<FleetLink>(new FleetLink(config, config_path, std::move(options)));
}

FleetLink::FleetLink(const SensorConfig& config, std::string config_path, UplinkOptions options)
    : config_path_(std::move(config_path)),
      options_(std::move(options)),
      feed_(std::make_shared<UplinkFeed>()) {
  feed_->SetTopics(config.uplink);
}

FleetLink::~FleetLink() { Stop(); }

bus::PlatformSink FleetLink::Tap() const {
  return [feed = feed_](std::string_view topic, std::string_view sender, std::string_view payload) {
    feed->Offer(topic, sender, payload);
  };
}

Status FleetLink::Start(EventLoop& loop, Actions actions) {
  loop_ = &loop;
  actions_ = std::move(actions);
  auto mailbox = UplinkMailbox::Create(loop);
  if (!mailbox) return mailbox.error();
  mailbox_ = std::move(*mailbox);
  UplinkHooks hooks;
  hooks.post = [mailbox = mailbox_.get()](std::function<void()> task) {
    mailbox->Post(std::move(task));
  };
  hooks.apply_state = [this](std::uint64_t version, const std::string& text) {
    return ApplyDesiredState(config_path_, version, text, actions_.apply);
  };
  hooks.run_command = [this](const json& command) { return RunCommand(command); };
  auto uplink = Uplink::Start(options_, feed_, std::move(hooks));
  if (!uplink) return uplink.error();
  uplink_ = std::move(*uplink);
  spdlog::info("uplink: sensor {} of tenant {}, fleet channel {}, spool {}",
               options_.identity.sensor_id, options_.identity.tenant,
               options_.identity.channel.ToString(), options_.spool_dir.string());
  RefreshStatus();
  return {};
}

void FleetLink::RefreshStatus() {
  refresh_timer_ = 0;
  if (!uplink_) return;
  if (actions_.status) uplink_->SetLocalStatus(actions_.status());
  refresh_timer_ = loop_->After(options_.heartbeat, [this] { RefreshStatus(); });
}

void FleetLink::Applied(const SensorConfig& config) { feed_->SetTopics(config.uplink); }

json FleetLink::StatusJson() const {
  if (!uplink_) return {{"enabled", false}, {"last_error", "not started"}};
  return uplink_->StatusJson();
}

json FleetLink::RunCommand(const json& command) {
  auto name = command.find("command");
  std::string verb = name != command.end() && name->is_string() ? name->get<std::string>() : "";
  if (verb == "status") {
    json status = actions_.status ? actions_.status() : json::object();
    status["uplink"] = StatusJson();
    return {{"ok", true}, {"output", status}};
  }
  if (verb == "restart") {
    auto instrument = command.find("instrument");
    if (instrument == command.end() || !instrument->is_string()) {
      return {{"ok", false}, {"output", {{"error", "restart needs an instrument"}}}};
    }
    Status restarted = actions_.restart ? actions_.restart(instrument->get<std::string>())
                                        : Status(Error{"restart is not available"});
    if (!restarted) return {{"ok", false}, {"output", {{"error", restarted.error().message}}}};
    return {{"ok", true}, {"output", json::object()}};
  }
  if (verb == "rekey") {
    Status started = actions_.rekey ? actions_.rekey() : Status(Error{"rekey is not available"});
    if (!started) return {{"ok", false}, {"output", {{"error", started.error().message}}}};
    return {{"ok", true}, {"output", {{"state", "re-keying"}}}};
  }
  return {{"ok", false}, {"output", {{"error", "unknown command '" + verb + "'"}}}};
}

void FleetLink::Stop() {
  if (refresh_timer_ != 0 && loop_ != nullptr) loop_->Cancel(refresh_timer_);
  refresh_timer_ = 0;
  if (uplink_) uplink_->Stop();
  feed_->Close();
}

}  // namespace custos::sensor
