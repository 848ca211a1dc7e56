#include "cli/sensor_enroll.h"

#include <cctype>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "common/files.h"
#include "sensor/enrollment.h"

namespace custos::cli {
namespace {

struct EnrollArguments {
  std::string fleet;
  std::string token;
  std::string token_file;
  std::string identity = sensor::kDefaultIdentityDir;
  std::string name;
};

int RunEnroll(const EnrollArguments& arguments) {
  sensor::EnrollOptions options;
  options.fleet = arguments.fleet;
  options.token = arguments.token;
  if (!arguments.token_file.empty()) {
    auto text = ReadFile(arguments.token_file);
    if (!text) {
      std::cerr << "custos: " << text.error().message << "\n";
      return 1;
    }
    options.token = *text;
    while (!options.token.empty() && std::isspace(static_cast<unsigned char>(options.token.back())))
      options.token.pop_back();
  }
  if (options.token.empty()) {
    std::cerr << "custos: enroll needs the token: --token T or --token-file FILE\n";
    return 1;
  }
  options.identity_dir = arguments.identity;
  options.name = arguments.name;
  auto enrolled = sensor::Enroll(options);
  if (!enrolled) {
    std::cerr << "custos: enrollment failed: " << enrolled.error().message << "\n";
    return 1;
  }
  std::printf("enrolled as sensor %s of tenant %s; identity in %s\n", enrolled->sensor_id.c_str(),
              enrolled->tenant.c_str(), arguments.identity.c_str());
  std::printf("the uplink will use the fleet's channel at %s\n",
              enrolled->channel.ToString().c_str());
  std::printf(
      "next: give the sensor configuration a fleet: section (identity: %s), name the topics to\n"
      "send in policy.uplink, and restart custos-sensord\n",
      arguments.identity.c_str());
  return 0;
}

std::string Text(const nlohmann::json& object, const char* key) {
  if (!object.contains(key)) return "-";
  const auto& value = object[key];
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

// Fleet-supplied text may carry control sequences; a terminal must not obey them.
std::string Printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text;
}

}  // namespace

void AddSensorEnroll(CLI::App& sensor, std::function<int()>& run) {
  auto arguments = std::make_shared<EnrollArguments>();
  auto* enroll = sensor.add_subcommand(
      "enroll",
      "enroll this sensor with a fleet: make its key, check the fleet, get a certificate");
  enroll->add_option("--fleet", arguments->fleet, "the fleet's API port, HOST:PORT")->required();
  auto* token =
      enroll->add_option("--token", arguments->token,
                         "the token from `custos fleet token create` (<secret>.<ca-hash>)");
  enroll
      ->add_option("--token-file", arguments->token_file,
                   "a file holding the token, which keeps it out of the process list")
      ->excludes(token);
  enroll->add_option("--identity", arguments->identity, "folder for the key and certificates")
      ->capture_default_str();
  enroll->add_option("--name", arguments->name,
                     "name in the fleet's registry (default: host name)");
  enroll->callback([&run, arguments] { run = [arguments] { return RunEnroll(*arguments); }; });
}

void PrintUplinkStatus(const nlohmann::json& status) {
  if (!status.contains("uplink") || !status["uplink"].is_object()) return;
  const auto& uplink = status["uplink"];
  if (!uplink.value("enabled", false)) {
    std::printf("uplink: off: %s\n", Printable(Text(uplink, "last_error")).c_str());
    return;
  }
  if (uplink.value("connected", false)) {
    std::printf("uplink: connected to %s as %s since %s; desired state version %s\n",
                Text(uplink, "fleet").c_str(), Text(uplink, "sensor_id").c_str(),
                Text(uplink, "connected_since").c_str(), Text(uplink, "state_version").c_str());
  } else {
    std::printf("uplink: not connected to %s as %s (%s attempts)\n", Text(uplink, "fleet").c_str(),
                Text(uplink, "sensor_id").c_str(), Text(uplink, "connect_attempts").c_str());
  }
  const auto spool = uplink.value("spool", nlohmann::json::object());
  std::printf("  spool: %s events pending (%s bytes), acknowledged up to seq %s\n",
              Text(spool, "pending").c_str(), Text(spool, "pending_bytes").c_str(),
              Text(spool, "acked_seq").c_str());
  // Every refusal is shown: nothing is dropped silently.
  std::printf("  not kept: %s (spool full), %s (hand-over queue full), %s (too large)\n",
              Text(spool, "dropped_full").c_str(), Text(spool, "dropped_queue").c_str(),
              Text(spool, "rejected_too_large").c_str());
  std::string last_error = uplink.value("last_error", "");
  if (!last_error.empty()) {
    std::printf("  last error (%s): %s\n", Text(uplink, "last_error_at").c_str(),
                Printable(last_error).c_str());
  }
}

}  // namespace custos::cli
