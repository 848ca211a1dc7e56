#include "cli/fleet_commands.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/units.h"
#include "fleet/fleet_layout.h"
#include "fleet/https_client.h"

namespace custos::cli {
namespace {

using nlohmann::json;

constexpr char kDefaultApi[] = "127.0.0.1:8443";

struct Connection {
  std::string fleet_dir;
  std::string api;
  std::string token_file;
  std::string ca;
  bool json_output = false;
};

struct Arguments {
  Connection connection;
  std::string dir, addresses, name = "Custos Fleet";
  bool save_token = false;
  std::string tenant, ttl = "1h";
  std::string sensor_id, file;
  std::string since, until, sensor, type, text;
  std::int64_t after = 0;
  int limit = 100;
  bool newest = false;
};

void AddConnection(CLI::App* command, Connection& connection) {
  command->add_option("--fleet-dir", connection.fleet_dir,
                      "fleet folder on this host: reads admin.token and root/root.crt");
  command->add_option("--api", connection.api, "fleetd API address, HOST:PORT");
  command->add_option("--token-file", connection.token_file, "file holding the admin API token");
  command->add_option("--ca", connection.ca, "the fleet root certificate (PEM)");
  command->add_flag("--json", connection.json_output, "print the raw JSON reply");
}

// Terminal-safe text: fleet data comes from sensors, which may be hostile.
std::string Printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text;
}

std::string Text(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return Printable(value.get<std::string>());
  return Printable(value.dump());
}

std::string Trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

std::string Encode(const std::string& value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 0xF];
    }
  }
  return encoded;
}

Result<fleet::HttpsClientOptions> Resolve(const Connection& connection) {
  std::string api = connection.api, token_file = connection.token_file, ca = connection.ca;
  if (!connection.fleet_dir.empty()) {
    fleet::FleetPaths paths(connection.fleet_dir);
    if (api.empty()) api = kDefaultApi;
    if (token_file.empty()) token_file = paths.admin_token.string();
    if (ca.empty()) ca = paths.root_certificate.string();
  }
  if (api.empty() || token_file.empty() || ca.empty()) {
    return Error{
        "say which fleet: --fleet-dir DIR, or --api HOST:PORT --token-file FILE --ca FILE"};
  }
  fleet::HttpsClientOptions options;
  auto address = fleet::ParseHostPort(api);
  if (!address.ok()) return Context("--api", address.error());
  options.server = *address;
  auto token = ReadFile(token_file);
  if (!token.ok()) {
    return Context("admin token (save it with `fleet init --save-token`, or pass --token-file)",
                   token.error());
  }
  options.bearer_token = Trimmed(*token);
  auto root = ReadFile(ca);
  if (!root.ok()) return root.error();
  options.root_pem = *root;
  return options;
}

// A 2xx reply's JSON; anything else an Error with the problem's words.
Result<json> Request(const Connection& connection, const std::string& method,
                     const std::string& target, const std::string& body = "") {
  auto options = Resolve(connection);
  if (!options.ok()) return options.error();
  auto reply = fleet::HttpsCall(*options, method, target, body);
  if (!reply.ok()) return reply.error();
  json parsed = json::parse(reply->body, nullptr, false);
  if (reply->status >= 200 && reply->status < 300) {
    if (parsed.is_discarded()) return Error{"fleetd sent a reply that is not JSON"};
    return parsed;
  }
  std::string message = "fleetd answered " + std::to_string(reply->status);
  if (parsed.is_object()) {
    message += " " + Text(parsed.value("title", json("")));
    message += ": " + Text(parsed.value("detail", json("")));
  }
  return Error{message};
}

int Fail(const Error& error) {
  std::cerr << "custos: " << error.message << "\n";
  return 1;
}

// Runs `request`; prints its JSON with --json, else hands it to `print`.
int Show(const Connection& connection, const Result<json>& reply,
         const std::function<void(const json&)>& print) {
  if (!reply.ok()) return Fail(reply.error());
  if (connection.json_output) {
    std::cout << reply->dump(2) << "\n";
  } else {
    print(*reply);
  }
  return 0;
}

int RunInit(const Arguments& arguments) {
  fleet::FleetInitOptions options;
  options.dir = arguments.dir;
  options.addresses = fleet::SplitList(arguments.addresses);
  options.name = arguments.name;
  options.save_admin_token = arguments.save_token;
  auto token = fleet::InitFleet(options);
  if (!token.ok()) return Fail(token.error());
  std::cerr << "fleet created in " << arguments.dir << "\n";
  if (arguments.save_token) {
    std::cerr << "admin API token saved in "
              << fleet::FleetPaths(arguments.dir).admin_token.string() << " (0600)\n";
  } else {
    std::cerr << "admin API token (shown once; only its hash is kept):\n";
    std::cout << *token << "\n";
  }
  std::cerr << "start the server: custos-fleetd --dir " << arguments.dir << "\n";
  return 0;
}

