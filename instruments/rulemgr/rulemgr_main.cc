// rulemgr: for each entry of the `targets` setting ({"<instrument>": <config
// document>}), sends the document as a `config` request and retries every
// `retry_seconds` (default 1) until the target answers {"applied": true}.
// Publishes a `ruleset` event for each configuration applied. Exits 0 on SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "custos/bus_client.h"
#include "custos/event.h"
#include "custos/instrument.h"

int main() {
  custos::InstallStopHandlers();
  auto context = custos::InstrumentContext::Load();
  if (!context) {
    std::printf("rulemgr: %s\n", context.error().message.c_str());
    return 1;
  }
  auto targets = context->settings.value("targets", nlohmann::json::object());
  long retry = 1;
  auto read = custos::ReadSettingInto(context->settings, "retry_seconds", retry);
  if (!read || retry <= 0 || !targets.is_object()) {
    std::printf("rulemgr: %s\n", !read        ? read.error().message.c_str()
                                 : retry <= 0 ? "setting retry_seconds must be more than 0"
                                              : "setting targets must be an object");
    return 1;
  }
  std::map<std::string, bool> done;
  for (const auto& [name, config] : targets.items()) done[name] = false;
  std::optional<custos::BusClient> bus;
  while (!custos::StopRequested()) {
    if (!bus) {
      auto connected = custos::BusClient::Connect();
      if (connected) bus.emplace(std::move(*connected));
    }
    for (auto& [name, applied] : done) {
      if (applied || !bus) continue;
      auto reply = bus->Request(name, "config", targets[name].dump());
      if (!reply) {
        std::printf("rulemgr: %s not configured yet: %s\n", name.c_str(),
                    reply.error().message.c_str());
        continue;
      }
      auto answer = nlohmann::json::parse(*reply, nullptr, false);
      applied = custos::ReadSetting(answer, "applied", false).value_or(false);
      std::printf("rulemgr: configured %s: %s\n", name.c_str(), reply->c_str());
      if (applied) {
        auto event = custos::MakeEvent("ruleset");
        event["ruleset"] = {{"target", name}, {"config", targets[name]}};
        (void)bus->Publish("ruleset", event.dump());
      }
    }
    std::fflush(stdout);
    for (long slept = 0; slept < retry && !custos::StopRequested(); ++slept) ::sleep(1);
  }
  return 0;
}
