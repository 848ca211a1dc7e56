#include "custos/instrument.h"

#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace custos {

Result<InstrumentContext> InstrumentContext::FromDocument(const std::string& json) {
  auto document = nlohmann::json::parse(json, nullptr, false);
  if (!document.is_object()) return Error{"the settings document is not a JSON object"};
  InstrumentContext context;
  context.name = document.value("instrument", "");
  context.network = document.value("network", "");
  context.retention = std::chrono::seconds(document.value("retention_seconds", 0LL));
  context.settings = document.value("settings", nlohmann::json::object());
  if (!context.settings.is_object()) return Error{"settings must be a JSON object"};
  if (const char* data = std::getenv("CUSTOS_DATA")) context.data_dir = data;
  return context;
}

namespace {
volatile sig_atomic_t g_stop_requested = 0;
void OnStopSignal(int) { g_stop_requested = 1; }
}  // namespace

void InstallStopHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;  // no SA_RESTART: blocking calls return EINTR
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
}

bool StopRequested() { return g_stop_requested != 0; }

Result<InstrumentContext> InstrumentContext::Load() {
  const char* path = std::getenv("CUSTOS_SETTINGS");
  std::ifstream in(path != nullptr ? path : "/etc/custos/instrument.json");
  if (!in) return Error{"cannot read the instrument's settings file"};
  std::stringstream text;
  text << in.rdbuf();
  return FromDocument(text.str());
}

}  // namespace custos
