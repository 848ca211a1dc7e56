// A fleet and one sensor behind a NAT, wired for fleet tests: the sensor's
// file has a `fleet:` section (its identity under its root, heartbeats each
// second, `fleet_extra` lines added) and forwards bus topic `count`.
#pragma once

#include <string>

#include "tests/system/fleet_harness.h"
#include "tests/system/harness.h"
#include "tests/system/nat_network.h"

namespace custos::testing {

struct FleetSetup {
  FleetSetup(const std::string& name, const std::string& instruments,
             const std::string& fleet_extra = "",
             const std::string& policy = "allowed_capabilities: []\nuplink: [count]")
      : sensor(name, instruments, "", policy),
        network(sensor.host()),
        fleet(network.fleet(), NatNetwork::kFleetAddress) {
    sensor.set_extra_sections("fleet:\n  identity: " + sensor.root() +
                              "/identity\n  heartbeat_seconds: 1\n" + fleet_extra);
    sensor.RewriteConfig(instruments);
    fleet.Start();
  }
  SensorUnderTest sensor;
  NatNetwork network;
  FleetUnderTest fleet;
};

}  // namespace custos::testing
