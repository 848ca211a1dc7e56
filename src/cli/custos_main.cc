// custos: the operator's command. For now it speaks to the local sensord's
// admin socket (`custos sensor status|start|stop|restart|reload`).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/fleet_commands.h"
#include "cli/sensor_enroll.h"
#include "sensor/admin_server.h"

namespace custos {
namespace {

std::string Megabytes(const nlohmann::json& bytes) {
  if (!bytes.is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", bytes.get<double>() / (1024.0 * 1024.0));
  return text;
}

std::string Text(const nlohmann::json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

void PrintStatus(const nlohmann::json& status) {
  std::printf("sensor %s\n", status.value("sensor", "?").c_str());
  if (status.contains("storage")) {
    const auto& storage = status["storage"];
    std::printf("data root: %s (data key version %s)\n", Text(storage["state"]).c_str(),
                Text(storage["key_version"]).c_str());
    if (!storage.value("last_error", "").empty())
      std::printf("  last error: %s\n", Text(storage["last_error"]).c_str());
  }
  std::printf("%-16s %-8s %-8s %7s %8s %9s %10s %9s %9s\n", "INSTRUMENT", "STATE", "NETWORK", "PID",
              "RESTARTS", "LAST EXIT", "MEMORY MB", "LIMIT MB", "BUS DROPS");
  for (const auto& instrument : status.value("instruments", nlohmann::json::array())) {
    const auto& bus = instrument.contains("bus") ? instrument["bus"] : nlohmann::json::object();
    std::printf("%-16s %-8s %-8s %7s %8s %9s %10s %9s %9s\n", Text(instrument["name"]).c_str(),
                Text(instrument["state"]).c_str(), Text(instrument["network"]).c_str(),
                Text(instrument["pid"]).c_str(), Text(instrument["restarts"]).c_str(),
                Text(instrument["last_exit"]).c_str(),
                Megabytes(instrument["memory_bytes"]).c_str(),
                Megabytes(instrument["memory_limit_bytes"]).c_str(),
                Text(bus.value("dropped", nlohmann::json())).c_str());
    if (instrument.contains("ring")) {
      std::printf("  capture ring: %s frames read, %s lost, %s filtered\n",
                  Text(instrument["ring"]["delivered"]).c_str(),
                  Text(instrument["ring"]["dropped"]).c_str(),
                  Text(instrument["ring"]["filtered"]).c_str());
    }
    if (instrument.contains("mirror")) {
      std::printf("  mirror0: %s frames delivered, %s dropped on the link\n",
                  Text(instrument["mirror"]["delivered"]).c_str(),
                  Text(instrument["mirror"]["dropped"]).c_str());
    }
    if (instrument.contains("last_error")) {
      std::printf("  last error: %s\n", Text(instrument["last_error"]).c_str());
    }
    // Every drop is shown with where it happened: nothing is dropped silently.
    auto topics = bus.value("topics", nlohmann::json::object());
    for (const auto& [topic, counters] : topics.items()) {
      if (counters.value("dropped", 0) == 0) continue;
      std::printf("  bus topic %s: delivered %s, dropped %s (queue full)\n", topic.c_str(),
                  Text(counters["delivered"]).c_str(), Text(counters["dropped"]).c_str());
    }
    if (bus.value("messages_dropped", 0) > 0) {
      std::printf("  bus messages dropped: %s\n", Text(bus["messages_dropped"]).c_str());
    }
  }
  cli::PrintUplinkStatus(status);
}

// Instrument text may carry control sequences; a terminal must not obey them.
std::string Printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text;
}

void PrintEvents(const nlohmann::json& reply) {
  for (const auto& event : reply.value("events", nlohmann::json::array())) {
    std::printf("%s %s %s\n", Text(event["topic"]).c_str(), Text(event["instrument"]).c_str(),
                Printable(Text(event["event"])).c_str());
  }
}

int Send(const std::string& socket, const nlohmann::json& request, bool json_output) {
  auto reply = AdminRequest(socket, request);
  if (!reply) {
    std::cerr << "custos: " << reply.error().message << "\n";
    return 1;
  }
  if (!reply->value("ok", false)) {
    std::cerr << "custos: " << reply->value("error", "sensord refused the request") << "\n";
    return 1;
  }
  if (json_output) {
    std::cout << reply->dump(1) << "\n";
  } else if (request["command"] == "status") {
    PrintStatus(*reply);
  } else if (request["command"] == "events") {
    PrintEvents(*reply);
  }
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"custos: operate Custos sensors"};
  app.require_subcommand(1);
  auto* sensor = app.add_subcommand("sensor", "talk to the local custos-sensord");
  sensor->require_subcommand(1);
  std::string socket = "/run/custos/sensord.sock";
  bool json_output = false;
  sensor->add_option("--socket", socket, "sensord admin socket")->capture_default_str();
  sensor->add_flag("--json", json_output, "print the raw JSON reply");
  nlohmann::json request;
  sensor->add_subcommand("status", "show each instrument's state")->callback([&] {
    request = {{"command", "status"}};
  });
  sensor->add_subcommand("reload", "re-read the configuration file")->callback([&] {
    request = {{"command", "reload"}};
  });
  sensor->add_subcommand("sweep", "delete files older than retention now")->callback([&] {
    request = {{"command", "sweep"}};
  });
  std::string topic;
  int limit = 20;
  auto* events = sensor->add_subcommand("events", "show the latest events published on the bus");
  events->add_option("--topic", topic, "only this topic");
  events->add_option("--limit", limit, "how many")->capture_default_str();
  events->callback([&] { request = {{"command", "events"}, {"topic", topic}, {"limit", limit}}; });
  std::string name;
  for (const char* verb : {"start", "stop", "restart"}) {
    auto* command = sensor->add_subcommand(verb, std::string(verb) + " one instrument");
    command->add_option("instrument", name, "instrument name")->required();
    command->callback([&request, &name, verb] {
      request = {{"command", verb}, {"instrument", name}};
    });
  }
  std::function<int()> run;  // set by commands that do not talk to sensord
  cli::AddSensorEnroll(*sensor, run);
  cli::AddFleetCommands(app, *sensor, run);
  CLI11_PARSE(app, argc, argv);
  if (run) return run();
  return Send(socket, request, json_output);
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) { return custos::Main(argc, argv); }
