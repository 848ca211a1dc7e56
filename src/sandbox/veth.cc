#include "sandbox/veth.h"

#include <unistd.h>

#include "common/process.h"
#include "sandbox/netns.h"
#include "sandbox/nftables.h"

namespace custos {
namespace {

Status Check(const Result<std::string>& result) {
  if (!result) return result.error();
  return {};
}

// Keeps the kernel from sending IPv6 router solicitations and the like on a
// link that must carry only mirrored traffic.
Status DisableIpv6(const std::string& netns, const std::string& device) {
  return Check(
      RunInNetns(netns, {"sysctl", "-q", "-w", "net.ipv6.conf." + device + ".disable_ipv6=1"}));
}

}  // namespace

std::string IngressGuardChain(const std::string& host_end) { return "in_" + host_end; }

Result<MirrorLink> CreateMirrorLink(const std::string& hub_netns,
                                    const std::string& instrument_netns,
                                    const std::string& host_end) {
  MirrorLink link{hub_netns, instrument_netns, host_end};
  CUSTOS_TRY(Check(RunInNetns(hub_netns, {"ip", "link", "add", host_end, "type", "veth", "peer",
                                          "name", kMirrorInterface, "netns", instrument_netns})));
  auto undo = [&](const Error& error) -> Error {
    (void)DestroyMirrorLink(link);
    return error;
  };
  if (auto s = DisableIpv6(hub_netns, host_end); !s) return undo(s.error());
  if (auto s = AddDropChain(hub_netns, "ingress", host_end, IngressGuardChain(host_end)); !s) {
    return undo(s.error());
  }
  if (auto s = Check(RunInNetns(hub_netns, {"ip", "link", "set", host_end, "up"})); !s) {
    return undo(s.error());
  }
  if (auto s = DisableIpv6(instrument_netns, kMirrorInterface); !s) return undo(s.error());
  if (auto s = AddDropChain(instrument_netns, "egress", kMirrorInterface, "out_mirror0"); !s) {
    return undo(s.error());
  }
  if (auto s = Check(RunInNetns(instrument_netns,
                                {"ip", "link", "set", kMirrorInterface, "promisc", "on", "up"}));
      !s) {
    return undo(s.error());
  }
  return link;
}

Status DestroyMirrorLink(const MirrorLink& link) {
  // The chain goes with its device on current kernels; delete it explicitly
  // so older ones do not keep a dangling base chain.
  (void)DeleteChain(link.hub_netns, IngressGuardChain(link.host_end));
  auto result = RunInNetns(link.hub_netns, {"ip", "link", "delete", link.host_end});
  if (!result && result.error().message.find("Cannot find device") == std::string::npos) {
    return result.error();
  }
  return {};
}

Status MoveInterfaceIn(const std::string& interface, const std::string& instrument_netns) {
  CUSTOS_TRY(Check(RunChecked({"ip", "link", "set", "dev", interface, "netns", instrument_netns})));
  return Check(RunInNetns(instrument_netns, {"ip", "link", "set", interface, "up"}));
}

Status MoveInterfaceBack(const std::string& interface, const std::string& instrument_netns) {
  return Check(RunInNetns(instrument_netns, {"ip", "link", "set", "dev", interface, "netns",
                                             std::to_string(::getpid())}));
}

}  // namespace custos
