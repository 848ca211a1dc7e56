// The passive instrument's receive-only link: a veth pair whose host end
// lives in the sensor's hub namespace (the capture engine feeds it) and
// whose other end is `mirror0` in the instrument's namespace, both guarded
// by nftables drops so nothing the instrument sends goes anywhere.
#pragma once

#include <string>

#include "common/result.h"

namespace custos {

struct MirrorLink {
  std::string hub_netns;         // path of the hub namespace
  std::string instrument_netns;  // path of the instrument's (pinned) namespace
  std::string host_end;          // interface name in the hub
};

inline constexpr const char* kMirrorInterface = "mirror0";

// Creates the pair, brings both ends up without addresses or IPv6, and
// installs both drop guards.
Result<MirrorLink> CreateMirrorLink(const std::string& hub_netns,
                                    const std::string& instrument_netns,
                                    const std::string& host_end);
// Removes the guard chain and the pair (deleting one end deletes both).
Status DestroyMirrorLink(const MirrorLink& link);

std::string IngressGuardChain(const std::string& host_end);

// Active mode: moves a host interface into the instrument's namespace and
// back into the namespace of the calling process.
Status MoveInterfaceIn(const std::string& interface, const std::string& instrument_netns);
Status MoveInterfaceBack(const std::string& interface, const std::string& instrument_netns);

}  // namespace custos
