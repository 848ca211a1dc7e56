// The CLI's fleet commands, clients of fleetd's REST API (docs/api.md):
//   custos fleet init --dir DIR --address HOST[,HOST...]
//   custos fleet token create --tenant T [--ttl 1h] | custos fleet token list
//   custos fleet sensors [ID]
//   custos fleet events [--since T] [--until T] [--sensor ID] [--type T] ...
//   custos fleet state set ID FILE | custos fleet state show ID
//   custos sensor revoke ID
// Each API command takes --fleet-dir DIR (reads DIR/admin.token and
// DIR/root/root.crt, API at 127.0.0.1:8443 unless --api) or --api HOST:PORT
// --token-file F --ca F. Single-threaded, like the rest of the CLI.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace custos::cli {

// Adds `fleet ...` to `app` and `revoke` to `sensor`. When the user picks
// one of them, `run` is set to the function doing the work, which returns
// the exit code.
void AddFleetCommands(CLI::App& app, CLI::App& sensor, std::function<int()>& run);

}  // namespace custos::cli
