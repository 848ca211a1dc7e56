// Instrument SDK: what the platform tells an instrument about itself. Read
// once at start from the environment and the settings file the platform
// put in its root filesystem (the same document the bus's Settings() gives).
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "custos/result.h"

namespace custos {

struct InstrumentContext {
  std::string name;                // CUSTOS_INSTRUMENT
  std::string network;             // none, passive, active or capture; empty if not said
  std::string data_dir = "/data";  // persistent, kept across restarts, pruned by retention
  std::string tmp_dir = "/tmp";    // transient, gone at stop
  std::chrono::seconds retention{0};
  nlohmann::json settings = nlohmann::json::object();  // the configuration's `settings`

  static Result<InstrumentContext> Load();
  // Parses the settings document (from the file or from BusClient::Settings).
  static Result<InstrumentContext> FromDocument(const std::string& json);
};

// One setting: `fallback` when it is absent or null, the value when it has
// the type T needs, else an error naming the setting and what it must be
// ("loops": "3" is refused, where json::value would throw).
template <typename T>
Result<T> ReadSetting(const nlohmann::json& settings, const std::string& name, T fallback) {
  auto found = settings.is_object() ? settings.find(name) : settings.end();
  if (found == settings.end() || found->is_null()) return fallback;
  const auto refuse = [&](const char* must) {
    return Error{"setting " + name + " must be " + must + ", not " + found->dump()};
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (found->is_boolean()) return found->template get<bool>();
    return refuse("true or false");
  } else if constexpr (std::is_integral_v<T>) {
    if (!found->is_number_integer()) return refuse("a whole number");
    if (found->is_number_unsigned()) {
      auto value = found->template get<std::uint64_t>();
      if (value > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        return refuse("a smaller number");
      return static_cast<T>(value);
    }
    auto value = found->template get<std::int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (value < 0) return refuse("zero or more");
    } else {
      if (value < std::numeric_limits<T>::min() || value > std::numeric_limits<T>::max())
        return refuse("a smaller number");
    }
    return static_cast<T>(value);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (found->is_number()) return found->template get<T>();
    return refuse("a number");
  } else {
    static_assert(std::is_same_v<T, std::string>, "settings are booleans, numbers or strings");
    if (found->is_string()) return found->template get<std::string>();
    return refuse("a string");
  }
}

// ReadSetting into `value`, which holds the fallback: for a list of
// settings read with CUSTOS_TRY.
template <typename T>
Status ReadSettingInto(const nlohmann::json& settings, const std::string& name, T& value) {
  auto read = ReadSetting(settings, name, value);
  if (!read) return read.error();
  value = std::move(*read);
  return {};
}

// The platform stops an instrument with SIGTERM. InstallStopHandlers makes
// SIGTERM and SIGINT set a flag (and interrupt blocking calls, which return
// EINTR) instead of killing the process; StopRequested reads the flag.
// Remember: an instrument is pid 1 of its namespace, and signals without a
// handler never reach it.
void InstallStopHandlers();
bool StopRequested();

}  // namespace custos