int RunTokenCreate(const Arguments& arguments) {
  auto ttl = ParseDuration(arguments.ttl);
  if (!ttl.ok()) return Fail(Context("--ttl", ttl.error()));
  json body = {{"tenant", arguments.tenant},
               {"ttl_seconds", std::chrono::duration_cast<std::chrono::seconds>(*ttl).count()}};
  auto reply = Request(arguments.connection, "POST", "/v1/tokens", body.dump());
  return Show(arguments.connection, reply, [](const json& token) {
    std::cerr << "enrollment token for tenant " << Text(token["tenant"]) << ", single use, expires "
              << Text(token["expires_at"]) << ":\n";
    std::cout << Text(token["token"]) << "\n";
  });
}

int RunTokenList(const Arguments& arguments) {
  auto reply = Request(arguments.connection, "GET", "/v1/tokens");
  return Show(arguments.connection, reply, [](const json& body) {
    std::printf("%-16s %-20s %-8s %-27s %s\n", "ID", "TENANT", "STATE", "EXPIRES", "USED BY");
    for (const json& token : body.value("tokens", json::array())) {
      std::printf("%-16s %-20s %-8s %-27s %s\n", Text(token["id"]).c_str(),
                  Text(token["tenant"]).c_str(), Text(token["state"]).c_str(),
                  Text(token["expires_at"]).c_str(), Text(token["used_by"]).c_str());
    }
  });
}

int RunSensors(const Arguments& arguments) {
  if (!arguments.sensor_id.empty()) {
    auto reply = Request(arguments.connection, "GET", "/v1/sensors/" + Encode(arguments.sensor_id));
    return Show(arguments.connection, reply,
                [](const json& sensor) { std::cout << Printable(sensor.dump(2)) << "\n"; });
  }
  auto reply = Request(arguments.connection, "GET", "/v1/sensors");
  return Show(arguments.connection, reply, [](const json& body) {
    std::printf("%-24s %-16s %-16s %-9s %-27s %s\n", "ID", "NAME", "TENANT", "CONNECTED",
                "LAST SEEN", "REVOKED");
    for (const json& sensor : body.value("sensors", json::array())) {
      std::printf("%-24s %-16s %-16s %-9s %-27s %s\n", Text(sensor["id"]).c_str(),
                  Text(sensor["name"]).c_str(), Text(sensor["tenant"]).c_str(),
                  sensor.value("connected", false) ? "yes" : "no",
                  Text(sensor["last_seen"]).c_str(), Text(sensor["revoked_at"]).c_str());
    }
  });
}

int RunEvents(const Arguments& arguments) {
  std::string target = "/v1/events?limit=" + std::to_string(arguments.limit);
  auto add = [&target](const char* name, const std::string& value) {
    if (value.empty()) return;
    target += '&';
    target += name;
    target += '=';
    target += Encode(value);
  };
  add("since", arguments.since);
  add("until", arguments.until);
  add("sensor", arguments.sensor);
  add("tenant", arguments.tenant);
  add("type", arguments.type);
  add("q", arguments.text);
  if (arguments.after > 0) add("after", std::to_string(arguments.after));
  if (arguments.newest) add("order", "desc");
  auto reply = Request(arguments.connection, "GET", target);
  return Show(arguments.connection, reply, [](const json& body) {
    for (const json& event : body.value("events", json::array())) {
      std::printf("%s %s %s %s\n", Text(event["time"]).c_str(), Text(event["sensor_id"]).c_str(),
                  Text(event["event_type"]).c_str(), Text(event["event"]).c_str());
    }
    if (!body.value("next_after", json()).is_null()) {
      std::cerr << "more: --after " << body["next_after"].dump() << "\n";
    }
  });
}

int RunStateSet(const Arguments& arguments) {
  auto config = arguments.file == "-"
                    ? Result<std::string>(std::string(std::istreambuf_iterator<char>(std::cin), {}))
                    : ReadFile(arguments.file);
  if (!config.ok()) return Fail(config.error());
  auto reply = Request(arguments.connection, "PUT",
                       "/v1/sensors/" + Encode(arguments.sensor_id) + "/desired-state",
                       json{{"config", *config}}.dump());
  return Show(arguments.connection, reply, [&arguments](const json& body) {
    std::printf(
        "sensor %s: desired state version %s, %s\n", arguments.sensor_id.c_str(),
        Text(body["version"]).c_str(),
        body.value("pushed", false) ? "sent to it now" : "to be sent when it next connects");
  });
}

int RunStateShow(const Arguments& arguments) {
  auto reply = Request(arguments.connection, "GET",
                       "/v1/sensors/" + Encode(arguments.sensor_id) + "/desired-state");
  return Show(arguments.connection, reply, [](const json& state) {
    std::printf("version %s (applied: %s, at %s)\n", Text(state["version"]).c_str(),
                Text(state["applied_version"]).c_str(), Text(state["applied_at"]).c_str());
    if (state["config"].is_string()) std::cout << Printable(state["config"].get<std::string>());
  });
}

int RunRevoke(const Arguments& arguments) {
  auto reply = Request(arguments.connection, "POST",
                       "/v1/sensors/" + Encode(arguments.sensor_id) + "/revoke");
  return Show(arguments.connection, reply, [&arguments](const json& body) {
    std::printf("sensor %s %s; its certificate is on the CRL and its channel is closed\n",
                arguments.sensor_id.c_str(),
                body.value("already_revoked", false) ? "was already revoked" : "revoked");
  });
}

