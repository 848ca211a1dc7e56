// Hosts for fleet tests, as network namespaces joined by veth pairs, in
// 198.18.0.0/15 only:
//
//   fleet 198.18.1.1/24 ── 198.18.1.254 router 198.19.1.254 ── 198.19.1.2/24 sensor host
//                                  (masquerade)
//
// The sensor host is a SensorUnderTest's own namespace. The router hides it
// behind its address (nftables masquerade), and the fleet has no route back:
// the sensor can only dial out. Everything goes with the namespaces.
#pragma once

#include <string>

#include "tests/system/harness.h"

namespace custos::testing {

class NatNetwork {
 public:
  static constexpr const char* kFleetAddress = "198.18.1.1";
  static constexpr const char* kRouterOutside = "198.18.1.254";
  static constexpr const char* kSensorAddress = "198.19.1.2";

  explicit NatNetwork(const TestNetns& sensor_host);

  const TestNetns& fleet() const { return fleet_; }
  const TestNetns& router() const { return router_; }
  // Drops every packet between the sensor and the fleet, as a cut cable
  // would (both ends keep their connections until they time out), and back.
  void Cut();
  void Restore();

 private:
  TestNetns fleet_;
  TestNetns router_;
};

}  // namespace custos::testing
