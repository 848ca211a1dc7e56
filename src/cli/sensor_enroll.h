// The CLI's side of the sensor's fleet link: `custos sensor enroll` (see
// docs/fleet-protocol.md, "Enrollment") and the uplink lines of
// `custos sensor status`. Single-threaded, like the rest of the CLI.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>

namespace custos::cli {

// Adds `enroll` under `sensor`. When the user picks it, `run` is set to the
// function doing the work, which returns the exit code.
void AddSensorEnroll(CLI::App& sensor, std::function<int()>& run);

// Prints the admin status reply's "uplink" object, if it has one.
void PrintUplinkStatus(const nlohmann::json& status);

}  // namespace custos::cli
