#include "tests/system/nat_network.h"

namespace custos::testing {

NatNetwork::NatNetwork(const TestNetns& sensor_host) {
  // Each pair is made in the router and its far end moved into the host.
  router_.Run(
      {"ip", "link", "add", "out0", "type", "veth", "peer", "name", "up0", "netns", fleet_.name()});
  router_.Run({"ip", "link", "add", "lan0", "type", "veth", "peer", "name", "wan0", "netns",
               sensor_host.name()});
  router_.Run({"ip", "addr", "add", std::string(kRouterOutside) + "/24", "dev", "out0"});
  router_.Run({"ip", "addr", "add", "198.19.1.254/24", "dev", "lan0"});
  router_.Run({"ip", "link", "set", "out0", "up"});
  router_.Run({"ip", "link", "set", "lan0", "up"});
  router_.Run({"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"});
  // The sensor's LAN leaves under the router's own address.
  router_.Run({"nft", "add", "table", "ip", "nat"});
  router_.Run({"nft", "add", "chain", "ip", "nat", "postrouting",
               "{ type nat hook postrouting priority 100; }"});
  router_.Run({"nft", "add", "rule", "ip", "nat", "postrouting", "oifname", "out0", "masquerade"});
  fleet_.Run({"ip", "addr", "add", std::string(kFleetAddress) + "/24", "dev", "up0"});
  fleet_.Run({"ip", "link", "set", "up0", "up"});
  sensor_host.Run({"ip", "addr", "add", std::string(kSensorAddress) + "/24", "dev", "wan0"});
  sensor_host.Run({"ip", "link", "set", "wan0", "up"});
  sensor_host.Run({"ip", "route", "add", "default", "via", "198.19.1.254"});
}

void NatNetwork::Cut() {
  router_.Run({"nft", "add", "table", "inet", "cut"});
  router_.Run({"nft", "add", "chain", "inet", "cut", "forward",
               "{ type filter hook forward priority -10; policy drop; }"});
}

void NatNetwork::Restore() { router_.Run({"nft", "delete", "table", "inet", "cut"}); }

}  // namespace custos::testing