int RunRekey(const Arguments& arguments) {
  auto reply = Request(arguments.connection, "POST",
                       "/v1/sensors/" + Encode(arguments.sensor_id) + "/rekey");
  return Show(arguments.connection, reply, [&arguments](const json& body) {
    std::printf("sensor %s: data key version %s ordered; %s\n", arguments.sensor_id.c_str(),
                Text(body["pending_version"]).c_str(),
                body.value("sent", false)
                    ? "the sensor restarts now, re-encrypts its data under it and confirms"
                    : "the sensor is not connected: it re-encrypts when it next connects");
  });
}

// Sets `run` to call `work` with the parsed arguments when `command` is picked.
void OnPick(CLI::App* command, std::function<int()>& run,
            const std::shared_ptr<Arguments>& arguments, int (*work)(const Arguments&)) {
  command->callback(
      [&run, arguments, work] { run = [arguments, work] { return work(*arguments); }; });
}

}  // namespace

void AddFleetCommands(CLI::App& app, CLI::App& sensor, std::function<int()>& run) {
  auto arguments = std::make_shared<Arguments>();
  Arguments& a = *arguments;
  auto* fleet = app.add_subcommand("fleet", "run and operate a Custos fleet (fleetd's API)");
  fleet->require_subcommand(1);

  auto* init = fleet->add_subcommand("init", "create a fleet folder: CA, database, admin token");
  init->add_option("--dir", a.dir, "the new fleet folder (must not exist)")->required();
  init->add_option("--address", a.addresses,
                   "DNS names and IP addresses sensors reach the fleet under, comma-separated")
      ->required();
  init->add_option("--name", a.name, "name of the fleet's CA")->capture_default_str();
  init->add_flag("--save-token", a.save_token,
                 "also keep the admin token in DIR/admin.token (0600) for --fleet-dir");
  OnPick(init, run, arguments, RunInit);

  auto* token = fleet->add_subcommand("token", "enrollment tokens");
  token->require_subcommand(1);
  auto* create = token->add_subcommand("create", "make a one-time enrollment token");
  create->add_option("--tenant", a.tenant, "tenant the sensor will belong to")->required();
  create->add_option("--ttl", a.ttl, "how long the token stays usable (60s to 30d)")
      ->capture_default_str();
  AddConnection(create, a.connection);
  OnPick(create, run, arguments, RunTokenCreate);
  auto* list = token->add_subcommand("list", "list tokens (never their secrets)");
  AddConnection(list, a.connection);
  OnPick(list, run, arguments, RunTokenList);

  auto* sensors = fleet->add_subcommand("sensors", "list sensors, or show one");
  sensors->add_option("id", a.sensor_id, "sensor id: show its details and health");
  AddConnection(sensors, a.connection);
  OnPick(sensors, run, arguments, RunSensors);

  auto* events = fleet->add_subcommand("events", "query the events sensors sent");
  events->add_option("--since", a.since, "from this time (2026-11-23T15:04:05Z)");
  events->add_option("--until", a.until, "before this time");
  events->add_option("--sensor", a.sensor, "only this sensor");
  events->add_option("--tenant", a.tenant, "only this tenant's sensors");
  events->add_option("--type", a.type, "only this event_type");
  events->add_option("-q,--query", a.text, "only events whose JSON contains this text");
  events->add_option("--limit", a.limit, "at most this many (1-1000)")->capture_default_str();
  events->add_option("--after", a.after, "continue after this event id (paging)");
  events->add_flag("--newest", a.newest, "newest first");
  AddConnection(events, a.connection);
  OnPick(events, run, arguments, RunEvents);

  auto* state = fleet->add_subcommand("state", "a sensor's desired state");
  state->require_subcommand(1);
  auto* set = state->add_subcommand("set", "set a sensor's policy: and instruments: (YAML file)");
  set->add_option("id", a.sensor_id, "sensor id")->required();
  set->add_option("file", a.file, "YAML file, or - for standard input")->required();
  AddConnection(set, a.connection);
  OnPick(set, run, arguments, RunStateSet);
  auto* show = state->add_subcommand("show", "show a sensor's desired and applied state");
  show->add_option("id", a.sensor_id, "sensor id")->required();
  AddConnection(show, a.connection);
  OnPick(show, run, arguments, RunStateShow);

  auto* revoke = sensor.add_subcommand(
      "revoke", "revoke a sensor at the fleet: CRL, channel closed, data key refused");
  revoke->add_option("id", a.sensor_id, "sensor id")->required();
  AddConnection(revoke, a.connection);
  OnPick(revoke, run, arguments, RunRevoke);

  auto* rekey = sensor.add_subcommand(
      "rekey", "order a new data key for a sensor; it re-encrypts its data under it");
  rekey->add_option("id", a.sensor_id, "sensor id")->required();
  AddConnection(rekey, a.connection);
  OnPick(rekey, run, arguments, RunRekey);
}

}  // namespace custos::cli
